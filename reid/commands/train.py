"""`vireid train CONFIG [key=value ...]`: unsupervised ReID training."""
from __future__ import annotations

import argparse

from reid.cli_support import log_level
from reid.config import load_config
from reid.runtime import setup_logging
from reid.train import train_reid
from reid.train_config import ReIDConfig


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="train a ReID model without identity labels (translate -> cluster -> contrastive learning)",
        description="Training runs the stages of train.stages in order (default: `intra`, 50 epochs on per-modality "
                    "clusters, then `cross`, 50 epochs on mixed-modal clusters from a fresh optimiser, as ADCA / PGM / "
                    "PCLHD). Per epoch: extract flip-averaged features of the training images (and of their "
                    "translated views when the stage clusters them), pseudo-label them by the stage's rule, build "
                    "cluster memories, train `train.iterations` steps on batches of an independent visible and "
                    "infrared half (camera-aware P x K each), log cluster quality against the true ids, evaluate every "
                    "`eval.every` epochs, checkpoint.\n\n"
                    "CONFIG is a YAML file (it may start with `_base_: other.yaml`); each OVERRIDE is "
                    "dotted.key=value, e.g. train.stages.cross.epochs=20 translated=runs/translated model.arch=tiny.\n"
                    "Sections: data (name, root, trial, evaluate_on = test | val; for synthetic: num_ids, seed, "
                    "images_per_camera, test_fraction, val_fraction); translated (the OUT folder of "
                    "vi-translate translate); model (arch, non_local, pretrained, gem_p, height, width); "
                    "augment (pad, flip, erasing, caj = CAJ's channel-exchanged copy of every visible image and "
                    "adaptive grey for infrared, color_jitter = PGM's ColorJitter on the exchanged copies, on_device); "
                    "cluster (method = dbscan | kmeans | spectral | infomap, k1, k2, eps, min_samples, num_clusters = "
                    "clusters per clustering (per modality under per_modality / hungarian labels), required by kmeans "
                    "and spectral, unify, center, association); train (iterations, "
                    "num_identities = P of the infrared half, vis_identities = P of the visible half, num_instances = K, "
                    "temperature, momentum, max_epochs, preload_images, stages.<name>.{epochs (0 skips the stage), "
                    "labels = per_modality | mixed_modal (over the translated views) | hungarian | true_ids (the "
                    "upper bound), restart_optimizer, lr, weight_decay, step_size, gamma, view_weight, "
                    "cross_view_weight, hard_dynamic_from, hard_dynamic_weight}); eval (every, trials, settings, "
                    "batch_size); runtime (device, seed, workers, bf16 (also for the clustering features), "
                    "channels_last, log_level, which an explicit --log-level before `train` overrides); output_dir.\n\n"
                    "The run folder gets config.yaml, metrics.jsonl (per epoch: its stage, losses, cluster quality, "
                    "evaluation), eval/epoch_*.json and checkpoints/last.pt (usable with vireid evaluate). Rerunning "
                    "the same command resumes after the last finished epoch, inside a stage or across stages. Several "
                    "GPUs: torchrun --nproc_per_node=N -m reid.cli train CONFIG.")
    train.add_argument("config", metavar="CONFIG", help="YAML config file")
    train.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="dotted.key=value overrides")
    train.add_argument("--fresh", action="store_true",
                       help="start afresh instead of resuming: first move the run folder's checkpoints, "
                            "metrics.jsonl, eval and config.yaml into OUTPUT_DIR/previous/<n>/")
    train.set_defaults(handler=run, resumes=True)


def run(args: argparse.Namespace) -> tuple[int, str]:
    config = load_config(ReIDConfig, args.config, args.overrides)
    setup_logging(log_level(args, config.runtime.log_level))
    checkpoint = train_reid(config, fresh=args.fresh)
    return 0, f"ReID checkpoint: {checkpoint}"
