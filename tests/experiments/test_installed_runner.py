"""The joint experiment from outside the repository: `vireid experiment ...` (an entry point of the installed
toolkit), the shipped configs found by name, and the package data that makes them travel with an install."""
from __future__ import annotations

import configparser
import json
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

from experiments.shipped import CONFIG_DIR, resolve_config, shipped_configs
from reid.cli import main as vireid_main
from reid.data import make_synthetic_sysu

from experiment_helpers import tiny_experiment_config, write_config

REPO = Path(__file__).resolve().parents[2]
NAMES = ["demo", "demo_methods", "demo_views", "llcm", "regdb", "sysu"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_vireid_experiment_runs_a_config_from_another_folder(tmp_path, monkeypatch, capsys):
    data_root = tmp_path / "data"
    make_synthetic_sysu(data_root, num_ids=8, seed=0, images_per_camera=2, height=32, width=16)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = tiny_experiment_config(data_root, Path("runs/tiny"), strategies=("cluster_contrast",))
    write_config(config, tmp_path / "tiny.yaml")
    assert vireid_main(["experiment", "run", str(tmp_path / "tiny.yaml")]) == 0
    results = json.loads((elsewhere / "runs" / "tiny" / "results.json").read_text())
    assert {row["strategy"] for row in results["results"]} == {"cluster_contrast"}
    assert capsys.readouterr().out.startswith((elsewhere / "runs" / "tiny" / "results.md").read_text())


def test_shipped_configs_are_found_by_name_from_any_folder(tmp_path, monkeypatch, capsys):
    assert sorted(shipped_configs()) == NAMES
    assert resolve_config("demo") == resolve_config("demo.yaml") == CONFIG_DIR / "demo.yaml"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file, and the toolkit ships no experiment config of that "
                                                "name \\(shipped: demo, demo_methods"):
        resolve_config("dmeo")
    assert vireid_main(["experiment", "reid-config", "sysu", "pgm", "--out", "pgm.yaml"]) == 0
    written = yaml.safe_load((tmp_path / "pgm.yaml").read_text())
    assert written["method"]["name"] == "pgm" and written["model"]["non_local"] is True
    assert vireid_main(["experiment", "list"]) == 0
    listing = capsys.readouterr().out
    assert all(f"{name} " in listing for name in NAMES)
    assert vireid_main(["experiment", "run", "dmeo"]) == 2
    assert "vireid: error: config dmeo: no such file" in capsys.readouterr().err


def test_the_experiment_command_is_installed_and_runs_outside_the_checkout(tmp_path):
    """The entry point `experiment` of group vireid.commands (what reid.cli reads), and the installed console
    script run in a folder that is not the repository."""
    registered = {entry.name: entry.value for entry in entry_points(group="vireid.commands")}
    assert registered.get("experiment") == "experiments.command", "reinstall: pip install -e '.[cpu,test]'"
    script = Path(sys.executable).parent / "vireid"
    result = subprocess.run([str(script), "experiment", "list"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "demo " in result.stdout and str(CONFIG_DIR) in result.stdout


def test_the_configs_are_package_data():
    """Every YAML file under experiments/configs matches a package_data pattern, so a non-editable install has
    them too; and the experiments package is installed."""
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    patterns = [p.strip() for p in setup["options.package_data"]["experiments"].split(",")]
    files = sorted(path.relative_to(CONFIG_DIR.parent) for path in CONFIG_DIR.rglob("*.yaml"))
    assert files and all(any(path.match(pattern) for pattern in patterns) for path in files)
    assert "experiments" in setup["options.packages.find"]["include"].split()


def test_a_method_of_your_own_is_a_strategy_and_an_installed_one_loads_by_name(tmp_path, monkeypatch):
    """A registered method (here one from an entry point of group vireid.methods, as a package of yours declares
    it) is selectable by name: `method.name` in vireid train, a strategy of the experiment runner."""
    import reid.methods as methods
    from experiments.config import ExperimentConfig, reid_config, variant_of
    from reid.config import load_config
    from reid.methods.cluster_contrast import ClusterContrast

    class Mine(ClusterContrast):
        name = "mine"
        summary = "cluster-contrast under another name"

    class Entry:
        name, value = "mine", "my_package.methods:Mine"

        def load(self):
            return Mine

    monkeypatch.setattr(methods, "entry_points", lambda group: [Entry()] if group == methods.METHOD_GROUP else [])
    monkeypatch.delitem(methods.METHODS, "mine", raising=False)
    config_path = write_config(tiny_experiment_config(tmp_path / "data", tmp_path / "run", strategies=("mine", "pgm")),
                               tmp_path / "c.yaml")
    config = load_config(ExperimentConfig, config_path)
    assert variant_of("mine").method == "mine" and "another name" in variant_of("mine").label
    assert reid_config(config, "mine", tmp_path / "run").method.name == "mine"
    methods.METHODS.pop("mine")
    with pytest.raises(Exception, match="unknown strategies \\['yours'\\]"):
        load_config(ExperimentConfig, config_path, ["strategies=[yours]"])
