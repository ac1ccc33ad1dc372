"""The translator's structure-keeping options (PatchNCE, the structure term, a one-sided translator without cycle):
off by default, where a step is the reference CycleGAN step, bit for bit; their terms when on; the config keys, the
ready configs, and checkpoints (a run with PatchNCE resumes to the weights of an uninterrupted one; a checkpoint
written before these options existed still loads and resumes)."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from reid.checkpoint import load_checkpoint, save_checkpoint
from reid.config import ConfigError, config_from_dict, load_config
from vi_translate.checkpoint import CHECKPOINT_KIND, load_translator
from vi_translate.config import NetworkConfig, TranslatorConfig, TranslatorTrainConfig
from vi_translate.cyclegan import StepTools, build_nets, set_requires_grad, train_step
from vi_translate.losses import match_channels, structure_loss
from vi_translate.train import train_translator

from test_train import assert_same_weights
from translator_helpers import build_translator_config, tiny_translator_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "experiments" / "configs" / "translator"
TINY = NetworkConfig(ngf=4, ndf=4, n_blocks=2, n_layers_d=2)
LAYERS = [0, 4, 7, 10, 11]
OFF = {"lambda_nce": 0.0, "lambda_structure": 0.0, "nce_idt": False}  # every new weight 0 (the defaults)
TODAY_STATE = {"nets", "optimizer_g", "optimizer_d", "schedulers", "pools", "rng", "position"}


def tools_for(nets, ir_channels: int, **train) -> StepTools:
    config = TranslatorTrainConfig(pool_size=2, **train)
    pools = {m: torch.Generator().manual_seed(i) for i, m in enumerate(("vis", "ir"), 1)}
    return StepTools.build(nets, config, ir_channels, pools, torch.Generator().manual_seed(3))


def batches(ir_channels: int, steps: int = 3):
    g = torch.Generator().manual_seed(11)
    return [(torch.rand(2, 3, 32, 16, generator=g) * 2 - 1, torch.rand(2, ir_channels, 32, 16, generator=g) * 2 - 1)
            for _ in range(steps)]


def built(ir_channels: int, layers=None):
    torch.manual_seed(0)
    return build_nets(TINY, ir_channels, layers)


def reference_cyclegan_step(nets, vis, ir, tools) -> dict[str, float]:
    """The reference recipe as `train_step` ran it before the options existed: G step (adversarial, cycle L1 at
    lambda_cycle, identity L1 at lambda_identity * lambda_cycle) with D frozen, then D on real and pooled fakes."""
    set_requires_grad(nets.discriminators(), False)
    fake_ir, fake_vis = nets.g_vis2ir(vis), nets.g_ir2vis(ir)
    rec_vis, rec_ir = nets.g_ir2vis(fake_ir), nets.g_vis2ir(fake_vis)
    lc, li = tools.lambda_cycle, tools.lambda_identity * tools.lambda_cycle
    g = {"G_vis2ir": tools.criterion(nets.d_ir(fake_ir), True, for_discriminator=False),
         "G_ir2vis": tools.criterion(nets.d_vis(fake_vis), True, for_discriminator=False),
         "cycle_vis": lc * F.l1_loss(rec_vis, vis), "cycle_ir": lc * F.l1_loss(rec_ir, ir)}
    if li > 0:
        g["idt_ir"] = li * F.l1_loss(nets.g_vis2ir(match_channels(ir, 3)), ir)
        g["idt_vis"] = li * F.l1_loss(nets.g_ir2vis(match_channels(vis, tools.ir_channels)), vis)
    tools.optimizer_g.zero_grad(set_to_none=True)
    sum(g.values()).backward()
    tools.optimizer_g.step()
    set_requires_grad(nets.discriminators(), True)
    pooled_vis = tools.pools["vis"].query(fake_vis.detach().float())
    pooled_ir = tools.pools["ir"].query(fake_ir.detach().float())
    d = {"D_vis": 0.5 * (tools.criterion(nets.d_vis(vis), True) + tools.criterion(nets.d_vis(pooled_vis), False)),
         "D_ir": 0.5 * (tools.criterion(nets.d_ir(ir), True) + tools.criterion(nets.d_ir(pooled_ir), False))}
    tools.optimizer_d.zero_grad(set_to_none=True)
    sum(d.values()).backward()
    tools.optimizer_d.step()
    return {name: float(value.item()) for name, value in (g | d).items()}


@pytest.mark.parametrize("ir_channels, train", [(3, {}), (1, {}), (3, {"lambda_identity": 0.0}),
                                                (1, {"gan_mode": "hinge", "lambda_cycle": 5.0})])
def test_with_every_new_weight_zero_a_step_is_the_reference_cyclegan_step(ir_channels, train):
    nets = built(ir_channels)
    reference_nets = copy.deepcopy(nets)
    tools = tools_for(nets, ir_channels, **OFF, **train)
    reference_tools = tools_for(reference_nets, ir_channels, **train)
    assert tools.optimizer_heads is None and nets.heads() == [] and set(nets.modules()) == {"g_vis2ir", "g_ir2vis",
                                                                                           "d_vis", "d_ir"}
    for vis, ir in batches(ir_channels):
        assert train_step(nets, vis, ir, tools) == reference_cyclegan_step(reference_nets, vis, ir, reference_tools)
    for name, module in nets.modules().items():
        for key, value in module.state_dict().items():
            assert torch.equal(value, reference_nets.modules()[name].state_dict()[key]), f"{name}.{key}"
    for ours, theirs in zip((tools.optimizer_g, tools.optimizer_d),
                            (reference_tools.optimizer_g, reference_tools.optimizer_d)):
        for index, state in ours.state_dict()["state"].items():
            assert torch.equal(state["exp_avg_sq"], theirs.state_dict()["state"][index]["exp_avg_sq"])


@pytest.mark.parametrize("ir_channels", [3, 1])
def test_patch_nce_trains_the_heads_with_the_generators_and_logs_its_terms(ir_channels):
    nets = built(ir_channels, LAYERS)
    assert [type(h).__name__ for h in nets.heads()] == ["PatchSampleMLP"] * 2
    before = {name: copy.deepcopy(module.state_dict()) for name, module in nets.modules().items()}
    tools = tools_for(nets, ir_channels, lambda_nce=1.0, nce_layers=LAYERS, nce_patches=16)
    losses = train_step(nets, *batches(ir_channels, 1)[0], tools)
    assert {"nce_vis2ir", "nce_ir2vis", "cycle_vis", "idt_ir"} <= set(losses) and "nce_idt_ir" not in losses
    assert all(losses[k] > 0 for k in ("nce_vis2ir", "nce_ir2vis"))
    for heads in ("heads_vis2ir", "heads_ir2vis"):
        grads = [p.grad for p in nets.modules()[heads].parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads), heads
        changed = [k for k, v in nets.modules()[heads].state_dict().items() if not torch.equal(v, before[heads][k])]
        assert len(changed) == len(before[heads])  # Adam (optimizer_heads) stepped every parameter
    assert len(tools.optimizer_heads.state) == 2 * 4 * len(LAYERS)  # 2 Linear (weight, bias) per layer and direction
    # the four networks start where a run without PatchNCE starts: the heads are built after them
    plain = built(ir_channels)
    for name, module in plain.modules().items():
        assert all(torch.equal(v, before[name][k]) for k, v in module.state_dict().items())


def test_nce_idt_adds_the_target_domain_terms_and_halves_each_as_cut():
    vis, ir = batches(3, 1)[0]
    one_way = train_step(built(3, LAYERS), vis, ir, tools_for(built(3, LAYERS), 3, lambda_nce=2.0, nce_layers=LAYERS))
    nets = built(3, LAYERS)
    both = train_step(nets, vis, ir, tools_for(nets, 3, lambda_nce=2.0, nce_layers=LAYERS, nce_idt=True))
    assert {"nce_idt_ir", "nce_idt_vis"} <= set(both)
    # the same first draws of patch locations: each term is lambda_nce / 2 * NCE, as CUT's (NCE + NCE_Y) / 2
    assert both["nce_vis2ir"] == pytest.approx(one_way["nce_vis2ir"] / 2, rel=1e-6)
    assert both["nce_ir2vis"] == pytest.approx(one_way["nce_ir2vis"] / 2, rel=1e-6)


def test_one_sided_translator_computes_no_cycle():
    nets = built(3, LAYERS)
    calls = {"g_vis2ir": 0, "g_ir2vis": 0}
    for name in calls:
        nets.modules()[name].register_forward_hook(lambda m, a, o, name=name: calls.__setitem__(name, calls[name] + 1))
    tools = tools_for(nets, 3, lambda_cycle=0.0, lambda_identity=0.5, lambda_nce=1.0, nce_layers=LAYERS, nce_idt=True)
    losses = train_step(nets, *batches(3, 1)[0], tools)
    assert not {"cycle_vis", "cycle_ir", "idt_ir", "idt_vis"} & set(losses)
    assert set(losses) == {"G_vis2ir", "G_ir2vis", "nce_vis2ir", "nce_ir2vis", "nce_idt_ir", "nce_idt_vis", "D_vis",
                           "D_ir"}
    assert calls == {"g_vis2ir": 2, "g_ir2vis": 2}  # translation and identity (for nce_idt) only: no reconstruction
    calls.update(g_vis2ir=0, g_ir2vis=0)
    train_step(nets, *batches(3, 1)[0], tools_for(nets, 3, lambda_cycle=0.0, lambda_identity=0.0))
    assert calls == {"g_vis2ir": 1, "g_ir2vis": 1}


@pytest.mark.parametrize("kind", ["ssim", "edges"])
def test_the_structure_term_is_logged_each_way_at_its_weight(kind):
    nets = built(1)
    vis, ir = batches(1, 1)[0]
    with torch.no_grad():
        expected = {"structure_vis2ir": 2.0 * structure_loss(vis, nets.g_vis2ir(vis), kind).item(),
                    "structure_ir2vis": 2.0 * structure_loss(ir, nets.g_ir2vis(ir), kind).item()}
    reference = copy.deepcopy(nets)
    losses = train_step(nets, vis, ir, tools_for(nets, 1, lambda_structure=2.0, structure=kind))
    for name, value in expected.items():
        assert losses[name] == pytest.approx(value, rel=1e-5)
    plain = train_step(reference, vis, ir, tools_for(reference, 1))
    assert {k: v for k, v in losses.items() if not k.startswith("structure")}.keys() == plain.keys()
    assert not torch.equal(nets.g_vis2ir.model[1].weight, reference.g_vis2ir.model[1].weight)  # the term trains G


def test_config_keys_are_checked_and_errors_name_them():
    train = TranslatorTrainConfig()
    assert (train.lambda_nce, train.nce_layers, train.nce_patches, train.nce_temperature, train.nce_idt,
            train.lambda_structure, train.structure) == (0.0, [0, 4, 7, 10, 14], 256, 0.07, False, 0.0, "ssim")
    for key, value in [("lambda_nce", -1.0), ("lambda_structure", -0.5), ("lambda_cycle", -1.0), ("nce_patches", 0),
                       ("nce_temperature", 0.0), ("nce_layers", [4, 0]), ("nce_layers", []), ("structure", "canny")]:
        with pytest.raises(ConfigError, match=f"train.{key}"):
            config_from_dict(TranslatorConfig, {"train": {key: value}})
    with pytest.raises(ConfigError, match=r"train\.nce_layers.*model\.n_blocks=3"):
        config_from_dict(TranslatorConfig, {"model": {"n_blocks": 3}, "train": {"lambda_nce": 1.0}})
    config_from_dict(TranslatorConfig, {"model": {"n_blocks": 3}})  # the default taps are only checked when used
    with pytest.raises(ConfigError, match="train.nce_idt"):
        config_from_dict(TranslatorConfig, {"train": {"nce_idt": "sometimes"}})


def test_ready_configs():
    base = load_config(TranslatorConfig, CONFIGS / "synthetic.yaml")
    cut = load_config(TranslatorConfig, CONFIGS / "synthetic_cut.yaml")
    structure = load_config(TranslatorConfig, CONFIGS / "synthetic_structure.yaml")
    assert (base.train.lambda_nce, base.train.lambda_structure, base.train.lambda_cycle) == (0.0, 0.0, 10.0)
    assert (cut.train.lambda_cycle, cut.train.lambda_identity, cut.train.lambda_nce, cut.train.nce_idt) == \
        (0.0, 0.0, 1.0, True)
    assert (structure.train.lambda_cycle, structure.train.lambda_nce, structure.train.lambda_structure,
            structure.train.structure) == (10.0, 1.0, 1.0, "ssim")
    for config in (cut, structure):
        assert config.model == base.model and config.data == base.data and config.image == base.image
        assert max(config.train.nce_layers) < 10 + config.model.n_blocks and config.output_dir != base.output_dir


def test_a_run_with_patch_nce_resumes_to_the_uninterrupted_weights(tiny_dataset, tmp_path):
    """Stop at step 5 (epoch 0), resume, cross the epoch boundary and the start of the decay: the heads, their Adam
    state and the patch generator come back, so the resumed run draws the locations the uninterrupted one drew."""
    options = {"lambda_nce": 1.0, "nce_layers": [0, 4, 7, 10], "nce_patches": 16, "nce_idt": True,
               "lambda_structure": 1.0, "structure": "edges"}

    def run(out: Path, steps: int) -> Path:
        return train_translator(build_translator_config(tiny_translator_config(tiny_dataset, out, max_steps=steps,
                                                                               **options)))

    straight = run(tmp_path / "straight", 12)
    run(tmp_path / "split", 5)
    resumed = run(tmp_path / "split", 12)
    state = load_checkpoint(resumed)["state"]
    assert {"heads_vis2ir", "heads_ir2vis"} <= set(state["nets"]) and set(state["schedulers"]) == {"g", "d", "heads"}
    assert TODAY_STATE | {"optimizer_heads", "nce_generator"} == set(state)
    assert_same_weights(straight, resumed)  # every network, the heads included, and the pools
    straight_state = load_checkpoint(straight)["state"]
    for name in ("optimizer_g", "optimizer_heads"):
        for index, moments in straight_state[name]["state"].items():
            assert torch.equal(moments["exp_avg"], state[name]["state"][index]["exp_avg"]), (name, index)
    assert torch.equal(straight_state["nce_generator"], state["nce_generator"])
    nets, _ = load_translator(resumed)  # inference reads the generators; the heads are training-only
    assert nets.heads() == [] and nets.g_vis2ir(torch.zeros(1, 3, 32, 16)).shape == (1, 3, 32, 16)


def test_a_checkpoint_from_before_the_options_loads_and_resumes(tiny_dataset, tmp_path):
    """A default run's checkpoint holds what it held before (no new state), and one whose config lacks the new keys
    (as written before they existed) resumes to the weights of an uninterrupted run."""
    def config(out: Path, steps: int):
        return build_translator_config(tiny_translator_config(tiny_dataset, out, max_steps=steps))

    straight = train_translator(config(tmp_path / "straight", 6))
    split = train_translator(config(tmp_path / "split", 3))
    checkpoint = load_checkpoint(split)
    assert set(checkpoint["state"]) == TODAY_STATE and set(checkpoint["state"]["nets"]) == {"g_vis2ir", "g_ir2vis",
                                                                                          "d_vis", "d_ir"}
    new_keys = ("lambda_nce", "nce_layers", "nce_patches", "nce_temperature", "nce_idt", "lambda_structure",
                "structure")
    old_config = copy.deepcopy(checkpoint["config"])
    for key in new_keys:
        del old_config["train"][key]
    save_checkpoint(split, kind=CHECKPOINT_KIND, state=checkpoint["state"], config=old_config, step=checkpoint["step"])
    assert not set(new_keys) & set(load_checkpoint(split)["config"]["train"])
    resumed = train_translator(config(tmp_path / "split", 6))
    assert load_checkpoint(resumed)["step"] == 6
    assert_same_weights(straight, resumed)
