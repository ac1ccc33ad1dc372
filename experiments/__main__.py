"""`python -m experiments COMMAND ...` (experiments.cli)."""
import sys

from .cli import build_parser, main, parse_arguments  # noqa: F401  (the command line's names, for callers)

if __name__ == "__main__":
    sys.exit(main())
