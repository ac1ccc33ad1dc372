"""`vireid experiment COMMAND ...`: the joint experiment runner as a `vireid` subcommand.

The toolkit's packaging registers this module under the entry-point group `vireid.commands`, which `reid.cli`
reads, so `reid` names no `experiments` module (the dependency rule) and any installed package can add a command
the same way.
"""
from __future__ import annotations

import argparse

from .cli import DESCRIPTION, EPILOG, add_commands


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    experiment = subparsers.add_parser("experiment", formatter_class=argparse.RawDescriptionHelpFormatter,
                                       help="the joint translate -> cluster -> ReID experiment, with its report",
                                       description=DESCRIPTION, epilog=EPILOG)
    add_commands(experiment.add_subparsers(dest="action", metavar="COMMAND", required=True))
