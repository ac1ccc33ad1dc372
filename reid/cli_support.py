"""Command-line plumbing shared by `vireid`, `vi-translate` and `python -m experiments`: the --log-level rule,
dotted key=value overrides anywhere on the line, number options checked at parsing, the Ctrl-C exit and JSON
without bare NaN. Standard library and `reid.files` only, so every package may import it."""
from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

from .files import write_text_atomically

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a Ctrl-C
LOG_LEVEL_HELP = ("how much the toolkit logs to stderr (before or after COMMAND). When given it wins over the "
                  "config's runtime.log_level; when not given, commands that read a config log at its "
                  "runtime.log_level and the others at INFO")


def add_log_level_option(parser: argparse.ArgumentParser) -> None:
    """`--log-level`, absent from the parsed arguments unless given (see `log_level`). `parse_with_overrides`
    also accepts it after the command (`vireid train C --log-level DEBUG`)."""
    parser.add_argument("--log-level", choices=LOG_LEVELS, default=argparse.SUPPRESS, help=LOG_LEVEL_HELP)


def _log_level_after_commands(parser: argparse.ArgumentParser) -> None:
    """Give every (nested) subcommand of a parser that has --log-level the option too; its SUPPRESS default leaves
    a value given before the command in place when none follows it."""
    if not any("--log-level" in action.option_strings for action in parser._actions):
        return
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                if not any("--log-level" in item.option_strings for item in command._actions):
                    add_log_level_option(command)
                _log_level_after_commands(command)


def log_level(args: argparse.Namespace, config_level: str = "INFO") -> str:
    """The level to log at: --log-level when the command line gives it, else `config_level` (the config's
    runtime.log_level, or INFO for a command without a config)."""
    return getattr(args, "log_level", None) or config_level


def is_override(item: str) -> bool:
    """Whether a command-line word is a dotted key=value override (and not an option)."""
    return "=" in item and not item.startswith("-")


def parse_with_overrides(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse `argv`, letting key=value overrides stand anywhere after the command's CONFIG, options included
    (`train C --resume X a=b`). A command without an `overrides` positional refuses them. --log-level may follow
    the command too."""
    _log_level_after_commands(parser)
    args, extra = parser.parse_known_args(argv)
    if extra and not ("overrides" in args and all(is_override(item) for item in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (argparse names the option in its error)."""
    return _whole_number(text, minimum=1)


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0."""
    return _whole_number(text, minimum=0)


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
    return value


def interrupted_message(prog: str, args: argparse.Namespace) -> str:
    """The one line a CLI prints on stderr after a Ctrl-C (with the resume hint when the command resumes); the CLI
    then exits with EXIT_INTERRUPTED."""
    return f"{prog}: interrupted{_resume_hint(args)}"


def _resume_hint(args: argparse.Namespace) -> str:
    if not getattr(args, "resumes", False):
        return ""
    if getattr(args, "fresh", False):
        return "; rerun without --fresh to resume"
    return "; rerun the same command to resume"


def finite_or_none(value: Any) -> Any:
    """`value` with every NaN or infinite float (in nested dicts, lists, tuples) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(item) for item in value]
    return value


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write `data` as indented, strict JSON (NaN and infinities become null); returns the path."""
    return write_text_atomically(path, json.dumps(finite_or_none(data), indent=2, allow_nan=False))
