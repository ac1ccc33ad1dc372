"""`vireid`: the ReID toolkit's command line; each subcommand lives in `reid.commands`.

    vireid data synth --root data/synthetic --num-ids 60 --seed 0
    vireid data info --dataset sysu --root /data/SYSU-MM01
    vireid pretrain experiments/configs/pretrain/synthetic_visible.yaml
    vireid cluster --features feats.pt --translated feats_translated.pt --unify both --out runs/labels
    vireid train experiments/configs/reid/synthetic.yaml translated=runs/translated/synthetic
    vireid evaluate --checkpoint runs/reid/synthetic/checkpoints/last.pt --dataset synthetic --root data/synthetic
    vireid extract --checkpoint CKPT --images cctv/ --modality vis --out cctv.pt
    vireid search --checkpoint CKPT --query probes/ --gallery cctv/ --out runs/search
    vireid export --checkpoint CKPT --format onnx --out deploy/reid.onnx
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .checkpoint import CheckpointError
from .cli_support import (EXIT_INTERRUPTED, add_log_level_option, interrupted_message, log_level,
                          parse_with_overrides)
from .config import ConfigError
from .commands import COMMANDS
from .runtime import setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vireid",
        description="Unsupervised visible-infrared person re-identification toolkit.",
        epilog="Exit status: 0 done; 2 it could not run (bad arguments, config, checkpoint or input, an output that "
               "cannot be written); 130 interrupted (Ctrl-C; rerunning `train` or `data synth` resumes).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_log_level_option(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_with_overrides(build_parser(), argv)
    setup_logging(log_level(args))
    try:
        code, text = args.handler(args)
    except KeyboardInterrupt:
        print(interrupted_message("vireid", args), file=sys.stderr)
        return EXIT_INTERRUPTED
    except (FileNotFoundError, ValueError, OSError, RuntimeError, KeyError, CheckpointError, ConfigError) as error:
        print(f"vireid: error: {error}", file=sys.stderr)
        return 2
    print(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
