"""`vireid extract`: the features of every image of a folder, as a portable features file."""
from __future__ import annotations

import argparse

from reid.cli_support import non_negative_int, positive_int
from reid.data import MODALITIES
from reid.models import load_model_checkpoint
from reid.runtime import resolve_device
from reid.search import IDENTITY_RULE, LISTING_RULE, extract_folder, folder_records, identity_summary

from .common import OVERWRITE_HELP, check_features_output


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    extract = subparsers.add_parser(
        "extract", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="write the features of a folder of images",
        description="Extract flip-averaged, L2-normalised features of every image under --images "
                    f"({LISTING_RULE}) with a ReID checkpoint's model, and write them as a features file "
                    "(FeatureSet.save) whose image paths are relative to --images, so it can be moved with the "
                    f"folder. Folder names give each image its ids: {IDENTITY_RULE}. The file serves vireid "
                    "search --query-features / --gallery-features and vireid cluster --features.")
    extract.add_argument("--checkpoint", required=True, help="ReID checkpoint whose model extracts the features")
    extract.add_argument("--images", required=True, metavar="DIR", help="folder of images, searched recursively")
    extract.add_argument("--modality", required=True, choices=MODALITIES,
                         help="camera of the images: vis (visible) or ir (infrared); picks the model's stem")
    extract.add_argument("--out", required=True,
                         help="features file to write (e.g. gallery_features.pt); an existing file is replaced only "
                              "when it is a features file (written by vireid extract or vireid evaluate "
                              "--save-features), or with --overwrite")
    extract.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    _add_extraction_options(extract)
    extract.set_defaults(handler=run)


def _add_extraction_options(parser: argparse.ArgumentParser) -> None:
    """--batch-size, --workers, --device, --no-flip (shared with vireid search)."""
    parser.add_argument("--batch-size", type=positive_int, default=64, help="extraction batch size")
    parser.add_argument("--workers", type=non_negative_int, default=2, help="image-decoding worker processes")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--no-flip", action="store_true",
                        help="features of the image alone, not the mean with its horizontal flip")


def extraction_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of `extract_folder` the shared options give."""
    return {"batch_size": args.batch_size, "num_workers": args.workers, "flip": not args.no_flip}


def run(args: argparse.Namespace) -> tuple[int, str]:
    # a bad folder or --out is reported before the model loads
    records = folder_records(args.images, args.modality, "--images")
    check_features_output(args.out, "--out", args.overwrite)
    device = resolve_device(args.device)
    model, model_config = load_model_checkpoint(args.checkpoint, device)
    feature_set = extract_folder(model, args.images, args.modality, device, height=model_config.height,
                                 width=model_config.width, what="--images", records=records,
                                 **extraction_options(args))
    out = feature_set.save(args.out, root=args.images)
    return 0, (f"{args.images}: {identity_summary(feature_set.records)}\n"
               f"features [{feature_set.features.shape[0]}, {feature_set.features.shape[1]}] "
               f"(paths relative to {args.images}) written: {out}")
