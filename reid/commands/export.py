"""`vireid export`: a ReID checkpoint as an ONNX graph, a torch.export program or a TorchScript module of its
retrieval feature."""
from __future__ import annotations

import argparse

from reid.cli_support import positive_int
from reid.export import FORMATS, MIN_OPSET, MODALITY_MODES, ONNX_INSTALL, export_reid_checkpoint, sidecar_path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser(
        "export", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="write a ReID checkpoint as an ONNX, torch.export or TorchScript model",
        description="Write the checkpoint's feature extractor as an ONNX graph (torch.onnx dynamo exporter), a "
                    "torch.export program (.pt2, torch.export.export) or a TorchScript module (torch.jit.trace), the "
                    "batch size free. Input \"images\" [B, 3, H, W] "
                    "float32: RGB images resized (bilinear) to the model's height x width, scaled to [0, 1] and "
                    "normalised with the ImageNet mean / std, as `vireid evaluate` feeds them; output \"features\" "
                    "[B, D] float32. --modality both writes OUT with _vis and _ir before its suffix "
                    "(model.onnx -> model_vis.onnx, model_ir.onnx), one graph per stem; vis or ir writes OUT for "
                    "that stem; input writes OUT taking a second input \"is_ir\" [B] bool (True: infrared). Each "
                    "graph gets a JSON sidecar, OUT.json (model_vis.onnx.json, ...), with the input size, mean / "
                    "std, modality, flip, normalise, feature size, output name, the checkpoint's sha256 and the "
                    "largest difference from PyTorch measured after export. Files are written atomically. "
                    f"ONNX needs onnx and onnxscript ({ONNX_INSTALL}); onnxruntime runs the check.")
    export.add_argument("--checkpoint", required=True, help="ReID checkpoint (vireid train) to export")
    export.add_argument("--format", dest="fmt", choices=FORMATS, default="onnx",
                        help="onnx: an .onnx graph for onnxruntime and other runtimes; pt2: a torch.export program "
                             "for torch.export.load(path).module(), the format torch recommends now; torchscript: a "
                             "module for torch.jit.load (C++ libtorch too; deprecated by torch)")
    export.add_argument("--out", required=True,
                        help="file to write (e.g. model.onnx, model.pt2 or model.pt; not a folder); with --modality "
                             "both, the stem's name goes before the suffix (model_vis.onnx, model_ir.onnx)")
    export.add_argument("--overwrite", action="store_true",
                        help="replace existing files of the same names even when they are not earlier exports (an "
                             "earlier export, with its .json sidecar, is always replaced)")
    export.add_argument("--modality", choices=MODALITY_MODES, default="both",
                        help="both: one graph per stem; vis / ir: the graph of the visible / infrared stem only; "
                             "input: one graph with a second input is_ir [B] bool choosing each row's stem (a batch "
                             "may mix modalities; both stems run on every row)")
    export.add_argument("--flip", action="store_true",
                        help="average each image's feature with its horizontally flipped image's, as `vireid "
                             "evaluate` does (twice the compute)")
    export.add_argument("--no-normalise", dest="normalise", action="store_false", default=argparse.SUPPRESS,
                        help="output the raw BN-neck feature (with --flip the mean of both views') instead of "
                             "the L2-normalised feature (the default), whose dot products are cosine similarities")
    export.add_argument("--opset", type=positive_int,
                        help=f"ONNX opset to write (>= {MIN_OPSET}); default: the exporter's own")
    export.set_defaults(handler=run)


def run(args: argparse.Namespace) -> tuple[int, str]:
    normalise = getattr(args, "normalise", True)  # absent unless --no-normalise is given
    written = export_reid_checkpoint(args.checkpoint, args.out, fmt=args.fmt, modality=args.modality,
                                     flip=args.flip, normalise=normalise, opset=args.opset, overwrite=args.overwrite)
    return 0, "\n".join(f"written: {path} (sidecar {sidecar_path(path)})" for path in written)
