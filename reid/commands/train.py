"""`vireid train CONFIG [key=value ...]`: unsupervised ReID training."""
from __future__ import annotations

import argparse

from reid.config import load_config
from reid.runtime import setup_logging
from reid.train import train_reid
from reid.train_config import ReIDConfig


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="train a ReID model without identity labels (translate -> cluster -> contrastive learning)",
        description="Per epoch: extract features of the training images (and of their translated views), "
                    "cluster them into pseudo-identities, build cluster memories, train `train.iterations` "
                    "steps, log cluster quality against the true ids, evaluate every `eval.every` epochs, "
                    "checkpoint.\n\n"
                    "CONFIG is a YAML file (it may start with `_base_: other.yaml`); each OVERRIDE is "
                    "dotted.key=value, e.g. train.epochs=20 translated=runs/translated model.arch=tiny.\n"
                    "Sections: data (name, root, trial, evaluate_on = test | val; for synthetic: num_ids, seed, "
                    "images_per_camera, test_fraction, val_fraction); translated (the OUT folder of "
                    "vi-translate translate); model (arch, non_local, pretrained, gem_p, height, width); "
                    "augment (pad, flip, erasing, channel_augment, on_device); cluster (method, k1, k2, eps, min_samples, "
                    "unify, association); train (strategy = joint | per_modality_hungarian | none | oracle (the "
                    "true ids: the upper bound), epochs, "
                    "iterations, num_identities, num_instances, lr, weight_decay, step_size, gamma, temperature, "
                    "momentum, view_weight, cross_view_weight, hard_dynamic_from, hard_dynamic_weight, "
                    "max_epochs, preload_images); eval (every, trials, settings, batch_size); runtime (device, seed, workers, "
                    "bf16, channels_last, log_level); output_dir.\n\n"
                    "The run folder gets config.yaml, metrics.jsonl (losses, cluster quality and evaluation per "
                    "epoch), eval/epoch_*.json and checkpoints/last.pt (usable with vireid evaluate). Rerunning "
                    "the same command resumes after the last finished epoch. Several GPUs: "
                    "torchrun --nproc_per_node=N -m reid.cli train CONFIG.")
    train.add_argument("config", metavar="CONFIG", help="YAML config file")
    train.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="dotted.key=value overrides")
    train.set_defaults(handler=run)


def run(args: argparse.Namespace) -> tuple[int, str]:
    config = load_config(ReIDConfig, args.config, args.overrides)
    setup_logging(config.runtime.log_level)
    checkpoint = train_reid(config)
    return 0, f"ReID checkpoint: {checkpoint}"
