"""The joint experiment's command line: `python -m experiments COMMAND ...` from a checkout, and `vireid experiment
COMMAND ...` wherever the toolkit is installed (`experiments.command`). CONFIG is a YAML file or the name of a
config the toolkit ships (`demo`, `sysu`, ...: `list` shows them).

    vireid experiment run demo                              # = python -m experiments run experiments/configs/demo.yaml
    vireid experiment run demo --from reid
    vireid experiment run demo --seeds 3
    vireid experiment ablate demo
    vireid experiment reid-config sysu pgm --out pgm.yaml   # one strategy's vireid train config
    vireid experiment list
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from reid.cli import run_handler
from reid.cli_support import add_log_level_option, log_level, parse_with_overrides, positive_int
from reid.config import load_config, save_config
from reid.runtime import setup_logging
from reid.train import with_method_options

from .config import ABLATION, OPPOSITES, VARIANTS, ExperimentConfig, ablation_variants, reid_config, variant_of
from .runner import STAGES, run_experiment
from .shipped import CONFIG_HELP, describe_shipped_configs, resolve_config


SEEDS_HELP = ("train each strategy N times, the k-th (k = 0..N-1) with runtime.seed + k, into "
              "reid/<strategy>/seed_<k>/; the dataset, translator and translation are shared by all seeds. "
              "results.md shows mean ± std over the seeds (sample std). Seeds already trained are reused, "
              "so raising N trains only the new ones. Default: the config's `seeds` (1)")


DESCRIPTION = ("The joint experiment: dataset -> translator -> translated dataset -> ReID training per strategy and "
               "seed -> evaluation -> report (results.json, results.md, report/*.png) under output_dir.\nThe results "
               "table carries chance (the protocol on random features) and the upper bound beside the strategies, as "
               "mean ± std over the seeds.\nRerunning reuses finished stages; a changed config section reruns its "
               "stage and the ones after.\nOVERRIDEs may stand anywhere after CONFIG, options included.")
EPILOG = ("Exit status: 0 done; 2 it could not run (bad arguments, config or input, an output that cannot be written); "
          "130 interrupted (Ctrl-C; rerunning the same command resumes).")


def build_parser() -> argparse.ArgumentParser:
    """`python -m experiments`'s parser."""
    parser = argparse.ArgumentParser(prog="python -m experiments", formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description=DESCRIPTION, epilog=EPILOG)
    add_log_level_option(parser)
    add_commands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    return parser


def add_commands(commands: argparse._SubParsersAction) -> None:
    """The commands run, ablate, reid-config and list, each with `handler` = `run_command`."""
    swaps = ", ".join(f"{name} becomes {opposite}" for name, opposite in OPPOSITES.items())
    for name, help_text in (("run", "run the strategies listed in the config (`strategies`)"),
                            ("ablate", f"run the strategies {', '.join(ABLATION)} side by side on the same data "
                                       f"and seeds, into output_dir + '_ablation' (a variant that changes nothing "
                                       f"in this config is swapped for its opposite: {swaps})")):
        command = commands.add_parser(name, help=help_text, description=help_text,
                                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        command.add_argument("config", metavar="CONFIG", help=CONFIG_HELP)
        command.add_argument("overrides", nargs="*", metavar="OVERRIDE",
                             help="dotted.key=value, e.g. reid.train.epochs=4 data.root=/data/SYSU-MM01")
        command.add_argument("--from", dest="from_stage", choices=STAGES,
                             help="run this stage and every later one again, even if finished")
        command.add_argument("--seeds", type=positive_int, metavar="N", default=argparse.SUPPRESS, help=SEEDS_HELP)
        command.set_defaults(resumes=True, handler=run_command, action=name)
    export = commands.add_parser(
        "reid-config", help="write the vireid train config one strategy of the experiment trains with",
        description="Write the `vireid train` config of one strategy of an experiment config (its method, the shared "
                    "ReID recipe and the experiment's recipe for that strategy, seed 0), e.g. to train PGM on "
                    "SYSU-MM01 alone: vireid experiment reid-config sysu pgm --out pgm.yaml && vireid train pgm.yaml. "
                    "Nothing is trained; `translated` and output_dir point into the experiment's output_dir.")
    export.add_argument("config", metavar="CONFIG", help=CONFIG_HELP)
    export.add_argument("strategy", metavar="STRATEGY", help=f"one of {', '.join(VARIANTS)}, or a registered method")
    export.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="dotted.key=value of the experiment config")
    export.add_argument("--out", required=True, metavar="FILE", help="the YAML file to write")
    export.set_defaults(handler=run_command, action="reid-config")
    listing = commands.add_parser("list", help="list the experiment configs the toolkit ships, by name",
                                  description="The experiment configs the toolkit ships: CONFIG may be one of these "
                                              "names wherever the toolkit is installed.")
    listing.set_defaults(handler=lambda args: (0, describe_shipped_configs()))


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line, with key=value overrides allowed after the options too (`run C --seeds 3 a=b`)."""
    return parse_with_overrides(build_parser(), argv)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m experiments`: parse, run the command, print its text; exit status as EPILOG says."""
    args = parse_arguments(argv)
    setup_logging(log_level(args))
    return run_handler("experiments", args)


def run_command(args: argparse.Namespace) -> tuple[int, str]:
    """run / ablate / reid-config: (exit status, text to print); errors propagate to the caller's CLI."""
    config = load_config(ExperimentConfig, resolve_config(args.config), args.overrides)
    setup_logging(log_level(args, config.runtime.log_level))
    if args.action == "reid-config":
        return 0, write_reid_config(config, args.strategy, Path(args.out))
    if "seeds" in args:
        config.seeds = args.seeds
    variants = ablation_variants(config) if args.action == "ablate" else None
    if args.action == "ablate":
        config.output_dir = f"{config.output_dir}_ablation"
    run_experiment(config, variants=variants, from_stage=args.from_stage)
    return 0, Path(config.output_dir, "results.md").read_text()


def write_reid_config(config: ExperimentConfig, strategy: str, out: Path) -> str:
    """`reid-config`: write the strategy's vireid train config (seed 0) to `out`; returns the line to print."""
    variant_of(strategy)  # a ConfigError naming the choices for an unknown one
    out.parent.mkdir(parents=True, exist_ok=True)
    save_config(with_method_options(reid_config(config, strategy, Path(config.output_dir))), out.parent,
                filename=out.name)
    return f"{strategy}: vireid train {out}"
