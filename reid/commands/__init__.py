"""The `vireid` subcommands; each module has `add_parser(subparsers)` setting `handler`."""
from . import cluster, data, evaluate

COMMANDS = (data, cluster, evaluate)
