"""`vireid train CONFIG [key=value ...]`: unsupervised ReID training."""
from __future__ import annotations

import argparse

from reid.cli_support import log_level
from reid.config import load_config
from reid.methods import METHODS
from reid.runtime import setup_logging
from reid.train import train_reid
from reid.train_config import ReIDConfig


METHOD_LIST = "; ".join(f"{name}: {method.summary}" for name, method in METHODS.items())


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="train a ReID model without identity labels (translate -> cluster -> contrastive learning)",
        description="Training runs the stages of train.stages in order (default: `intra`, 50 epochs, then `cross`, 50 "
                    "epochs from a fresh optimiser, as ADCA / PGM / PCLHD) with the rules of the method "
                    "(method.name): the first stage its intra-modality rules, every later stage its cross-modal "
                    "rules. Methods: " + METHOD_LIST + ". Per epoch: extract flip-averaged features of the training "
                    "images (and of their translated views, or by the method's EMA teacher, when it asks), the "
                    "method's pseudo-labels and memories, `train.iterations` iterations of an optimiser step per "
                    "pass of the method on batches of an independent visible and infrared half (camera-aware P x K "
                    "each), cluster quality against the true ids, evaluation every `eval.every` epochs, checkpoint.\n\n"
                    "CONFIG is a YAML file (it may start with `_base_: other.yaml`); each OVERRIDE is "
                    "dotted.key=value, e.g. method.name=pgm method.options.cross_weight=0.25 train.stages.cross.epochs=20 "
                    "translated=runs/translated model.arch=tiny.\n"
                    "Sections: data (name, root, trial, evaluate_on = test | val; for synthetic: num_ids, seed, "
                    "images_per_camera, test_fraction, val_fraction); translated (the OUT folder of "
                    "vi-translate translate; joint needs it, the upper bound uses it when given); method (name, "
                    "options: the method's own, e.g. pgm: cross_weight, matching = one_sided | symmetric | pclhd, "
                    "cross_memory = hard | centroid, alternate; adca: cma_threshold, cma_weight; pclhd: margin, "
                    "cross_weight, matching, alternate, num_instances, ema_momentum, mixed_k1, mixed_k2, dynamic_loss = "
                    "paper | released; joint and oracle: view_weight, cross_view_weight); model (arch, non_local, "
                    "pretrained = null | imagenet | synthetic-visible | a weights file, gem_p, height, width); augment (pad, flip, erasing, caj = CAJ's channel-exchanged "
                    "copy of every visible image and adaptive grey for infrared, color_jitter = PGM's ColorJitter on "
                    "the exchanged copies, on_device); cluster (method = dbscan | kmeans | spectral | infomap, k1, k2, "
                    "eps, min_samples, num_clusters = clusters per clustering (per modality for per-modality "
                    "clusters), required by kmeans and spectral, unify, center (joint's mixed-modal space)); train "
                    "(iterations, num_identities = P of the infrared half, vis_identities = P of the visible half, "
                    "num_instances = K, temperature, momentum, max_epochs, preload_images, stages.<name>.{epochs (0 "
                    "skips the stage), restart_optimizer, lr, weight_decay, step_size, gamma, num_identities, "
                    "vis_identities}); eval (every, trials, settings, batch_size); runtime (device, seed, workers, bf16 "
                    "(also for the clustering features), channels_last, log_level, which an explicit --log-level "
                    "overrides); output_dir.\n\n"
                    "The run folder gets config.yaml (the method's options written out), metrics.jsonl (per epoch: its "
                    "stage, loss terms, cluster quality, the method's notes, evaluation), eval/epoch_*.json and "
                    "checkpoints/last.pt (usable with vireid evaluate: it holds the model the method delivers, PCLHD's "
                    "EMA teacher after its first stage). Rerunning the same command resumes after the last finished "
                    "epoch, inside a stage or across stages. Several GPUs: torchrun --nproc_per_node=N -m reid.cli "
                    "train CONFIG.")
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
