"""The experiment runner on a tiny config: all stages, reuse, --from, a changed section, seeds, the chance and
upper-bound rows, the variants."""
from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import experiments.runner as runner
from experiments.__main__ import main as experiments_main
from experiments.config import ABLATION, VARIANTS, ExperimentConfig, ablation_variants
from reid.checkpoint import load_checkpoint
from reid.config import ConfigError, load_config
from reid.data import load_dataset, make_synthetic_sysu

from experiment_helpers import tiny_experiment_config, write_config

DEMO = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "demo.yaml"


def tiny_experiment(tmp_path: Path, data_root: Path, strategies=("joint", "pgm")) -> Path:
    return write_config(tiny_experiment_config(data_root, tmp_path / "run", strategies), tmp_path / "experiment.yaml")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic_sysu(root, num_ids=8, seed=0, images_per_camera=2, height=32, width=16)
    return root


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def count_stage_calls(monkeypatch) -> dict[str, int]:
    calls: dict[str, int] = {}
    for name in ("stage_translator", "stage_translate", "stage_reid", "stage_evaluate"):
        original = getattr(runner, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            calls[_name] = calls.get(_name, 0) + 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(runner, name, counted)
    return calls


def analytic_chance_r1(dataset, **split) -> float:
    """Rank-1 of a uniformly random ranking under the SYSU-MM01 rules: per query with a match, the share of
    its kept gallery (a camera-3 query drops camera 2) holding its identity; averaged over those queries."""
    query, gallery = dataset.test_split(**split)
    shares = []
    for q in query:
        kept = [g for g in gallery if not (q.camid == 3 and g.camid == 2)]
        matches = sum(g.pid == q.pid for g in kept)
        if matches:
            shares.append(matches / len(kept))
    return float(np.mean(shares))


def summary_row(results: dict, strategy: str, setting: str = "all-single") -> dict:
    return next(row for row in results["summary"] if row["strategy"] == strategy and row["setting"] == setting)


def test_run_writes_results_and_pictures_then_reuses_stages(tmp_path, data_root, monkeypatch, capsys):
    config = tiny_experiment(tmp_path, data_root, strategies=("joint", "oracle"))
    calls = count_stage_calls(monkeypatch)
    assert experiments_main(["run", str(config)]) == 0
    # joint and the upper bound start differently (per-modality clusters / the true ids): two first stages
    assert calls == {"stage_translator": 1, "stage_translate": 1, "stage_reid": 2 + 2, "stage_evaluate": 2}
    run = tmp_path / "run"
    results = json.loads((run / "results.json").read_text())
    assert results["strategies"] == ["joint", "oracle"] and results["seeds"] == 1
    assert {(row["strategy"], row["seed"]) for row in results["results"]} == {("joint", 0), ("oracle", 0)}
    assert all(0 <= row["mAP"] <= 1 for row in results["results"])
    for strategy in ("joint", "oracle"):
        assert (run / "reid" / strategy / "seed_0" / "checkpoints" / "last.pt").exists()
    # each setting: chance first, then the upper bound, then the strategies
    kinds = [(row["setting"], row["kind"], row["strategy"]) for row in results["summary"]]
    assert kinds[:3] == [("all-single", "chance", "chance"), ("all-single", "upper_bound", "oracle"),
                         ("all-single", "strategy", "joint")]
    assert summary_row(results, "oracle")["label"] == VARIANTS["oracle"].label
    chance = summary_row(results, "chance")
    assert chance["n"] == 10 and chance["mean"]["ari"] is None and len(results["chance"]) == 10 * 4
    expected = analytic_chance_r1(load_dataset("sysu", data_root), mode="all", trial=0, shots=1)
    assert 0.3 < expected < 0.7 and abs(chance["mean"]["R1"] - expected) < 0.15, (chance["mean"]["R1"], expected)
    for picture in ("epochs", "translation", "tsne", "retrieval"):
        assert (run / "report" / f"{picture}.png").stat().st_size > 5000
    printed = capsys.readouterr().out
    assert printed.startswith((run / "results.md").read_text())
    assert "## Mean ± std over 1 seed\n" in printed and "## Per epoch (seed 0)" in printed
    assert "| *chance* | chance: the protocol on random features | all-single |" in printed
    assert f"| *oracle* | {VARIANTS['oracle'].label} | all-single |" in printed
    assert f"| joint | {VARIANTS['joint'].label} | all-single |" in printed
    assert (run / "config.yaml").exists() and (run / "translated" / "manifest.jsonl").exists()

    calls.clear()
    assert experiments_main(["run", str(config)]) == 0  # everything finished: reused
    assert experiments_main(["run", str(config), "runtime.log_level=ERROR"]) == 0  # cannot change results
    assert calls == {}
    rerun = json.loads((run / "results.json").read_text())
    assert rerun["chance"] == results["chance"] and summary_row(rerun, "chance") == chance  # seeded: the same
    assert experiments_main(["run", str(config), "--from", "reid"]) == 0
    assert calls == {"stage_reid": 4, "stage_evaluate": 2}
    calls.clear()
    assert experiments_main(["run", str(config), "reid.cluster.eps=0.5"]) == 0  # the ReID recipe changed
    assert calls == {"stage_reid": 4, "stage_evaluate": 2}
    calls.clear()
    assert experiments_main(["run", str(config), "reid.train.stages.cross.lr=0.002"]) == 0  # only the 2nd stage
    assert calls == {"stage_reid": 2, "stage_evaluate": 2}


def test_seeds_give_mean_and_sample_std_and_extend_without_retraining(tmp_path, data_root, monkeypatch, capsys):
    config = tiny_experiment(tmp_path, data_root, strategies=("cluster_contrast", "pgm"))
    calls = count_stage_calls(monkeypatch)
    assert experiments_main(["run", str(config), "--seeds", "2"]) == 0
    # no strategy uses the views, so no translator is trained; cluster_contrast and pgm share their first stage (one
    # per seed)
    assert calls == {"stage_reid": 2 + 4, "stage_evaluate": 4}
    assert not (tmp_path / "run" / "translator").exists()
    run = tmp_path / "run"
    for strategy in ("cluster_contrast", "pgm"):
        assert sorted(p.name for p in (run / "reid" / strategy).iterdir()) == ["seed_0", "seed_1"]
        saved = yaml.safe_load((run / "reid" / strategy / "seed_1" / "config.yaml").read_text())
        assert saved["runtime"]["seed"] == 1 and saved["translated"] is None
    results = json.loads((run / "results.json").read_text())
    assert results["seeds"] == 2 and set(results["epochs"]["cluster_contrast"]) == {"seed_0", "seed_1"}
    methods = [row for row in results["summary"] if row["kind"] == "strategy"]
    assert len(methods) == 2 * 4 and all(row["n"] == 2 for row in methods)
    for row in methods:
        seeds = [r for r in results["results"] if (r["strategy"], r["setting"]) == (row["strategy"], row["setting"])]
        assert sorted(r["seed"] for r in seeds) == [0, 1]
        for key in ("R1", "R5", "R10", "R20", "mAP", "mINP", "ari", "mixed_share"):
            values = np.array([r[key] for r in seeds], dtype=float)
            assert row["mean"][key] == pytest.approx(values.mean())
            assert row["std"][key] == pytest.approx(values.std(ddof=1))
    assert "## Mean ± std over 2 seeds" in capsys.readouterr().out

    calls.clear()
    assert experiments_main(["run", str(config), "--seeds", "3"]) == 0  # seeds 0 and 1 are reused
    assert calls == {"stage_reid": 1 + 2, "stage_evaluate": 2}
    assert (run / "reid" / "cluster_contrast" / "seed_2" / "checkpoints" / "last.pt").exists()
    results = json.loads((run / "results.json").read_text())
    assert {row["n"] for row in results["summary"] if row["kind"] == "strategy"} == {3}
    calls.clear()
    assert experiments_main(["run", str(config), "--seeds", "3", "--from", "evaluate"]) == 0
    assert calls == {"stage_evaluate": 6}


@pytest.mark.parametrize("strategies", [("joint", "adca", "pgm"), ("pclhd", "oracle")])
def test_a_shared_first_stage_ends_where_each_whole_run_would(tmp_path, data_root, strategies):
    """joint (with the translated views), ADCA and PGM (without) share their cluster-contrast first stage; PCLHD
    and the upper bound have their own; each variant's final weights and per-epoch losses equal a run of its whole
    config on its own."""
    config = load_config(ExperimentConfig, tiny_experiment(tmp_path, data_root, strategies=strategies),
                         ["reid.cluster.min_samples=2", "recipes={pclhd: {method.options.num_instances: 2, "
                          "method.options.mixed_k1: 6, method.options.mixed_k2: 3}}"])
    runner.run_experiment(config)
    run = tmp_path / "run"
    assert len(list((run / "reid" / runner.FIRST_STAGES).iterdir())) == (1 if "joint" in strategies else 2)
    for variant in strategies:
        alone = runner.reid_config(config, variant, run)
        alone = dataclasses.replace(alone, output_dir=str(tmp_path / "alone" / variant))
        expected = load_checkpoint(runner.train_reid(alone))["state"]
        shared = load_checkpoint(run / "reid" / variant / "seed_0" / "checkpoints" / "last.pt")["state"]
        for weights in [key for key in ("model", "student") if key in expected]:
            assert all(torch.equal(expected[weights][key], shared[weights][key]) for key in expected[weights]), variant
        losses = [[{k: v for k, v in line.items() if k.startswith("loss_")} for line in json.loads(state["history"])]
                  for state in (expected, shared)]
        assert losses[0] == losses[1], variant
        assert tensorboard_steps(run / "reid" / variant / "seed_0") == [1, 2], variant  # the shared stage's epoch too


def tensorboard_steps(run_dir: Path) -> list[int]:
    """The epochs of a run folder's TensorBoard events (their "lr" scalars)."""
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    events = event_accumulator.EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return [event.step for event in events.Scalars("lr")]


def test_variants_and_config_errors(tmp_path, data_root, capsys):
    config = load_config(ExperimentConfig, tiny_experiment(tmp_path, data_root))
    assert not runner.reid_config(config, "joint_no_channel_augment", tmp_path).augment.caj
    for variant in VARIANTS:
        assert runner.reid_config(config, variant, tmp_path).method.name == VARIANTS[variant].method
    assert runner.reid_config(config, "joint_no_view_losses", tmp_path).method.options == {
        "view_weight": 0.0, "cross_view_weight": 0.0}
    for variant in ("cluster_contrast", "adca", "pgm", "pclhd", "oracle_labels_only"):
        assert runner.reid_config(config, variant, tmp_path).translated is None, variant
    for variant in ("joint", "oracle", "joint_no_view_losses"):
        assert runner.reid_config(config, variant, tmp_path).translated == str(tmp_path / "translated")
    assert VARIANTS["oracle"].upper_bound and not VARIANTS["joint"].upper_bound
    seeded = runner.reid_config(config, "joint", tmp_path, seed_index=2)
    assert seeded.runtime.seed == config.runtime.seed + 2
    assert seeded.output_dir == str(tmp_path / "reid" / "joint" / "seed_2")
    assert experiments_main(["run", str(tmp_path / "experiment.yaml"), "strategies=[jointt]"]) == 2
    assert "strategies: unknown strategies ['jointt']" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="seeds must be >= 1"):
        load_config(ExperimentConfig, tmp_path / "experiment.yaml", ["seeds=0"])
    with pytest.raises(SystemExit):
        experiments_main(["run", str(tmp_path / "experiment.yaml"), "--seeds", "0"])
    with pytest.raises(ValueError, match="unknown stage"):
        runner.run_experiment(config, from_stage="nothing")


def test_recipes_set_one_strategy_s_values_and_are_checked(tmp_path, data_root):
    """`recipes.<strategy>`: dotted reid keys and method.options.* for that strategy only; a wrong key, value or
    strategy is an error naming it."""
    path = tiny_experiment(tmp_path, data_root)
    config = load_config(ExperimentConfig, path, ["recipes={pgm: {train.momentum: 0.2, augment.color_jitter: 0.5, "
                                                  "train.stages.cross.epochs: 3, method.options.matching: symmetric}}"])
    pgm, joint = (runner.reid_config(config, variant, tmp_path) for variant in ("pgm", "joint"))
    assert (pgm.train.momentum, pgm.augment.color_jitter, pgm.train.stages["cross"].epochs) == (0.2, 0.5, 3)
    assert pgm.method.options == {"matching": "symmetric"}
    assert (joint.train.momentum, joint.augment.color_jitter, joint.train.stages["cross"].epochs) == (0.1, 0.0, 1)
    for recipe, message in (("{pgm: {train.momentun: 0.2}}", r"recipes.pgm: .*unknown config key 'train.momentun'"),
                            ("{pgm: {method.options.matching: best}}", r"method.options.matching: expected one of"),
                            ("{pgn: {train.momentum: 0.2}}", r"recipes: unknown strategies \['pgn'\]"),
                            ("{pgm: {train.momentum: fast}}", r"recipes.pgm: .*'train.momentum': expected float")):
        with pytest.raises(ConfigError, match=message):
            load_config(ExperimentConfig, path, [f"recipes={recipe}"])


def flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def differences(config, variant: str, other: str, run_dir: Path) -> set[str]:
    a, b = flatten(runner.recipe(config, variant, run_dir)), flatten(runner.recipe(config, other, run_dir))
    return {key for key in a.keys() | b.keys() if a.get(key) != b.get(key)}


@pytest.mark.parametrize("caj", [True, False])
def test_ablation_of_the_demo_config_runs_distinct_recipes(tmp_path, caj):
    config = load_config(ExperimentConfig, DEMO, [f"reid.augment.caj={str(caj).lower()}"])
    variants = ablation_variants(config)
    toggle = "joint_no_channel_augment" if caj else "joint_channel_augment"
    assert variants == [toggle if name == "joint_no_channel_augment" else name for name in ABLATION]
    for a, b in itertools.combinations(variants, 2):
        assert runner.recipe(config, a, tmp_path) != runner.recipe(config, b, tmp_path), (a, b)
    runner.check_distinct_recipes(config, variants, tmp_path)
    # each ablation differs from joint by one thing
    assert differences(config, "joint_no_view_losses", "joint", tmp_path) == {"method.options.view_weight",
                                                                              "method.options.cross_view_weight"}
    assert differences(config, toggle, "joint", tmp_path) == {"augment.caj"}
    assert differences(config, "oracle", "joint", tmp_path) == {"method.name"}
    assert differences(config, "cluster_contrast", "joint", tmp_path) == {"method.name", "translated"}
    assert differences(config, "oracle", "oracle_labels_only", tmp_path) == {"translated"}


def test_variants_resolving_to_one_recipe_are_refused(tmp_path, data_root, capsys):
    path = tiny_experiment(tmp_path, data_root, strategies=("cluster_contrast", "joint", "joint_channel_augment"))
    config = load_config(ExperimentConfig, path, ["reid.augment.caj=true"])
    with pytest.raises(ValueError, match="'joint' and 'joint_channel_augment' resolve to the same ReID config"):
        runner.run_experiment(config)
    assert experiments_main(["run", str(path), "reid.augment.caj=true"]) == 2
    assert "'joint' and 'joint_channel_augment'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before anything ran


def test_overrides_may_follow_the_options():
    from experiments.__main__ import parse_arguments

    args = parse_arguments(["run", "c.yaml", "a.b=1", "--seeds", "2", "c=[x, y]"])
    assert args.overrides == ["a.b=1", "c=[x, y]"] and args.seeds == 2
    with pytest.raises(SystemExit):
        parse_arguments(["run", "c.yaml", "--seedz", "2"])


def test_the_start_and_the_random_start_rows(tmp_path, data_root, monkeypatch):
    """`start` evaluates model.pretrained as it is, once whatever the seeds (it draws nothing); `oracle_random_start`
    trains the labels-only bound with model.pretrained=null; both are reference rows of the table."""
    from reid.data import make_synthetic_sysu as synth
    from reid.models import read_backbone
    from reid.pretrain import pretrain_backbone
    from reid.pretrain_config import PretrainConfig
    from reid.config import config_from_dict

    population = tmp_path / "population"
    synth(population, num_ids=6, seed=9, images_per_camera=1, height=32, width=16)
    backbone = pretrain_backbone(config_from_dict(PretrainConfig, {
        "data": {"name": "synthetic", "root": str(population)}, "model": {"arch": "tiny", "height": 32, "width": 16},
        "train": {"steps": 2, "batch_size": 4}, "runtime": {"device": "cpu", "workers": 0},
        "output_dir": str(tmp_path / "pretrain")}))
    config = tiny_experiment_config(data_root, tmp_path / "run", ("start", "oracle_random_start", "oracle_labels_only"))
    config["reid"]["model"]["pretrained"] = str(backbone)
    calls = count_stage_calls(monkeypatch)
    assert experiments_main(["run", str(write_config(config, tmp_path / "e.yaml")), "--seeds", "2"]) == 0
    # 2 bounds x 2 seeds, each with its own first stage (the two starts differ); the start alone: no training, one
    # evaluation
    assert calls == {"stage_reid": 8, "stage_evaluate": 5}
    run = tmp_path / "run"
    assert sorted(p.name for p in (run / "reid" / "start").iterdir()) == ["seed_0"]
    start = load_checkpoint(run / "reid" / "start" / "seed_0" / "checkpoints" / "last.pt", kind="reid")
    trunk = read_backbone(backbone)["state"]["trunk"]
    assert torch.equal(start["state"]["model"]["trunk.0.conv.weight"], trunk["0.conv.weight"])
    assert yaml.safe_load((run / "reid" / "oracle_random_start" / "seed_1" / "config.yaml").read_text()
                          )["model"]["pretrained"] is None
    assert yaml.safe_load((run / "reid" / "oracle_labels_only" / "seed_1" / "config.yaml").read_text()
                          )["model"]["pretrained"] == str(backbone)
    results = json.loads((run / "results.json").read_text())
    kinds = {row["strategy"]: (row["kind"], row["n"]) for row in results["summary"] if row["setting"] == "all-single"}
    assert kinds == {"chance": ("chance", 10), "start": ("start", 1), "oracle_random_start": ("upper_bound", 2),
                     "oracle_labels_only": ("upper_bound", 2)}
    history = results["epochs"]["start"]["seed_0"]
    assert [(r["epoch"], r["stage"]) for r in history] == [(0, "start")]
    assert "| *start* |" in (run / "results.md").read_text()


def test_the_views_recipe_sets_the_view_terms_and_joint_s_mixed_clustering(tmp_path):
    config = load_config(ExperimentConfig, DEMO.with_name("demo_views.yaml"))
    assert config.data.evaluate_on == "val"  # a recipe measured on the val ids
    oracle, joint = (flatten(runner.recipe(config, variant, tmp_path)) for variant in ("oracle", "joint"))
    assert (oracle["method.options.view_weight"], oracle["method.options.cross_view_weight"]) == (0.1, 0.0)
    assert {key: joint[key] for key in ("method.options.view_weight", "method.options.cross_view_weight",
                                        "method.options.mixed_k1", "method.options.mixed_k2",
                                        "method.options.balanced", "cluster.unify", "cluster.center")} == {
        "method.options.view_weight": 0.1, "method.options.cross_view_weight": 0.0, "method.options.mixed_k1": 20,
        "method.options.mixed_k2": 6, "method.options.balanced": True, "cluster.unify": "mean", "cluster.center": True}
    assert differences(config, "oracle_labels_only", "oracle", tmp_path) == {
        "translated", "method.options.view_weight", "method.options.cross_view_weight"}
