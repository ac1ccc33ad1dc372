"""`vi-translate`: train a visible<->infrared CycleGAN and look at its translations.

    vi-translate train experiments/configs/translator/synthetic.yaml train.max_steps=200
    vi-translate sample --checkpoint runs/translator/checkpoints/last.pt --input some/images --direction vis2ir --out look
    vi-translate translate --checkpoint CKPT --dataset sysu --root /data/SYSU-MM01 --out /data/SYSU-MM01-translated
    vi-translate evaluate --checkpoint CKPT --dataset sysu --root /data/SYSU-MM01 --out runs/translator_eval
    vi-translate import-reference latest_net_G_A.pth latest_net_G_B.pth --out imported.pt --n-blocks 9 --height 256 --width 128
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from reid.checkpoint import CheckpointError
from reid.cli_support import (EXIT_INTERRUPTED, add_log_level_option, interrupted_message, log_level,
                              parse_with_overrides, positive_int)
from reid.config import ConfigError, load_config
from reid.files import check_output_folder
from reid.runtime import resolve_device, setup_logging

from . import evaluate, export, import_reference, translate
from .config import TranslatorConfig
from .sample import DIRECTIONS, sample_translations
from .train import TrainingDiverged, train_translator


EXIT_STATUS = ("Exit status: 0 done; 1 it ran but some images failed (translate) or training diverged; 2 it could not "
               "run (bad config, checkpoint or input, an output path that cannot be written, a full disk); "
               "130 interrupted (Ctrl-C).")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vi-translate", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Visible <-> infrared CycleGAN: train a translator and look at its translations.",
        epilog=EXIT_STATUS)
    add_log_level_option(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = commands.add_parser(
        "train", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="train a CycleGAN on a dataset's unpaired visible and infrared training images",
        description="Train a CycleGAN on the unpaired visible and infrared training images of any dataset "
                    "reid.data loads (data.name = sysu | regdb | llcm | synthetic | folder: own footage, ROOT/vis and "
                    "ROOT/ir).\n\n"
                    "CONFIG is a YAML file (it may start with `_base_: other.yaml`); each OVERRIDE is "
                    "dotted.key=value, e.g. train.max_steps=500 image.ir_channels=1 runtime.device=cpu.\n"
                    "Sections: data (name, root, trial, num_ids, seed), image (load/crop sizes, flip, "
                    "ir_channels), model (ngf, ndf, n_blocks, n_layers_d), train (gan_mode, lambda_cycle, "
                    "lambda_identity, pool_size, lr, beta1, batch_size, epochs, epochs_decay, max_steps, "
                    "log_every, sample_every, checkpoint_every, num_samples), runtime (device, seed, workers, "
                    "bf16, channels_last, log_level, which an explicit --log-level overrides), "
                    "output_dir. OVERRIDEs may also follow the options.\n\n"
                    "The run folder gets config.yaml, checkpoints/last.pt, metrics.jsonl, loss_curves.png and "
                    "samples/step_*.png. Rerunning the same command resumes from checkpoints/last.pt. "
                    "Several GPUs: torchrun --nproc_per_node=N -m vi_translate.cli train CONFIG.")
    train.add_argument("config", metavar="CONFIG", help="YAML config file")
    train.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="dotted.key=value overrides")
    start = train.add_mutually_exclusive_group()
    start.add_argument("--resume", metavar="CKPT",
                       help="resume from this checkpoint (default: the run folder's checkpoints/last.pt, if any)")
    start.add_argument("--fresh", action="store_true",
                       help="start afresh instead of resuming: first move the run folder's checkpoints, metrics.jsonl, "
                            "samples, loss_curves.png and config.yaml into OUTPUT_DIR/previous/<n>/")
    train.set_defaults(handler=_run_train, resumes=True)

    sample = commands.add_parser(
        "sample", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="translate a few images with a trained translator",
        description="Translate an image, or the first images of a folder, with one direction of a translator "
                    "checkpoint; writes OUT/<path>_<direction>.png (at each image's own size; <path> is the "
                    "image's path relative to --input with its folders joined by _ and its suffix dropped, e.g. "
                    "cam1_0001_0002_vis2ir.png; -2, -3, ... where two would clash) and OUT/grid_<direction>.png.")
    sample.add_argument("--checkpoint", required=True, help="translator checkpoint (vi-translate train)")
    sample.add_argument("--input", required=True, help="an image file or a folder of images")
    sample.add_argument("--direction", required=True, choices=DIRECTIONS, help="which generator to apply")
    sample.add_argument("--out", required=True, help="output folder")
    sample.add_argument("--limit", type=positive_int, default=16, help="at most this many images from a folder")
    sample.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    sample.set_defaults(handler=_run_sample)
    translate.add_parser(commands)
    commands.choices["translate"].set_defaults(resumes=True)  # a rerun translates only what is missing
    evaluate.add_parser(commands)
    import_reference.add_parser(commands)
    export.add_parser(commands)
    return parser


def _run_train(args: argparse.Namespace) -> tuple[int, str]:
    config = load_config(TranslatorConfig, args.config, args.overrides)
    setup_logging(log_level(args, config.runtime.log_level))
    checkpoint = train_translator(config, resume=args.resume, fresh=args.fresh)
    return 0, f"translator checkpoint: {checkpoint}"


def _run_sample(args: argparse.Namespace) -> tuple[int, str]:
    check_output_folder(args.out, what="--out")
    written = sample_translations(args.checkpoint, args.input, args.direction, args.out,
                                  device=resolve_device(args.device), limit=args.limit)
    return 0, f"wrote {len(written)} files to {args.out}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit status is described by EXIT_STATUS."""
    args = parse_with_overrides(build_parser(), argv)
    setup_logging(log_level(args))
    try:
        code, text = args.handler(args)
    except KeyboardInterrupt:
        print(interrupted_message("vi-translate", args), file=sys.stderr)
        return EXIT_INTERRUPTED
    except TrainingDiverged as error:
        print(f"vi-translate: {error}", file=sys.stderr)
        return 1
    except (ConfigError, CheckpointError, OSError, ValueError, KeyError, RuntimeError) as error:
        print(f"vi-translate: error: {_error_message(error, args)}", file=sys.stderr)
        return 2
    print(text)
    return code


def _error_message(error: Exception, args: argparse.Namespace) -> str:
    """The error's message; an OSError that names no file (a full disk) is tied to the command's --out."""
    if isinstance(error, OSError) and not error.filename and getattr(args, "out", None):
        return f"{error} (writing under --out {args.out})"
    return str(error)


if __name__ == "__main__":
    sys.exit(main())
