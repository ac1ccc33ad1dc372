"""Export a ReID model as an ONNX graph, a torch.export program or a TorchScript module that computes the retrieval
feature.

The graph takes images [B, 3, H, W] float32, already resized to the model's height x width and normalised with
the ImageNet mean / std (what `reid.data.transforms.build_test_transform` does), B free, and returns
"features" [B, D] float32:

- normalised (the default): the L2-normalised BN-neck feature, with `flip` the normalised mean of it and of the
  horizontally flipped image's, exactly `reid.features.embed_batch(model, images, is_ir, flip, normalise=True)`,
  the features `vireid evaluate` ranks with (it uses flip);
- not normalised: the raw BN-neck output `model(images, is_ir)["features"]`, with `flip` the mean of the two
  views' raw features (embed_batch(normalise=False) differs: it averages the views' normalised features).

Modality: "vis" / "ir" give one graph holding that stem only (the image goes through the visible or the
infrared stem, then the shared trunk); "both" writes one such graph per stem (OUT with `_vis` / `_ir` before its
suffix); "input" one graph with a second input "is_ir" [B] bool (True: row i is an infrared image) that runs
both stems on every row and keeps each row's own, so one batch may mix modalities (the stems cost twice
their compute; the trunk runs once).

Each graph gets a JSON sidecar (graph path + ".json") telling how to feed it: input names and shapes, the input
size, mean / std, modality, flip, normalise, feature size, output name, the checkpoint's sha256, the exporter and
opset, and the largest difference from PyTorch measured on a batch of another size than the traced one.

ONNX goes through `torch.onnx.export(dynamo=True)` (torch.export + onnxscript, opset 18 or later; the dynamo
exporter cannot convert these graphs to older opsets), the batch axis dynamic; "pt2" through `torch.export.export`
+ `torch.export.save` (the format torch recommends now: `torch.export.load(path).module()` runs it, the batch
axis dynamic); TorchScript (deprecated in torch 2.9 and later, kept for libtorch users) through
`torch.jit.trace` + `torch.jit.save`. Graphs are built in memory, run once to check them, and written atomically
(`reid.files.write_atomically`). `vi_translate.export` writes translator generators with the same helpers.
"""
from __future__ import annotations

import copy
import dataclasses
import importlib
import io
import logging
import os
import re
import warnings
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .cli_support import write_json
from .data.transforms import IMAGENET_MEAN, IMAGENET_STD
from .files import check_output_file, file_sha256, write_atomically
from .models import load_model_checkpoint

logger = logging.getLogger(__name__)

FORMATS = ("onnx", "pt2", "torchscript")
SUFFIXES = {"onnx": ".onnx", "pt2": ".pt2", "torchscript": ".pt"}  # each format's usual file suffix
MODALITY_MODES = ("both", "vis", "ir", "input")
STEMS = ("vis", "ir")
INPUT_NAME = "images"
MODALITY_INPUT_NAME = "is_ir"
OUTPUT_NAME = "features"
MIN_OPSET = 18  # the dynamo exporter's oldest opset; its conversion to older ones fails on these graphs
ONNX_PACKAGES = ("onnx", "onnxscript")
ONNX_INSTALL = "pip install -e '.[onnx]'"
TOLERANCE = 1e-5  # largest difference from PyTorch expected in fp32 on the CPU for outputs of order 1 (the tests')
TRACE_BATCH = 2  # batch of the example the graph is traced with (2, not 1: torch.export specialises a size of 1)
CHECK_BATCH = 3  # batch of the check run after export: another size than the traced one
EXPORTERS = {"onnx": "torch.onnx.export(dynamo=True)", "pt2": "torch.export.export", "torchscript": "torch.jit.trace"}


class ExportError(RuntimeError):
    """A model could not be exported; the message names the output file, or the package to install."""


# ------------------------------------------------------------------------------ the exported functions


def flip_and_normalise(network: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, flip: bool,
                       normalise: bool) -> torch.Tensor:
    """network(images) [B, D] as float32, combined with network(flipped images) and normalised as the module
    docstring says (the normalised case is `reid.features.embed_batch`'s computation)."""
    features = network(images).float()
    if normalise:
        features = F.normalize(features, dim=1)
        if flip:
            features = (features + F.normalize(network(images.flip(3)).float(), dim=1)) / 2
            features = F.normalize(features, dim=1)
        return features
    if flip:
        features = (features + network(images.flip(3)).float()) / 2
    return features


class StemEmbedding(nn.Module):
    """images [B, 3, H, W] -> features [B, D] through one stem of a two-stream model (`TwoStreamNet`)."""

    def __init__(self, model: nn.Module, modality: str, *, flip: bool = False, normalise: bool = True) -> None:
        super().__init__()
        if modality not in STEMS:
            raise ValueError(f"modality must be one of {STEMS}, got {modality!r}")
        self.stem, self.trunk, self.pool, self.neck = model.stems[modality], model.trunk, model.pool, model.neck
        self.modality, self.flip, self.normalise = modality, flip, normalise

    def network(self, images: torch.Tensor) -> torch.Tensor:
        return self.neck(self.pool(self.trunk(self.stem(images))))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return flip_and_normalise(self.network, images, self.flip, self.normalise)


class ModalityInputEmbedding(nn.Module):
    """(images [B, 3, H, W], is_ir [B] bool) -> features [B, D]: row i through the infrared stem where is_ir[i],
    the visible stem elsewhere. Both stems run on every row (no data-dependent branch, so the graph exports)."""

    def __init__(self, model: nn.Module, *, flip: bool = False, normalise: bool = True) -> None:
        super().__init__()
        self.stems, self.trunk, self.pool, self.neck = model.stems, model.trunk, model.pool, model.neck
        self.flip, self.normalise = flip, normalise

    def forward(self, images: torch.Tensor, is_ir: torch.Tensor) -> torch.Tensor:
        def network(batch: torch.Tensor) -> torch.Tensor:
            stem_maps = torch.where(is_ir.reshape(-1, 1, 1, 1), self.stems["ir"](batch), self.stems["vis"](batch))
            return self.neck(self.pool(self.trunk(stem_maps)))

        return flip_and_normalise(network, images, self.flip, self.normalise)


# ------------------------------------------------------------------------------ shared by both exporters


def require_onnx() -> None:
    """ExportError naming what to install when the ONNX exporter's packages (onnx, onnxscript) are missing."""
    missing = []
    for name in ONNX_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ExportError(f"ONNX export needs the packages {' and '.join(ONNX_PACKAGES)} "
                          f"(missing: {', '.join(missing)}): {ONNX_INSTALL}")


def check_format(fmt: str, opset: int | None = None) -> None:
    """ValueError for an unknown format or an opset the exporter cannot write; ExportError when ONNX's packages
    are missing."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if opset is not None and fmt != "onnx":
        raise ValueError("an opset applies to ONNX export only")
    if opset is not None and opset < MIN_OPSET:
        raise ValueError(f"the ONNX exporter writes opset {MIN_OPSET} or later, got opset {opset}")
    if fmt == "onnx":
        require_onnx()


def prepare_output(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """`path` checked as a graph file to write (`reid.files.check_output_file`: not a folder, its folder writable,
    an existing file replaced only when it is an earlier export, with its sidecar beside it, or with `overwrite`),
    its folder created. Called before exporting, which takes seconds for a large model."""
    path = check_output_file(path, what="--out", overwrite=overwrite, ours=lambda file: sidecar_path(file).is_file(),
                             kind="an exported model (with its .json sidecar)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(f"cannot create the folder of {path}: {error}") from error
    return path


def sidecar_path(graph: str | os.PathLike) -> Path:
    """The JSON sidecar of an exported graph: the graph's path + ".json"."""
    return Path(f"{graph}.json")


def export_graph(module: nn.Module, example: tuple[torch.Tensor, ...], check: tuple[torch.Tensor, ...],
                 path: str | os.PathLike, fmt: str, *, input_names: Sequence[str], output_name: str,
                 opset: int | None = None) -> dict:
    """Export `module` (eval mode, CPU) traced on `example` (dim 0 of every input the dynamic batch), run the
    result on `check` (another batch size) against `module`, then write it to `path` atomically.

    Returns the sidecar's exporter fields: format, exporter, opset, torch version and the check's max difference.
    """
    path = Path(path)
    check_format(fmt, opset)
    if fmt == "onnx":
        data, opset = _onnx_bytes(module, example, path, input_names, output_name, opset)
    elif fmt == "pt2":
        data = _pt2_bytes(module, example, path)
    else:
        data = _torchscript_bytes(module, example, path)
    outcome = {"batch": int(check[0].shape[0])}
    try:
        actual = run_exported(data, fmt, check, input_names)
    except Exception as error:  # onnxruntime's errors are not RuntimeErrors
        raise ExportError(f"{path}: the exported graph fails on a batch of {outcome['batch']}: "
                          f"{_first_line(error)}") from error
    if actual is None:
        outcome["skipped"] = "onnxruntime is not installed"
    else:
        with torch.no_grad():
            expected = module(*check).float()
        if actual.shape != expected.shape:
            raise ExportError(f"{path}: the exported graph gives shape {tuple(actual.shape)} on a batch of "
                              f"{outcome['batch']}, PyTorch {tuple(expected.shape)}")
        outcome["max_abs_diff_vs_pytorch"] = float((actual - expected).abs().max()) if expected.numel() else 0.0
        outcome["max_abs_value"] = float(expected.abs().max()) if expected.numel() else 0.0
        # fp32 reorderings give ~1e-7 of the outputs' scale; warn far above that (NaN included)
        if not outcome["max_abs_diff_vs_pytorch"] <= 100 * TOLERANCE * max(1.0, outcome["max_abs_value"]):
            logger.warning("%s: the exported graph differs from PyTorch by up to %.3g (outputs up to %.3g)", path,
                           outcome["max_abs_diff_vs_pytorch"], outcome["max_abs_value"])
    write_atomically(path, lambda handle: handle.write(data))
    return {"format": fmt, "exporter": EXPORTERS[fmt], "opset": opset, "torch": torch.__version__,
            "check": outcome}


def run_exported(graph: bytes | str | os.PathLike, fmt: str, inputs: tuple[torch.Tensor, ...],
                 input_names: Sequence[str]) -> torch.Tensor | None:
    """Run an exported graph (its bytes or its file) on `inputs` on the CPU: onnxruntime for ONNX (None when
    onnxruntime is not installed), torch.export.load for pt2, torch.jit.load for TorchScript."""
    if fmt == "pt2":
        program = torch.export.load(io.BytesIO(graph) if isinstance(graph, bytes) else str(graph))
        with torch.no_grad():
            return program.module()(*inputs).float()
    if fmt == "torchscript":
        source = io.BytesIO(graph) if isinstance(graph, bytes) else str(graph)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notices
            loaded = torch.jit.load(source, map_location="cpu")
        with torch.no_grad():
            return loaded(*inputs).float()
    try:
        import onnxruntime
    except ImportError:
        logger.warning("onnxruntime is not installed: the exported graph is not checked (%s)", ONNX_INSTALL)
        return None
    source = graph if isinstance(graph, bytes) else str(graph)
    session = onnxruntime.InferenceSession(source, providers=["CPUExecutionProvider"])
    feeds = {name: tensor.numpy() for name, tensor in zip(input_names, inputs)}
    return torch.from_numpy(session.run(None, feeds)[0]).float()


def _onnx_bytes(module: nn.Module, example: tuple[torch.Tensor, ...], path: Path, input_names: Sequence[str],
                output_name: str, opset: int | None) -> tuple[bytes, int]:
    batch = torch.export.Dim("batch")
    try:
        with warnings.catch_warnings():
            # "the axis name batch will not be used": every input shares the one batch dimension, as meant
            warnings.filterwarnings("ignore", message=".*axis name.*")
            program = torch.onnx.export(module, example, None, dynamo=True, verbose=False,
                                        input_names=list(input_names), output_names=[output_name],
                                        dynamic_shapes=tuple({0: batch} for _ in example), opset_version=opset,
                                        external_data=False)
    except Exception as error:  # the exporter's own error types name no file
        raise ExportError(f"cannot export {path} to ONNX: {_first_line(error)}") from error
    proto = program.model_proto
    written = next((entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")), None)
    if opset is not None and written != opset:
        raise ExportError(f"cannot export {path} at ONNX opset {opset}: the exporter wrote opset {written}")
    return proto.SerializeToString(), written


def _pt2_bytes(module: nn.Module, example: tuple[torch.Tensor, ...], path: Path) -> bytes:
    batch = torch.export.Dim("batch")
    buffer = io.BytesIO()
    try:
        program = torch.export.export(module, example, dynamic_shapes=tuple({0: batch} for _ in example))
        torch.export.save(program, buffer)
    except Exception as error:  # torch.export's own error types name no file
        raise ExportError(f"cannot export {path} as a torch.export program: {_first_line(error)}") from error
    return buffer.getvalue()


def _torchscript_bytes(module: nn.Module, example: tuple[torch.Tensor, ...], path: Path) -> bytes:
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notices
            # instance norm's checks of the channel count and the spatial size: constants of the graph (the batch
            # size takes no part in them), and the check after export runs another batch size
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(module, example, check_trace=False)
            torch.jit.save(traced, buffer)
    except Exception as error:
        raise ExportError(f"cannot export {path} to TorchScript: {_first_line(error)}") from error
    return buffer.getvalue()


def describe_check(check: dict) -> str:
    """The check's outcome in a few words, for the log."""
    if "max_abs_diff_vs_pytorch" not in check:
        return f"not checked: {check.get('skipped', 'no check')}"
    return f"max difference from PyTorch {check['max_abs_diff_vs_pytorch']:.2g} on a batch of {check['batch']}"


def _first_line(error: Exception) -> str:
    """The first line of an error's message, without terminal colour codes; the whole error is logged at DEBUG."""
    logger.debug("export error", exc_info=error)
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    return text.splitlines()[0] if text else type(error).__name__


def example_images(batch: int, channels: int, height: int, width: int, seed: int) -> torch.Tensor:
    """A reproducible random batch [batch, channels, height, width] to trace or check a graph with."""
    return torch.randn(batch, channels, height, width, generator=torch.Generator().manual_seed(seed))


def cpu_eval_copy(module: nn.Module) -> nn.Module:
    """A float32 eval-mode copy of `module` on the CPU (the caller's module keeps its device and mode)."""
    return copy.deepcopy(module).cpu().float().eval()


# ------------------------------------------------------------------------------ ReID models


def graph_paths(out: str | os.PathLike, modality: str) -> dict[str, Path]:
    """The graph file of each exported stem: {"vis": OUT_vis.SUFFIX, "ir": OUT_ir.SUFFIX} for "both",
    {modality: OUT} for "vis", "ir" and "input"."""
    if modality not in MODALITY_MODES:
        raise ValueError(f"modality must be one of {MODALITY_MODES}, got {modality!r}")
    out = check_output_file(out, what="--out", overwrite=True)  # a folder (or `out/`) is refused here
    if modality != "both":
        return {modality: out}
    return {stem: out.with_name(f"{out.stem}_{stem}{out.suffix}") for stem in STEMS}


def prepared_graph_paths(out: str | os.PathLike, modality: str, overwrite: bool = False) -> dict[str, Path]:
    """`graph_paths`, each checked and its folder made by `prepare_output`: the outputs a ReID export writes."""
    return {stem: prepare_output(path, overwrite=overwrite) for stem, path in graph_paths(out, modality).items()}


def embedding_module(model: nn.Module, modality: str, *, flip: bool = False, normalise: bool = True) -> nn.Module:
    """The exported function for one graph: StemEmbedding for "vis" / "ir", ModalityInputEmbedding for "input"."""
    if modality == "input":
        return ModalityInputEmbedding(model, flip=flip, normalise=normalise).eval()
    return StemEmbedding(model, modality, flip=flip, normalise=normalise).eval()


def export_reid_model(model: nn.Module, model_config, out: str | os.PathLike, *, fmt: str = "onnx",
                      modality: str = "both", flip: bool = False, normalise: bool = True, opset: int | None = None,
                      checkpoint: str | os.PathLike | None = None, checkpoint_sha256: str | None = None,
                      overwrite: bool = False) -> list[Path]:
    """Export a two-stream ReID model (`reid.models.TwoStreamNet`) for retrieval; returns the graph files
    written (each with its sidecar, `sidecar_path(graph)`).

    model_config: its `reid.config.ModelConfig` (input height and width, architecture). fmt: "onnx", "pt2" or
    "torchscript". modality: "both" (a graph per stem, OUT_vis / OUT_ir), "vis", "ir" or "input" (is_ir as a
    second input). flip, normalise: see the module docstring. opset: ONNX opset (>= 18; default the
    exporter's). checkpoint, checkpoint_sha256: recorded in the sidecar (the hash is computed when only the
    path is given). overwrite: replace existing files that are not earlier exports (`prepare_output`). The model
    is copied to the CPU in eval mode; the caller's model is left as it is.
    """
    check_format(fmt, opset)
    paths = prepared_graph_paths(out, modality, overwrite)
    if checkpoint is not None and checkpoint_sha256 is None:
        checkpoint_sha256 = file_sha256(checkpoint)
    model = cpu_eval_copy(model)
    height, width = model_config.height, model_config.width
    written = []
    for graph_modality, path in paths.items():
        module = embedding_module(model, graph_modality, flip=flip, normalise=normalise)
        example, check = (example_images(TRACE_BATCH, 3, height, width, seed=0),), \
            (example_images(CHECK_BATCH, 3, height, width, seed=1),)
        input_names = [INPUT_NAME]
        if graph_modality == "input":
            example += (torch.tensor([False, True]),)
            check += (torch.tensor([True, False, True]),)
            input_names.append(MODALITY_INPUT_NAME)
        exported = export_graph(module, example, check, path, fmt, input_names=input_names, output_name=OUTPUT_NAME,
                                opset=opset)
        sidecar = reid_sidecar(model, model_config, path, graph_modality, flip=flip, normalise=normalise,
                               checkpoint=checkpoint, checkpoint_sha256=checkpoint_sha256)
        write_json(sidecar_path(path), sidecar | exported)
        logger.info("wrote %s (%s, modality %s, %s)", path, fmt, graph_modality,
                    describe_check(exported["check"]))
        written.append(path)
    return written


def reid_sidecar(model: nn.Module, model_config, path: Path, modality: str, *, flip: bool, normalise: bool,
                 checkpoint: str | os.PathLike | None, checkpoint_sha256: str | None) -> dict:
    """What a user needs to feed a ReID graph and read its output."""
    height, width, dim = model_config.height, model_config.width, model.feature_dim
    inputs = [{"name": INPUT_NAME, "dtype": "float32", "shape": ["batch", 3, height, width]}]
    if modality == "input":
        inputs.append({"name": MODALITY_INPUT_NAME, "dtype": "bool", "shape": ["batch"],
                       "meaning": "True where the image is infrared (it goes through the infrared stem)"})
    if normalise:
        feature = "L2-normalised BN-neck feature" + (", the normalised mean with the flipped image's" if flip else "")
    else:
        feature = "raw BN-neck feature" + (", the mean with the flipped image's" if flip else "")
    return {
        "kind": "reid", "file": path.name, "modality": modality,
        "inputs": inputs,
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", dim]},
        "input_size": {"height": height, "width": width}, "channels": 3, "feature_size": dim,
        "preprocessing": {"color": "RGB (infrared images as 3 channels, as stored)",
                          "resize": f"bilinear to {height}x{width} (height x width)", "scale": "pixel / 255",
                          "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                          "formula": "(pixel / 255 - mean) / std per channel, NCHW float32"},
        "flip": flip, "normalise": normalise, "feature": feature,
        "model": dataclasses.asdict(model_config) if dataclasses.is_dataclass(model_config) else None,
        "checkpoint": None if checkpoint is None else str(checkpoint), "checkpoint_sha256": checkpoint_sha256,
    }


def export_reid_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, **options) -> list[Path]:
    """`export_reid_model` for the model of a "reid" checkpoint (errors name the file); same options."""
    check_format(options.get("fmt", "onnx"), options.get("opset"))
    prepared_graph_paths(out, options.get("modality", "both"), options.get("overwrite", False))  # before loading
    model, model_config = load_model_checkpoint(checkpoint, "cpu")
    return export_reid_model(model, model_config, out, checkpoint=checkpoint, **options)
