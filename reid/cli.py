"""`vireid`: the ReID toolkit's command line; each subcommand lives in `reid.commands`.

    vireid data synth --root data/synthetic --num-ids 60 --seed 0
    vireid data info --dataset sysu --root /data/SYSU-MM01
    vireid cluster --features feats.pt --translated feats_translated.pt --unify both --out runs/labels
    vireid train experiments/configs/reid/synthetic.yaml translated=runs/translated/synthetic
    vireid evaluate --checkpoint runs/reid/synthetic/checkpoints/last.pt --dataset synthetic --root data/synthetic
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .checkpoint import CheckpointError
from .config import ConfigError
from .commands import COMMANDS
from .runtime import setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vireid",
        description="Unsupervised visible-infrared person re-identification toolkit.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="how much the library logs to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        code, text = args.handler(args)
    except (FileNotFoundError, ValueError, OSError, RuntimeError, KeyError, CheckpointError, ConfigError) as error:
        print(f"vireid: error: {error}", file=sys.stderr)
        return 2
    print(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
