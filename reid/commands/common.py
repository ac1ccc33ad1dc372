"""Helpers shared by the `vireid` subcommands."""
from __future__ import annotations

import argparse


def command_settings(args: argparse.Namespace) -> dict:
    """The command's options, for the files it writes."""
    return {key: value for key, value in vars(args).items() if key != "handler"}
