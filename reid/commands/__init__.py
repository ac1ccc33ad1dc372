"""The `vireid` subcommands; each module has `add_parser(subparsers)` setting `handler`."""
from . import cluster, data, evaluate, train

COMMANDS = (data, cluster, train, evaluate)
