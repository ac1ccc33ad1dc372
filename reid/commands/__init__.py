"""The `vireid` subcommands; each module has `add_parser(subparsers)` setting `handler`, a function
args -> (exit status, text to print): `reid.cli.main` prints, the handlers only compute."""
from . import cluster, data, evaluate, export, extract, pretrain, search, train

COMMANDS = (data, cluster, pretrain, train, evaluate, extract, search, export)
