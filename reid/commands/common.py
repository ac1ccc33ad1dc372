"""Helpers shared by the `vireid` subcommands."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from reid.features import is_features_file
from reid.files import check_output_file

OVERWRITE_HELP = "replace an existing output file even when it is not one this command writes"


def command_settings(args: argparse.Namespace) -> dict:
    """The command's options, for the files it writes."""
    return {key: value for key, value in vars(args).items() if key != "handler"}


def check_features_output(path: str | Path, what: str, overwrite: bool) -> Path:
    """`path` once a features file can be written there, replacing at most an earlier features file (anything with
    `overwrite`); OutputPathError naming `what` and `path` otherwise."""
    return check_output_file(path, what=what, overwrite=overwrite, ours=is_features_file,
                             kind="a features file (vireid extract, vireid evaluate --save-features)")


def is_json_report(path: Path) -> bool:
    """Whether `path` is a JSON object with "source" and "options": a results file `vireid evaluate` wrote."""
    try:
        report = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(report, dict) and {"source", "options"} <= report.keys()
