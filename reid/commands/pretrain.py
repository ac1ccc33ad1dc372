"""`vireid pretrain CONFIG [key=value ...]`: a labelled start for a backbone (the role of ImageNet weights)."""
from __future__ import annotations

import argparse
import json

from reid.cli_support import log_level
from reid.config import load_config
from reid.files import file_sha256
from reid.pretrain import describe_backbone, pretrain_backbone
from reid.pretrain_config import PretrainConfig
from reid.runtime import setup_logging


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    pretrain = subparsers.add_parser(
        "pretrain", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="train a start for a backbone by identity classification on visible images of another dataset",
        description="The references start from ImageNet weights (visible images of other classes, no infrared, none "
                    "of their identities). This trains such a start for any reid.models architecture: identity "
                    "classification (a linear classifier on the BN-neck feature, cross-entropy with label smoothing, "
                    "Adam with warm-up and cosine decay) on the visible training images of `data` only; infrared "
                    "and test images are never read. The stem and trunk are written to OUTPUT_DIR/backbone.pt, "
                    "which `model.pretrained=OUTPUT_DIR/backbone.pt` loads into both stems and the trunk of "
                    "`vireid train` and the experiment runner (the BN neck starts fresh, as over ImageNet weights). "
                    "A training run on a synthetic tree of the same generator seed as the start's is refused.\n\n"
                    "CONFIG is a YAML file (it may start with `_base_: other.yaml`); each OVERRIDE is "
                    "dotted.key=value, e.g. train.steps=2000 data.seed=1000003.\n"
                    "Sections: data (name, root, trial; for synthetic: num_ids, seed, images_per_camera, "
                    "test_fraction, val_fraction: the test ids give the held-out check); model (arch, non_local, "
                    "gem_p, height, width; pretrained must stay null); augment (pad, flip, erasing, color_jitter); "
                    "train (steps, batch_size, lr, weight_decay, warmup_steps, label_smoothing, log_every, "
                    "checkpoint_every); runtime (device, seed, workers, log_level); output_dir.\n\n"
                    "The run folder gets config.yaml, metrics.jsonl (step, lr, loss, accuracy every log_every steps), "
                    "checkpoints/last.pt and backbone.pt, whose report holds what it was trained on and its held-out "
                    "visible -> visible retrieval on the test ids of its population (queries from the first half of "
                    "the visible cameras, the gallery from the rest). Rerunning the same command resumes from the "
                    "last checkpoint to the weights of an uninterrupted run. The embedded benchmark's start is "
                    "`vireid pretrain experiments/configs/pretrain/synthetic_visible.yaml`.")
    pretrain.add_argument("config", metavar="CONFIG", help="YAML config file")
    pretrain.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="dotted.key=value overrides")
    pretrain.add_argument("--fresh", action="store_true",
                          help="start afresh instead of resuming: first move the run folder's checkpoints, "
                               "metrics.jsonl, config.yaml and backbone.pt into OUTPUT_DIR/previous/<n>/")
    pretrain.set_defaults(handler=run, resumes=True)


def run(args: argparse.Namespace) -> tuple[int, str]:
    config = load_config(PretrainConfig, args.config, args.overrides)
    setup_logging(log_level(args, config.runtime.log_level))
    path = pretrain_backbone(config, fresh=args.fresh)
    report = describe_backbone(path) | {"file": str(path), "sha256": file_sha256(path)}
    return 0, json.dumps(report, indent=2)
