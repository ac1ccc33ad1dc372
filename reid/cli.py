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
    vireid experiment run demo          # added by the experiments package (entry-point group vireid.commands)
"""
from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points
from typing import Sequence

from .checkpoint import CheckpointError
from .cli_support import (EXIT_INTERRUPTED, add_log_level_option, interrupted_message, log_level,
                          parse_with_overrides)
from .config import ConfigError
from .commands import COMMANDS
from .runtime import setup_logging

COMMAND_GROUP = "vireid.commands"
COMMAND_ERRORS = (ConfigError, CheckpointError, OSError, ValueError, RuntimeError, KeyError)  # what a CLI reports


def run_handler(prog: str, args: argparse.Namespace) -> int:
    """Run a parsed command (`args.handler(args)` -> (exit status, text)): print its text and return its status; a
    Ctrl-C prints `interrupted_message` (EXIT_INTERRUPTED), an error of COMMAND_ERRORS one `PROG: error: ...` line
    on stderr (2)."""
    try:
        code, text = args.handler(args)
    except KeyboardInterrupt:
        print(interrupted_message(prog, args), file=sys.stderr)
        return EXIT_INTERRUPTED
    except COMMAND_ERRORS as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    print(text)
    return code


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
    for command in (*COMMANDS, *installed_commands()):
        command.add_parser(subparsers)
    return parser


def installed_commands() -> list:
    """The subcommands other installed packages add: modules with `add_parser(subparsers)`, registered under the
    entry-point group `vireid.commands` (the toolkit's own `experiment`, from the experiments package)."""
    return [entry.load() for entry in sorted(entry_points(group=COMMAND_GROUP), key=lambda entry: entry.name)]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_with_overrides(build_parser(), argv)
    setup_logging(log_level(args))
    return run_handler("vireid", args)


if __name__ == "__main__":
    sys.exit(main())
