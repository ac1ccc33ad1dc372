from __future__ import annotations

import pytest
import torch
import torchvision

from reid.models import ARCHITECTURES, GeM, NonLocal, build_model

# Two-stream parameter counts, derived from torchvision's reference ResNets:
#   torchvision resnet50 = 25,557,032; minus fc (2048*1000 + 1000 = 2,049,000) -> 23,508,032;
#   plus one more stem: conv1 (64*3*7*7 = 9,408) + bn1 (2*64 = 128) = 9,536; plus BN neck (2*2048 = 4,096)
#   -> 23,521,664.
RESNET50_PARAMS = 23_521_664
#   torchvision resnet18 = 11,689,512; minus fc (512*1000 + 1000 = 513,000) -> 11,176,512;
#   plus one stem 9,536 and the BN neck (2*512 = 1,024) -> 11,187,072.
RESNET18_PARAMS = 11_187_072
#   A non-local block on C channels as the AGW code builds it (inter_channels = reduc_ratio // reduc_ratio = 1):
#   theta, phi, g (C*1 + 1 each), W conv (1*C + C), W BN (2C) = 7C + 3: C=512 -> 3,587; C=1024 -> 7,171.
#   AGW places 2 on layer2 (512) and 3 on layer3 (1024): 2*3,587 + 3*7,171 = 28,687.
AGW_RESNET50_PARAMS = RESNET50_PARAMS + 28_687  # = 23,550,351
#   tiny: two stems of 3x3 conv 3->16 (432) + BN (32); stages 16->32 (4,608 + 64), 32->64 (18,432 + 128),
#   64->64 (36,864 + 128); BN neck 128 -> 2*464 + 60,224 + 128 = 61,280.
TINY_PARAMS = 61_280
#   small: two stems of 3x3 conv 3->24 (648) + BN (48); stages 24->48 (10,368 + 96), 48->96 (41,472 + 192),
#   96->128 (110,592 + 256); BN neck 256 -> 2*696 + 162,976 + 256 = 164,624.
SMALL_PARAMS = 164_624


def num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def stem_params(resnet: torch.nn.Module) -> int:
    return num_params(resnet.conv1) + num_params(resnet.bn1)


def test_parameter_counts_equal_the_reference_architectures():
    for arch, reference, literal in (("resnet50", torchvision.models.resnet50(), RESNET50_PARAMS),
                                     ("resnet18", torchvision.models.resnet18(), RESNET18_PARAMS)):
        model = build_model(arch)
        expected = num_params(reference) - num_params(reference.fc) + stem_params(reference) + 2 * model.feature_dim
        assert num_params(model) == expected == literal, arch
    agw = build_model("agw_resnet50")
    non_local = sum(num_params(NonLocal(c)) for c in (512, 512, 1024, 1024, 1024))
    assert num_params(agw) == RESNET50_PARAMS + non_local == AGW_RESNET50_PARAMS == 23_550_351
    # the paper's width (C / 2) is available: 2C^2 + 4.5C per block
    assert num_params(NonLocal(512, inter_channels=256)) == 2 * 512**2 + 4.5 * 512
    assert num_params(build_model("tiny")) == TINY_PARAMS
    assert num_params(build_model("small")) == SMALL_PARAMS


def test_resnet50_last_stride_one_and_feature_shapes():
    """288x144 -> stem 72x36 -> layer4 18x9 (last stride 1); shapes traced on the meta device (no compute)."""
    model = build_model("resnet50").eval().to("meta")
    images = torch.empty(2, 3, 288, 144, device="meta")
    stem_map = model.stems["ir"](images)
    feature_map = model.trunk(stem_map)
    features = model.neck(model.pool(feature_map))
    assert stem_map.shape == (2, 64, 72, 36) and feature_map.shape == (2, 2048, 18, 9)
    assert features.shape == (2, 2048) and model.feature_dim == 2048
    assert all(m.stride == (1, 1) for m in model.trunk.layer4.modules() if isinstance(m, torch.nn.Conv2d))
    assert build_model("resnet18").feature_dim == 512


def test_agw_non_local_placement_and_identity_at_init():
    model = build_model("agw_resnet50")
    blocks = model.trunk.non_local
    assert {layer: sorted(blocks[layer]) for layer in blocks} == {"layer2": ["2", "3"], "layer3": ["3", "4", "5"]}
    block = blocks["layer2"]["2"]
    assert block.theta.out_channels == block.phi.out_channels == block.g.out_channels == 1  # as the AGW code
    x = torch.randn(2, 512, 6, 3)
    torch.testing.assert_close(block.eval()(x), x)
    assert len(build_model("resnet50").trunk.non_local) == 0
    assert len(build_model("resnet50", non_local=True).trunk.non_local) == 2
    assert len(build_model("agw_resnet50", non_local=False).trunk.non_local) == 0


def test_non_local_attends_once_trained():
    block = NonLocal(8, inter_channels=4)
    torch.nn.init.ones_(block.W[1].weight)
    x = torch.randn(2, 8, 4, 3)
    y = block.eval()(x)
    assert y.shape == x.shape and not torch.allclose(y, x)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_trains_one_step(arch):
    """timm-style: forward and backward on a mixed 64x32 batch; gradients reach both stems and the trunk."""
    torch.manual_seed(0)
    model = build_model(arch).train()
    images, is_ir = torch.randn(2, 3, 64, 32), torch.tensor([False, True])
    out = model(images, is_ir)
    assert out["pooled"].shape == out["features"].shape == (2, model.feature_dim)
    (out["pooled"].sum() + out["features"].pow(2).sum()).backward()
    for modality in ("vis", "ir"):
        grads = [p.grad for p in model.stems[modality].parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads), f"{arch}: no gradient in the {modality} stem"
    assert all(p.grad is not None for p in model.trunk.parameters())
    assert model.neck.bias.grad is None and model.neck.weight.grad is not None


def test_bn_neck_init_frozen_bias_and_running_stats_in_eval():
    model = build_model("tiny")
    assert torch.equal(model.neck.weight, torch.ones(64)) and torch.equal(model.neck.bias, torch.zeros(64))
    assert not model.neck.bias.requires_grad and model.neck.weight.requires_grad
    model.train()
    for _ in range(3):
        model(torch.randn(4, 3, 64, 32), torch.tensor([False, True, False, True]))
    model.eval()
    images, is_ir = torch.randn(3, 3, 64, 32), torch.tensor([True, False, True])
    with torch.no_grad():
        out = model(images, is_ir)
        single = model(images[:1], is_ir[:1])
    neck = model.neck
    expected = (out["pooled"] - neck.running_mean) / torch.sqrt(neck.running_var + neck.eps) * neck.weight + neck.bias
    torch.testing.assert_close(out["features"], expected)
    torch.testing.assert_close(single["features"], out["features"][:1])


def test_mixed_batch_keeps_order_and_routes_each_stem():
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    with torch.no_grad():
        model.stems["ir"].conv.weight.mul_(-2.0)  # make the stems differ
        images = torch.randn(5, 3, 64, 32)
        is_ir = torch.tensor([True, False, False, True, False])
        mixed = model(images, is_ir)["features"]
        vis = model(images, torch.zeros(5, dtype=torch.bool))["features"]
        ir = model(images, torch.ones(5, dtype=torch.bool))["features"]
    torch.testing.assert_close(mixed, torch.where(is_ir[:, None], ir, vis))
    assert not torch.allclose(vis, ir)


def test_gem_pooling():
    x = torch.rand(2, 3, 4, 5)
    torch.testing.assert_close(GeM(3.0)(x), (x.clamp(min=1e-6) ** 3).mean((2, 3)) ** (1 / 3))
    torch.testing.assert_close(GeM(1.0)(x), x.mean((2, 3)))
    assert not list(GeM().parameters())
    assert build_model("tiny", gem_p=4.0).pool.p == 4.0


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown architecture 'vit'.*agw_resnet50"):
        build_model("vit")
    with pytest.raises(ValueError, match="layer3, which has only 2 blocks"):
        build_model("resnet18", non_local=True)
    with pytest.raises(ValueError, match="no ImageNet weights are known for 'tiny'.*vireid pretrain"):
        build_model("tiny", pretrained="imagenet")
    model = build_model("tiny")
    with pytest.raises(ValueError, match=r"is_ir must be \[B\] = \[2\]"):
        model(torch.randn(2, 3, 64, 32), torch.tensor([True]))
    with pytest.raises(TypeError, match="bool tensor"):
        model(torch.randn(2, 3, 64, 32), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        model(torch.randn(3, 64, 32), torch.tensor([True]))


# --------------------------------------------------------------------------- ImageNet weights


@pytest.fixture
def fake_resnet18_weights(tmp_path):
    """A random torchvision resnet18 state dict saved under torchvision's file name."""
    torch.manual_seed(1)
    state = torchvision.models.resnet18().state_dict()
    path = tmp_path / "checkpoints" / "resnet18-f37072fd.pth"
    path.parent.mkdir()
    torch.save(state, path)
    return path, state


def assert_loaded(model, state):
    for modality in ("vis", "ir"):
        stem = model.stems[modality]
        torch.testing.assert_close(stem.conv1.weight, state["conv1.weight"])
        torch.testing.assert_close(stem.bn1.running_var, state["bn1.running_var"])
    torch.testing.assert_close(model.trunk.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    torch.testing.assert_close(model.trunk.layer4[1].bn2.bias, state["layer4.1.bn2.bias"])
    torch.testing.assert_close(model.trunk.layer4[0].downsample[0].weight, state["layer4.0.downsample.0.weight"])


def test_weights_load_from_a_path(fake_resnet18_weights):
    path, state = fake_resnet18_weights
    assert_loaded(build_model("resnet18", pretrained=path), state)


def test_imagenet_weights_load_from_the_hub_cache(fake_resnet18_weights, monkeypatch):
    path, state = fake_resnet18_weights
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(path.parent.parent))
    assert_loaded(build_model("resnet18", pretrained="imagenet"), state)


def test_missing_or_mismatched_weights_say_what_was_tried(fake_resnet18_weights, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty_hub"))
    with pytest.raises(FileNotFoundError) as error:
        build_model("resnet50", pretrained="imagenet")
    message = str(error.value)
    assert str(tmp_path / "empty_hub" / "checkpoints" / "resnet50-0676ba61.pth") in message
    assert "resnet50-11ad3fa6.pth" in message and "pretrained=<path" in message
    with pytest.raises(FileNotFoundError, match="nowhere.pth does not exist"):
        build_model("resnet18", pretrained=tmp_path / "nowhere.pth")
    with pytest.raises(ValueError, match="does not fit this model.*shape mismatches"):
        build_model("resnet50", pretrained=fake_resnet18_weights[0])
