from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import yaml

from reid.config import ConfigError, DataConfig, RuntimeConfig, load_config, parse_override, save_config


@dataclass
class OptimConfig:
    lr: float = 3.5e-4
    milestones: list[int] = field(default_factory=lambda: [20, 40])


@dataclass
class ExampleConfig:
    data: DataConfig = field(default_factory=DataConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 10
    name: str = "run"


def write(path, data) -> str:
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_defaults_give_typed_dataclass():
    config = load_config(ExampleConfig)
    assert isinstance(config, ExampleConfig) and isinstance(config.optim, OptimConfig)
    assert config.optim.lr == pytest.approx(3.5e-4) and config.data.name == "synthetic"


def test_base_chain_and_overrides_merge_in_order(tmp_path):
    write(tmp_path / "root.yaml", {"epochs": 5, "optim": {"lr": 0.1, "milestones": [1, 2, 3]}})
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "mid.yaml", {"_base_": "../root.yaml", "optim": {"lr": 0.2}, "name": "mid"})
    leaf = write(tmp_path / "leaf.yaml", {"_base_": ["sub/mid.yaml"], "data": {"root": "/x"}})
    config = load_config(ExampleConfig, leaf, ["optim.lr=1e-3", "optim.milestones=[7]", "runtime.device=cpu"])
    assert config.epochs == 5  # from the root base
    assert config.name == "mid"
    assert config.optim.lr == pytest.approx(1e-3)  # override wins over every file
    assert config.optim.milestones == [7]  # lists are replaced, not merged
    assert config.data.root == "/x" and config.data.name == "synthetic"
    assert config.runtime.device == "cpu"


def test_unknown_key_names_it_and_suggests(tmp_path):
    path = write(tmp_path / "bad.yaml", {"optim": {"lrr": 0.1}})
    with pytest.raises(ConfigError, match=r"unknown config key 'optim.lrr'.*did you mean 'optim.lr'") as info:
        load_config(ExampleConfig, path)
    assert "bad.yaml" in str(info.value)
    with pytest.raises(ConfigError, match=r"unknown config key 'epoch'.*did you mean 'epochs'"):
        load_config(ExampleConfig, overrides=["epoch=3"])


def test_wrong_type_names_key_expected_type_and_value():
    with pytest.raises(ConfigError) as info:
        load_config(ExampleConfig, overrides=["optim.lr=fast"])
    message = str(info.value)
    assert "optim.lr" in message and "float" in message and "fast" in message
    with pytest.raises(ConfigError, match=r"epochs.*int"):
        load_config(ExampleConfig, overrides=["epochs=[1, 2]"])


def test_value_validation_in_schema():
    with pytest.raises(ConfigError, match="runtime.device"):
        load_config(ExampleConfig, overrides=["runtime.device=gpu"])


def test_base_cycle_and_missing_base_are_errors(tmp_path):
    write(tmp_path / "a.yaml", {"_base_": "b.yaml"})
    write(tmp_path / "b.yaml", {"_base_": "a.yaml"})
    with pytest.raises(ConfigError, match="cycle"):
        load_config(ExampleConfig, tmp_path / "a.yaml")
    write(tmp_path / "c.yaml", {"_base_": "missing.yaml"})
    with pytest.raises(ConfigError, match=r"missing\.yaml.*c\.yaml"):
        load_config(ExampleConfig, tmp_path / "c.yaml")


def test_malformed_override_and_yaml(tmp_path):
    with pytest.raises(ConfigError, match="dotted.key=value"):
        parse_override("epochs")
    bad = tmp_path / "broken.yaml"
    bad.write_text("optim: [unclosed")
    with pytest.raises(ConfigError, match="broken.yaml"):
        load_config(ExampleConfig, bad)


def test_saved_config_loads_back_identically(tmp_path):
    config = load_config(ExampleConfig, overrides=["optim.lr=0.5", "name=saved"])
    path = save_config(config, tmp_path / "run")
    assert path.name == "config.yaml"
    assert load_config(ExampleConfig, path) == config


def test_section_given_a_value_and_list_item_of_wrong_type():
    with pytest.raises(ConfigError, match=r"'data' is a section \(DataConfig\)"):
        load_config(ExampleConfig, overrides=["data=3"])
    with pytest.raises(ConfigError, match=r"optim.milestones\[0\].*expected list\[int\].*'a'"):
        load_config(ExampleConfig, overrides=["optim.milestones=[a]"])


def test_counts_below_one_name_the_key():
    from reid.train_config import ReIDConfig
    from vi_translate.config import TranslatorConfig

    with pytest.raises(ConfigError, match=r"train.iterations must be >= 1, got 0"):
        load_config(ReIDConfig, overrides=["train.iterations=0"])
    with pytest.raises(ConfigError, match=r"train.batch_size must be >= 1, got -2"):
        load_config(TranslatorConfig, overrides=["train.batch_size=-2"])


def test_stages_are_sections_checked_key_by_key_and_run_in_order():
    from reid.train_config import ReIDConfig

    config = load_config(ReIDConfig, None, ["train.stages.cross.epochs=3", "train.stages.extra.gamma=0.5"])
    assert list(config.train.stages) == ["intra", "cross", "extra"] and config.train.epochs == 50 + 3 + 50
    assert config.train.stage_at(52)[0] == "cross" and config.train.stage_at(53)[::2] == ("extra", 0)
    with pytest.raises(ConfigError, match="unknown config key 'train.stages.cross.epochz'; did you mean "
                                          "'train.stages.cross.epochs'"):
        load_config(ReIDConfig, None, ["train.stages.cross.epochz=3"])
    with pytest.raises(ConfigError, match=r"unknown config key 'train.stages.intra.labels'"):
        load_config(ReIDConfig, None, ["train.stages.intra.labels=joint"])  # what a stage trains is the method's
    with pytest.raises(ConfigError, match=r"train.stages.cross.vis_identities must be >= 1"):
        load_config(ReIDConfig, None, ["train.stages.cross.vis_identities=0"])
    with pytest.raises(ConfigError, match="at least one epoch"):
        load_config(ReIDConfig, None, ["train.stages.intra.epochs=0", "train.stages.cross.epochs=0"])


def test_the_method_and_its_options_are_checked_by_the_method_s_own_schema():
    from reid.train_config import ReIDConfig

    config = load_config(ReIDConfig, None, ["method.name=pgm", "method.options.cross_weight=0.5"])
    assert config.method.options == {"cross_weight": 0.5}  # as given; the trainer writes the rest out
    assert config.method.resolved_options() == {"cross_weight": 0.5, "matching": "one_sided", "cross_memory": "hard",
                                                "alternate": True}
    with pytest.raises(ConfigError, match=r"method.name: expected one of \['adca', 'cluster_contrast', 'joint', "
                                          r"'oracle', 'pclhd', 'pgm'\], got 'pgn'"):
        load_config(ReIDConfig, None, ["method.name=pgn"])
    with pytest.raises(ConfigError, match=r"unknown config key 'method.options.view_weight'; did you mean "
                                          r"'method.options.cross_weight'"):
        load_config(ReIDConfig, None, ["method.name=pgm", "method.options.view_weight=0"])  # joint's option, not pgm's
    with pytest.raises(ConfigError, match=r"'method.options.ema_momentum': expected float, got 'high'"):
        load_config(ReIDConfig, None, ["method.name=pclhd", "method.options.ema_momentum=high"])
    with pytest.raises(ConfigError, match=r"method.options.dynamic_loss: expected one of \['paper', 'released'\]"):
        load_config(ReIDConfig, None, ["method.name=pclhd", "method.options.dynamic_loss=no_grad"])
