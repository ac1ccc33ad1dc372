"""Importing the CycleGAN reference's network files: the imported translator computes exactly what the reference's
networks compute, directly and through `translate`, with each generator in its direction."""
from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from reid.checkpoint import CheckpointError, load_checkpoint
from reid.data import Record, read_image
from reid.data.translated import output_relpath
from vi_translate.checkpoint import load_translator
from vi_translate.data import to_image, to_model_range
from vi_translate.import_reference import add_parser, import_cyclegan_generators
from vi_translate.translate import translate_records

NGF, N_BLOCKS, NDF, N_LAYERS_D = 4, 2, 4, 2
HEIGHT, WIDTH = 16, 8


# ------------------------------------------------ the reference's networks (models/networks.py), layer by layer


class ReferenceResnetBlock(nn.Module):
    """The reference's ResnetBlock (padding 'reflect', instance norm): pad, conv, norm, ReLU, [Dropout(0.5)],
    pad, conv, norm, with the residual added."""

    def __init__(self, dim: int, norm, use_dropout: bool) -> None:
        super().__init__()
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=True), norm(dim), nn.ReLU(True)]
        layers += [nn.Dropout(0.5)] if use_dropout else []
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=True), norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv_block(x)


class ReferenceResnetGenerator(nn.Module):
    """The reference's ResnetGenerator with --norm instance (bias in every conv): its state_dict keys are those
    of latest_net_G_*.pth. track_running_stats=True is the norm of the reference before PyTorch 0.4."""

    def __init__(self, input_nc: int, output_nc: int, *, use_dropout: bool = False,
                 track_running_stats: bool = False) -> None:
        super().__init__()

        def norm(channels):
            return nn.InstanceNorm2d(channels, affine=False, track_running_stats=track_running_stats)

        model = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, NGF, 7, padding=0, bias=True), norm(NGF), nn.ReLU(True)]
        for i in range(2):
            mult = 2 ** i
            model += [nn.Conv2d(NGF * mult, NGF * mult * 2, 3, stride=2, padding=1, bias=True), norm(NGF * mult * 2),
                      nn.ReLU(True)]
        model += [ReferenceResnetBlock(NGF * 4, norm, use_dropout) for _ in range(N_BLOCKS)]
        for i in range(2):
            mult = 2 ** (2 - i)
            model += [nn.ConvTranspose2d(NGF * mult, NGF * mult // 2, 3, stride=2, padding=1, output_padding=1,
                                         bias=True), norm(NGF * mult // 2), nn.ReLU(True)]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(NGF, output_nc, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x)


class ReferenceNLayerDiscriminator(nn.Module):
    """The reference's NLayerDiscriminator with --norm instance: its keys are those of latest_net_D_*.pth."""

    def __init__(self, input_nc: int) -> None:
        super().__init__()
        norm = nn.InstanceNorm2d
        sequence = [nn.Conv2d(input_nc, NDF, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, N_LAYERS_D):
            previous, mult = mult, min(2 ** n, 8)
            sequence += [nn.Conv2d(NDF * previous, NDF * mult, 4, stride=2, padding=1, bias=True), norm(NDF * mult),
                         nn.LeakyReLU(0.2, True)]
        previous, mult = mult, min(2 ** N_LAYERS_D, 8)
        sequence += [nn.Conv2d(NDF * previous, NDF * mult, 4, stride=1, padding=1, bias=True), norm(NDF * mult),
                     nn.LeakyReLU(0.2, True), nn.Conv2d(NDF * mult, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*sequence)

    def forward(self, x):
        return self.model(x)


def randomised(module: nn.Module, seed: int) -> nn.Module:
    """Every parameter drawn from N(0, 0.2) (weights unlike a fresh toolkit network's), in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(0.2 * torch.randn(parameter.shape, generator=generator))
    return module.eval()


def save_reference(module: nn.Module, path):
    torch.save(module.state_dict(), path)  # as the reference's BaseModel.save_networks writes it
    return path


def images(channels: int, seed: int, size: tuple[int, int] = (HEIGHT, WIDTH)) -> torch.Tensor:
    """[2, channels, *size] uniform in [-1, 1]."""
    return torch.rand(2, channels, *size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ------------------------------------------------------------------------------------------------ the tests


@pytest.mark.parametrize("layout, options, train_mode", [
    ("current", {}, False),
    ("dropout", {"use_dropout": True}, False),  # compared with the reference's test script under --eval
    ("pre_0.4_norm_statistics", {"track_running_stats": True}, True),  # its test script without --eval
])
def test_imported_generators_compute_what_the_reference_computes(tmp_path, layout, options, train_mode):
    g_a = randomised(ReferenceResnetGenerator(3, 3, **options), seed=1).train(train_mode)  # A = visible
    g_b = randomised(ReferenceResnetGenerator(3, 3, **options), seed=2).train(train_mode)
    checkpoint = import_cyclegan_generators(save_reference(g_a, tmp_path / "latest_net_G_A.pth"),
                                            save_reference(g_b, tmp_path / "latest_net_G_B.pth"),
                                            tmp_path / "imported.pt", ngf=NGF, n_blocks=N_BLOCKS, direction="AtoB",
                                            height=HEIGHT, width=WIDTH)
    nets, config = load_translator(checkpoint)
    assert (config.model.ngf, config.model.n_blocks, config.image.ir_channels) == (NGF, N_BLOCKS, 3)
    assert (config.image.crop_height, config.image.crop_width) == (HEIGHT, WIDTH)
    vis, ir = images(3, seed=3), images(3, seed=4)
    with torch.no_grad():
        assert torch.equal(nets.g_vis2ir(vis), g_a(vis)), "G_vis2ir differs from the reference's G_A"
        assert torch.equal(nets.g_ir2vis(ir), g_b(ir)), "G_ir2vis differs from the reference's G_B"


def test_translate_writes_what_the_reference_generators_make(tmp_path):
    """A = infrared (direction BtoA), 1-channel infrared: G_A is ir2vis, G_B vis2ir."""
    g_a = randomised(ReferenceResnetGenerator(1, 3), seed=5)
    g_b = randomised(ReferenceResnetGenerator(3, 1), seed=6)
    checkpoint = import_cyclegan_generators(save_reference(g_a, tmp_path / "G_A.pth"),
                                            save_reference(g_b, tmp_path / "G_B.pth"), tmp_path / "imported.pt",
                                            ngf=NGF, n_blocks=N_BLOCKS, direction="BtoA", height=HEIGHT, width=WIDTH)
    root, rng = tmp_path / "images", np.random.default_rng(0)
    root.mkdir()
    Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)).save(root / "person_vis.png")
    Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8)).save(root / "person_ir.png")
    records = [Record(str(root / "person_vis.png"), -1, -1, "vis"), Record(str(root / "person_ir.png"), -1, -1, "ir")]
    out = tmp_path / "translated"
    summary = translate_records(checkpoint, records, root, out, device=torch.device("cpu"), batch_size=1, workers=0)
    assert summary.ok and summary.translated == 2
    for name, mode, reference in [("person_vis.png", "RGB", g_b), ("person_ir.png", "L", g_a)]:
        with torch.no_grad():
            expected = to_image(reference(to_model_range(read_image(root / name, mode))[None])[0])
        written = Image.open(out / output_relpath(name))
        np.testing.assert_array_equal(np.asarray(written), np.asarray(expected), err_msg=name)


def test_reference_discriminators_are_imported_by_the_domain_they_judge(tmp_path):
    """D_A judges the reference's domain B: infrared when A is visible."""
    networks = {"G_A": ReferenceResnetGenerator(3, 1), "G_B": ReferenceResnetGenerator(1, 3),
                "D_A": ReferenceNLayerDiscriminator(1), "D_B": ReferenceNLayerDiscriminator(3)}
    paths = {name: save_reference(randomised(net, seed), tmp_path / f"latest_net_{name}.pth")
             for seed, (name, net) in enumerate(networks.items(), start=7)}
    references = {name: ReferenceNLayerDiscriminator(channels) for name, channels in [("D_A", 1), ("D_B", 3)]}
    for name, reference in references.items():
        reference.load_state_dict(torch.load(paths[name], weights_only=True))
    checkpoint = import_cyclegan_generators(paths["G_A"], paths["G_B"], tmp_path / "imported.pt", ngf=NGF,
                                            n_blocks=N_BLOCKS, height=HEIGHT, width=WIDTH, d_a_path=paths["D_A"],
                                            d_b_path=paths["D_B"], ndf=NDF, n_layers_d=N_LAYERS_D)
    nets, _ = load_translator(checkpoint)
    vis, ir = images(3, seed=11, size=(32, 32)), images(1, seed=12, size=(32, 32))  # patches need room
    with torch.no_grad():
        assert torch.equal(nets.d_ir(ir), references["D_A"](ir))
        assert torch.equal(nets.d_vis(vis), references["D_B"](vis))
    origin = load_checkpoint(checkpoint)["state"]["imported_from"]
    assert origin["direction"] == "AtoB" and origin["discriminators"] == "imported"
    assert sorted(origin["files"]) == ["D_A", "D_B", "G_A", "G_B"] and len(origin["files"]["G_A"]["sha256"]) == 64


def test_errors_name_the_file_and_the_key(tmp_path):
    g_a = save_reference(randomised(ReferenceResnetGenerator(3, 3), 1), tmp_path / "G_A.pth")
    g_b = save_reference(randomised(ReferenceResnetGenerator(3, 3), 2), tmp_path / "G_B.pth")
    sizes = {"height": HEIGHT, "width": WIDTH, "n_blocks": N_BLOCKS}
    with pytest.raises(CheckpointError, match=r"G_A\.pth.*model\.1\.weight: checkpoint \(4, 3, 7, 7\) vs model "
                                              r"\(8, 3, 7, 7\).*ngf=8"):
        import_cyclegan_generators(g_a, g_b, tmp_path / "a.pt", ngf=8, **sizes)
    with pytest.raises(CheckpointError, match=r"G_A\.pth.*unexpected keys \[model\.11\.conv_block"):
        import_cyclegan_generators(g_a, g_b, tmp_path / "b.pt", ngf=NGF, **(sizes | {"n_blocks": 1}))
    torch.save({"epoch": torch.tensor(3), "note": "not weights"}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match=r"other\.pth is not a state dict of tensors"):
        import_cyclegan_generators(g_a, tmp_path / "other.pth", tmp_path / "c.pt", ngf=NGF, **sizes)
    (tmp_path / "torn.pth").write_bytes(g_b.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"cannot read .*torn\.pth .*truncated"):
        import_cyclegan_generators(g_a, tmp_path / "torn.pth", tmp_path / "c.pt", ngf=NGF, **sizes)
    with pytest.raises(FileNotFoundError, match=r"missing\.pth"):
        import_cyclegan_generators(g_a, tmp_path / "missing.pth", tmp_path / "d.pt", ngf=NGF, **sizes)
    with pytest.raises(ValueError, match="direction"):
        import_cyclegan_generators(g_a, g_b, tmp_path / "e.pt", direction="vis2ir", ngf=NGF, **sizes)
    (tmp_path / "taken.pt").write_bytes(b"a trained translator")
    with pytest.raises(FileExistsError, match=r"taken\.pt exists"):
        import_cyclegan_generators(g_a, g_b, tmp_path / "taken.pt", ngf=NGF, **sizes)
    assert (tmp_path / "taken.pt").read_bytes() == b"a trained translator"
    assert not list(tmp_path.glob("[abcde].pt")), "nothing is written when the import fails"


def test_the_command_imports_what_the_function_does(tmp_path):
    """`import-reference G_A G_B --out CKPT ...`, parsed as vi_translate.cli parses its subcommands."""
    g_a = save_reference(randomised(ReferenceResnetGenerator(1, 3), 13), tmp_path / "G_A.pth")
    g_b = save_reference(randomised(ReferenceResnetGenerator(3, 1), 14), tmp_path / "G_B.pth")
    parser = argparse.ArgumentParser(prog="vi-translate")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["import-reference", str(g_a), str(g_b), "--out", str(tmp_path / "cli.pt"),
                              "--direction", "BtoA", "--ngf", str(NGF), "--n-blocks", str(N_BLOCKS),
                              "--height", str(HEIGHT), "--width", str(WIDTH)])
    code, text = args.handler(args)
    assert code == 0 and str(tmp_path / "cli.pt") in text
    direct = import_cyclegan_generators(g_a, g_b, tmp_path / "direct.pt", ngf=NGF, n_blocks=N_BLOCKS,
                                        direction="BtoA", height=HEIGHT, width=WIDTH)
    from_cli, expected = (load_checkpoint(path) for path in (tmp_path / "cli.pt", direct))
    assert from_cli["config"] == expected["config"]
    for name, weights in expected["state"]["nets"].items():
        assert all(torch.equal(weights[key], from_cli["state"]["nets"][name][key]) for key in weights), name
