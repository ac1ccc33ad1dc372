"""`vi-translate export` / `vi_translate.export`: both generators of a tiny trained translator, run with
onnxruntime, torch.export.load or torch.jit.load on two batch sizes, against the PyTorch generators.

Tolerance: TOLERANCE = 1e-5 absolute, fp32 on the CPU (measured: under 1e-6 for ONNX, 0 for pt2 and TorchScript)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys

import pytest
import torch

from reid.export import ExportError, require_onnx, sidecar_path
from vi_translate.checkpoint import load_translator
from vi_translate.cli import main
from vi_translate.cyclegan import build_nets
from vi_translate.export import export_generators

TOLERANCE = 1e-5  # absolute, fp32 on the CPU
pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning"),  # its deprecation notice
              pytest.mark.usefixtures("one_torch_thread")]
FORMATS = ("onnx", "pt2", "torchscript")
SUFFIX = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".pt"}
HEIGHT, WIDTH = 32, 16  # the tiny translator's crop size (translator_helpers.tiny_translator_config)


def require_format(fmt: str) -> None:
    if fmt == "onnx":
        for package in ("onnx", "onnxscript", "onnxruntime"):
            pytest.importorskip(package)


def run_graph(path, fmt, images):
    if fmt == "pt2":
        with torch.no_grad():
            return torch.export.load(str(path)).module()(images)
    if fmt == "onnx":
        onnxruntime = pytest.importorskip("onnxruntime")
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(["translated"], {"images": images.numpy()})[0])
    with torch.no_grad():
        return torch.jit.load(str(path))(images)


def images_of(batch: int, channels: int, seed: int) -> torch.Tensor:
    return torch.rand(batch, channels, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_cli_exports_both_generators_equal_to_pytorch(tiny_translator, tmp_path, fmt, capsys):
    require_format(fmt)
    out = tmp_path / "generators"
    assert main(["export", "--checkpoint", str(tiny_translator), "--format", fmt, "--out", str(out)]) == 0
    names = [f"{d}{SUFFIX[fmt]}" for d in ("ir2vis", "vis2ir")]
    assert sorted(p.name for p in out.iterdir()) == sorted([*names, *(f"{n}.json" for n in names)])
    assert f"vis2ir{SUFFIX[fmt]}" in capsys.readouterr().out
    nets, _ = load_translator(tiny_translator)
    digest = hashlib.sha256(tiny_translator.read_bytes()).hexdigest()
    outputs = {}
    for direction, generator in (("vis2ir", nets.g_vis2ir), ("ir2vis", nets.g_ir2vis)):
        path = out / f"{direction}{SUFFIX[fmt]}"
        for batch in (1, 5):
            images = images_of(batch, 3, seed=batch)
            with torch.no_grad():
                expected = generator(images)
            actual = run_graph(path, fmt, images)
            assert actual.shape == (batch, 3, HEIGHT, WIDTH)
            assert float((actual - expected).abs().max()) <= TOLERANCE, (direction, batch)
            outputs[direction] = actual
        sidecar = json.loads(sidecar_path(path).read_text())
        assert (sidecar["kind"], sidecar["format"], sidecar["direction"], sidecar["file"]) == (
            "translator", fmt, direction, path.name)
        assert sidecar["input_size"] == {"height": HEIGHT, "width": WIDTH}
        assert sidecar["channels"] == {"input": 3, "output": 3} and sidecar["value_range"] == [-1.0, 1.0]
        assert sidecar["inputs"] == [{"name": "images", "dtype": "float32", "shape": ["batch", 3, HEIGHT, WIDTH]}]
        assert sidecar["output"]["name"] == "translated"
        assert sidecar["checkpoint_sha256"] == digest
        assert sidecar["check"]["batch"] == 3 and sidecar["check"]["max_abs_diff_vs_pytorch"] <= TOLERANCE
    # the two generators really differ, so a swapped pair would fail the comparisons above
    assert float((outputs["vis2ir"] - outputs["ir2vis"]).abs().max()) > 1e-3


def test_one_direction_and_one_channel_infrared(tiny_translator, tmp_path):
    """export_generators with explicit arguments: ir2vis only, for a translator with 1-channel infrared."""
    _, config = load_translator(tiny_translator)
    config = dataclasses.replace(config, image=dataclasses.replace(config.image, ir_channels=1))
    torch.manual_seed(0)
    nets = build_nets(config.model, ir_channels=1)
    for generator in nets.generators():
        generator.train()
    written = export_generators(nets, config, tmp_path, fmt="torchscript", direction="ir2vis")
    assert written == [tmp_path / "ir2vis.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ir2vis.pt", "ir2vis.pt.json"]
    assert nets.g_ir2vis.training  # the caller's generator is left in its mode
    images = images_of(4, 1, seed=2)
    with torch.no_grad():
        expected = nets.g_ir2vis.eval()(images)
    assert float((run_graph(written[0], "torchscript", images) - expected).abs().max()) <= TOLERANCE
    sidecar = json.loads(sidecar_path(written[0]).read_text())
    assert sidecar["channels"] == {"input": 1, "output": 3} and sidecar["ir_channels"] == 1
    assert sidecar["inputs"][0]["shape"] == ["batch", 1, HEIGHT, WIDTH] and sidecar["checkpoint_sha256"] is None


def test_errors_name_the_file_or_the_package(tiny_translator, tmp_path, monkeypatch, capsys):
    def error(*argv):
        assert main(["export", *argv]) == 2
        return capsys.readouterr().err

    missing = tmp_path / "missing.pt"
    assert str(missing) in error("--checkpoint", str(missing), "--out", str(tmp_path / "g"))
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert f"--out {blocker} is a file" in error("--checkpoint", str(tiny_translator), "--format", "torchscript",
                                                 "--out", str(blocker))
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    with pytest.raises(ExportError, match=r"missing: onnx\).*pip install -e '\.\[onnx\]'"):
        require_onnx()
    assert "pip install -e '.[onnx]'" in error("--checkpoint", str(tiny_translator), "--out", str(tmp_path / "g"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = capsys.readouterr().out
    for option in ("--checkpoint", "--format", "--out", "--direction", "--opset"):
        assert option in text
    assert "sidecar" in text and "vis2ir.onnx" in text
