"""`vireid export` / `reid.export`: every format and modality mode, run with onnxruntime, torch.export.load or
torch.jit.load on two batch sizes, against the PyTorch model's own forward (`model(images, is_ir)`, `embed_batch`).

Tolerance: TOLERANCE = 1e-5 absolute, fp32 on the CPU (measured: about 1e-7 for ONNX, 0 for pt2 and TorchScript)."""
from __future__ import annotations

import hashlib
import json
import sys

import pytest
import torch

import reid.export
from reid.cli import main
from reid.config import ModelConfig
from reid.export import MODALITY_MODES, ExportError, export_reid_model, sidecar_path
from reid.features import embed_batch
from reid.models import build_model, load_model_checkpoint, save_model_checkpoint

TOLERANCE = 1e-5  # absolute, fp32 on the CPU
pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning"),  # its deprecation notice
              pytest.mark.usefixtures("one_torch_thread")]
HEIGHT, WIDTH = 32, 16
SUFFIX = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".pt"}
# each mode exported once per format, with flip / normalise varied across modes (the CLI test adds neither)
SETTINGS = {"vis": {"flip": True, "normalise": True}, "ir": {"flip": True, "normalise": False},
            "both": {"flip": False, "normalise": True}, "input": {"flip": True, "normalise": True}}
FORMATS = ("onnx", "pt2", "torchscript")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny model whose stems differ (they start as copies of one stem) and whose BN layers hold non-trivial
    statistics, saved as a "reid" checkpoint."""
    torch.manual_seed(0)
    model = build_model("tiny")
    with torch.no_grad():
        for parameter in model.stems["ir"].parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.2)
    path = tmp_path_factory.mktemp("reid") / "tiny.pt"
    save_model_checkpoint(path, model, ModelConfig(arch="tiny", height=HEIGHT, width=WIDTH))
    return path


@pytest.fixture(scope="module")
def model(checkpoint):
    return load_model_checkpoint(checkpoint)


def require_format(fmt: str) -> None:
    if fmt == "onnx":
        for package in ("onnx", "onnxscript", "onnxruntime"):
            pytest.importorskip(package)


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    """exported(fmt, modality) -> the graph files `vireid export` wrote (each pair exported once, end to end
    through the command line; the ONNX ir graph at --opset 18, the others at the exporter's default)."""
    cache = {}

    def export(fmt: str, modality: str):
        require_format(fmt)
        if (fmt, modality) not in cache:
            out = tmp_path_factory.mktemp(f"{fmt}_{modality}") / f"model{SUFFIX[fmt]}"
            flags = (["--flip"] if SETTINGS[modality]["flip"] else []) + \
                    ([] if SETTINGS[modality]["normalise"] else ["--no-normalise"]) + \
                    (["--opset", "18"] if (fmt, modality) == ("onnx", "ir") else [])
            assert main(["export", "--checkpoint", str(checkpoint), "--format", fmt, "--out", str(out),
                         "--modality", modality, *flags]) == 0
            stems = ("vis", "ir") if modality == "both" else (modality,)
            cache[fmt, modality] = [out.with_name(f"model_{s}{out.suffix}") for s in stems] \
                if modality == "both" else [out]
            assert sorted(out.parent.iterdir()) == sorted([*cache[fmt, modality],
                                                           *map(sidecar_path, cache[fmt, modality])])
        return cache[fmt, modality]

    return export


def reference(net, images, is_ir, *, flip, normalise):
    """The PyTorch model's feature through its own forward (which picks each row's stem by index)."""
    with torch.no_grad():
        if normalise:
            return embed_batch(net, images, is_ir, flip, normalise=True)
        raw = net(images, is_ir)["features"]
        return (raw + net(images.flip(3), is_ir)["features"]) / 2 if flip else raw


def run_graph(path, fmt, images, is_ir=None):
    """Run an exported file as a user would: onnxruntime, torch.export.load, or torch.jit.load."""
    if fmt == "pt2":
        program = torch.export.load(str(path)).module()
        with torch.no_grad():
            return program(images) if is_ir is None else program(images, is_ir)
    if fmt == "onnx":
        onnxruntime = pytest.importorskip("onnxruntime")
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feeds = {"images": images.numpy()} | ({} if is_ir is None else {"is_ir": is_ir.numpy()})
        return torch.from_numpy(session.run(["features"], feeds)[0])
    loaded = torch.jit.load(str(path))
    with torch.no_grad():
        return loaded(images) if is_ir is None else loaded(images, is_ir)


def images_of(batch: int, seed: int) -> torch.Tensor:
    return torch.randn(batch, 3, HEIGHT, WIDTH, generator=torch.Generator().manual_seed(seed))


def mixed(batch: int) -> torch.Tensor:
    return torch.tensor([True, False, True, True, False][:batch])


def max_difference(a, b) -> float:
    assert a.shape == b.shape
    return float((a - b).abs().max())


@pytest.mark.parametrize("modality", MODALITY_MODES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_exported_graph_equals_pytorch_on_two_batch_sizes(exported, model, fmt, modality):
    paths = exported(fmt, modality)
    stems = ["vis", "ir"] if modality == "both" else [modality]
    net, _ = model
    for path, stem in zip(paths, stems):
        for batch in (1, 5):
            images = images_of(batch, seed=batch)
            if stem == "input":
                is_ir = mixed(batch)
                actual = run_graph(path, fmt, images, is_ir)
            else:
                is_ir = torch.full((batch,), stem == "ir")
                actual = run_graph(path, fmt, images)
            expected = reference(net, images, is_ir, **SETTINGS[modality])
            assert actual.shape == (batch, 64) and actual.dtype == torch.float32
            assert max_difference(actual, expected) <= TOLERANCE, (path.name, batch)
            norms = actual.norm(dim=1)
            if SETTINGS[modality]["normalise"]:
                torch.testing.assert_close(norms, torch.ones(batch))
            else:
                assert (norms - 1).abs().min() > 1e-2  # the raw feature, not a unit vector


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_per_stem_graphs_differ(exported, fmt):
    vis, ir = exported(fmt, "both")
    images = images_of(4, seed=7)
    assert max_difference(run_graph(vis, fmt, images), run_graph(ir, fmt, images)) > 1e-2


@pytest.mark.parametrize("fmt", FORMATS)
def test_modality_input_picks_each_rows_stem_within_one_batch(exported, model, fmt):
    """is_ir False rows equal the vis graph (same flip / normalise), True rows the ir stem's features."""
    (graph,), (vis_graph,) = exported(fmt, "input"), exported(fmt, "vis")
    images = images_of(5, seed=11)
    is_ir = torch.tensor([False, True, True, False, True])
    actual = run_graph(graph, fmt, images, is_ir)
    vis_rows = run_graph(vis_graph, fmt, images)
    ir_rows = reference(model[0], images, torch.ones(5, dtype=torch.bool), **SETTINGS["input"])
    assert max_difference(actual[~is_ir], vis_rows[~is_ir]) <= TOLERANCE
    assert max_difference(actual[is_ir], ir_rows[is_ir]) <= TOLERANCE
    assert max_difference(actual[is_ir], vis_rows[is_ir]) > 1e-2  # the ir rows did not go through the vis stem
    all_vis = run_graph(graph, fmt, images, torch.zeros(5, dtype=torch.bool))
    assert max_difference(all_vis, vis_rows) <= TOLERANCE


@pytest.mark.parametrize("fmt", FORMATS)
def test_sidecar_tells_how_to_feed_the_graph(exported, checkpoint, fmt):
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    for modality in ("both", "input"):
        for path in exported(fmt, modality):
            sidecar = json.loads(sidecar_path(path).read_text())
            stem = path.stem.rsplit("_", 1)[1] if modality == "both" else "input"
            assert sidecar["file"] == path.name and sidecar["kind"] == "reid" and sidecar["format"] == fmt
            assert sidecar["modality"] == stem
            assert sidecar["input_size"] == {"height": HEIGHT, "width": WIDTH}
            assert sidecar["preprocessing"]["mean"] == [0.485, 0.456, 0.406]
            assert sidecar["preprocessing"]["std"] == [0.229, 0.224, 0.225]
            assert (sidecar["flip"], sidecar["normalise"]) == (SETTINGS[modality]["flip"],
                                                               SETTINGS[modality]["normalise"])
            assert sidecar["feature_size"] == 64 and sidecar["output"] == {
                "name": "features", "dtype": "float32", "shape": ["batch", 64]}
            names = ["images", "is_ir"] if modality == "input" else ["images"]
            assert [i["name"] for i in sidecar["inputs"]] == names
            assert sidecar["inputs"][0]["shape"] == ["batch", 3, HEIGHT, WIDTH]
            assert sidecar["checkpoint_sha256"] == digest and sidecar["checkpoint"] == str(checkpoint)
            assert sidecar["check"]["batch"] == 3 and sidecar["check"]["max_abs_diff_vs_pytorch"] <= TOLERANCE
            assert (sidecar["opset"] >= 18) if fmt == "onnx" else sidecar["opset"] is None


def test_onnx_graph_declares_a_dynamic_batch_and_its_names(exported):
    onnxruntime = pytest.importorskip("onnxruntime")
    (path,) = exported("onnx", "input")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = {i.name: (i.type, i.shape) for i in session.get_inputs()}
    assert inputs == {"images": ("tensor(float)", ["batch", 3, HEIGHT, WIDTH]), "is_ir": ("tensor(bool)", ["batch"])}
    assert [(o.name, o.shape) for o in session.get_outputs()] == [("features", ["batch", 64])]


def test_readme_recipe_without_the_toolkit_gives_the_evaluation_features(exported, model, tmp_path):
    """docs/deployment.md's snippet (PIL bilinear resize, the sidecar's mean / std, onnxruntime) on an image file of
    another size equals `extract_features` of that file, the features `vireid evaluate` ranks (flip off, as the graph)."""
    onnxruntime = pytest.importorskip("onnxruntime")
    import numpy as np
    from PIL import Image

    from reid.data import Record
    from reid.features import extract_features

    vis_graph = exported("onnx", "both")[0]
    person = tmp_path / "person.jpg"
    pixels = np.random.default_rng(0).integers(0, 256, (77, 41, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(person)
    # docs/deployment.md "Export a model", verbatim but for the paths
    meta = json.load(open(sidecar_path(vis_graph))); size, pre = meta["input_size"], meta["preprocessing"]
    image = Image.open(person).convert("RGB").resize((size["width"], size["height"]), Image.BILINEAR)
    images = ((np.asarray(image, np.float32) / 255 - pre["mean"]) / pre["std"]).transpose(2, 0, 1)[None].astype(
        np.float32)
    features = onnxruntime.InferenceSession(str(vis_graph)).run(["features"], {"images": images})[0]
    net, config = model
    expected = extract_features(net, [Record(str(person), -1, -1, "vis")], torch.device("cpu"), height=config.height,
                                width=config.width, flip=False, num_workers=0, progress=False)
    assert features.shape == (1, 64)
    assert max_difference(torch.from_numpy(features), expected) <= TOLERANCE


def test_cli_defaults_and_no_normalise_without_flip(checkpoint, model, tmp_path, capsys):
    """--modality both by default; no flip and --no-normalise: the raw BN-neck features."""
    out = tmp_path / "deploy" / "reid.pt"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "torchscript", "--out", str(out),
                 "--no-normalise"]) == 0
    written = sorted(p.name for p in out.parent.iterdir())
    assert written == ["reid_ir.pt", "reid_ir.pt.json", "reid_vis.pt", "reid_vis.pt.json"]
    assert "reid_vis.pt" in capsys.readouterr().out
    images = images_of(3, seed=5)
    for stem in ("vis", "ir"):
        expected = model[0](images, torch.full((3,), stem == "ir"))["features"].detach()
        assert max_difference(run_graph(out.parent / f"reid_{stem}.pt", "torchscript", images), expected) <= TOLERANCE
        sidecar = json.loads((out.parent / f"reid_{stem}.pt.json").read_text())
        assert (sidecar["modality"], sidecar["flip"], sidecar["normalise"]) == (stem, False, False)


def test_onnx_opset_is_the_one_asked_for(exported):
    onnx = pytest.importorskip("onnx")
    ((ir,), (vis,)) = exported("onnx", "ir"), exported("onnx", "vis")
    opsets = [[o.version for o in onnx.load(str(p)).opset_import if o.domain in ("", "ai.onnx")] for p in (ir, vis)]
    assert opsets[0] == [18] and opsets[1][0] >= 18
    assert [json.loads(sidecar_path(p).read_text())["opset"] for p in (ir, vis)] == [18, opsets[1][0]]


def test_export_leaves_the_callers_model_as_it_was(checkpoint, tmp_path):
    net, config = load_model_checkpoint(checkpoint)
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    export_reid_model(net, config, tmp_path / "m.pt", fmt="torchscript", modality="vis")
    assert net.training and all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_missing_onnx_packages_name_the_install_command(checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # `import onnxscript` now raises ImportError
    with pytest.raises(ExportError, match=r"onnxscript.*pip install -e '\.\[onnx\]'"):
        reid.export.require_onnx()
    assert main(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "pip install -e '.[onnx]'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
    # without onnxruntime the graph is written unchecked, and the sidecar says so
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert reid.export.run_exported(b"unused", "onnx", (torch.zeros(1),), ["images"]) is None
    # TorchScript needs none of them
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "torchscript", "--modality", "vis",
                 "--out", str(tmp_path / "m.pt")]) == 0


def test_bad_checkpoints_and_outputs_are_errors_naming_the_file(checkpoint, tmp_path, capsys):
    def error(*argv):
        assert main(["export", "--format", "torchscript", *argv]) == 2
        return capsys.readouterr().err

    missing = tmp_path / "missing.pt"
    assert str(missing) in error("--checkpoint", str(missing), "--out", str(tmp_path / "m.pt"))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    assert str(garbage) in error("--checkpoint", str(garbage), "--out", str(tmp_path / "m.pt"))
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    message = error("--checkpoint", str(checkpoint), "--out", str(blocker / "m.pt"))
    assert f"vireid: error: --out {blocker / 'm.pt'}: {blocker} is a file, not a folder" in message
    assert "is a folder, not a file" in error("--checkpoint", str(checkpoint), "--out", str(tmp_path))
    # a trailing separator names a folder, not a file "newdir" (nor newdir_vis / newdir.json)
    assert f"--out {tmp_path / 'newdir'}/ is a folder, not a file: give the path of the file to write" \
        in error("--checkpoint", str(checkpoint), "--out", f"{tmp_path / 'newdir'}/")
    # an unrelated file is not replaced without --overwrite; an earlier export (with its sidecar) is
    notes = tmp_path / "notes_vis.pt"
    notes.write_text("mine")
    assert "already exists and is not an exported model" in error("--checkpoint", str(checkpoint), "--out",
                                                                  str(tmp_path / "notes.pt"))
    assert notes.read_text() == "mine"
    notes.unlink()
    assert "opset 18 or later" in error("--checkpoint", str(checkpoint), "--out", str(tmp_path / "m.onnx"),
                                        "--format", "onnx", "--opset", "17")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "garbage.pt"]
    for _ in range(2):  # a rerun replaces its own export; --overwrite replaces anything
        assert main(["export", "--checkpoint", str(checkpoint), "--format", "pt2", "--modality", "vis", "--out",
                     str(tmp_path / "again.pt2")]) == 0
    (tmp_path / "again.pt2.json").unlink()
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "pt2", "--modality", "vis", "--out",
                 str(tmp_path / "again.pt2")]) == 2
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "pt2", "--modality", "vis", "--out",
                 str(tmp_path / "again.pt2"), "--overwrite"]) == 0


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = capsys.readouterr().out
    for option in ("--checkpoint", "--format", "--out", "--modality", "--flip", "--no-normalise", "--opset"):
        assert option in text
    assert "sidecar" in text and "model_vis.onnx" in text
