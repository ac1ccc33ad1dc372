"""The real-data recipes (experiments/configs/sysu.yaml, regdb.yaml, llcm.yaml) resolve, per strategy, to the values
the released code uses where a rule decides them:

- the network: ADCA's `agw()` builds `embed_net_ori(no_local='down')`, no non-local blocks (ADCA
  clustercontrast/models/agw.py:261-266), for ADCA and the cluster-contrast stage it is; PGM's and PCLHD's build
  `no_local='on'` (PGM agw.py:262-267, PCLHD agw.py:261-266): 2 blocks after layer2, 3 after layer3;
- precision: no reference uses autocast or half precision: fp32 (`runtime.bf16: false`);
- the memories update inside the backward (clustercontrast/models/cm.py `CM.backward`): `train.memory_update:
  in_backward`.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from experiments.config import ExperimentConfig, reid_config
from reid.config import load_config
from reid.models import NonLocal
from reid.models.registry import build_model

CONFIGS = Path(__file__).resolve().parents[2] / "experiments" / "configs"
REAL_DATA = ("sysu.yaml", "regdb.yaml", "llcm.yaml")
NON_LOCAL = {"cluster_contrast": False, "adca": False, "pgm": True, "pclhd": True}


def resolved(config_name: str, strategy: str):
    config = load_config(ExperimentConfig, CONFIGS / config_name)
    return reid_config(config, strategy, Path(config.output_dir))


@pytest.mark.parametrize("config_name", REAL_DATA)
@pytest.mark.parametrize("strategy", sorted(NON_LOCAL))
def test_each_method_s_recipe_has_its_release_s_network_precision_and_memory_rule(config_name, strategy):
    reid = resolved(config_name, strategy)
    assert reid.model.arch == "agw_resnet50" and reid.model.non_local is NON_LOCAL[strategy]
    assert reid.runtime.bf16 is False
    assert reid.train.memory_update == "in_backward"


@pytest.mark.parametrize("strategy, blocks", [("adca", 0), ("pgm", 5)])
def test_the_recipes_networks_hold_the_non_local_blocks_their_release_builds(strategy, blocks):
    model_config = resolved("sysu.yaml", strategy).model
    model = build_model(model_config.arch, non_local=model_config.non_local, pretrained=None)
    assert sum(isinstance(module, NonLocal) for module in model.modules()) == blocks
