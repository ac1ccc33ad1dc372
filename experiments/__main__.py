"""`python -m experiments run CONFIG [key=value ...]` and `python -m experiments ablate CONFIG [...]`.

    python -m experiments run experiments/configs/demo.yaml
    python -m experiments run experiments/configs/demo.yaml --from reid
    python -m experiments run experiments/configs/demo.yaml --seeds 3
    python -m experiments ablate experiments/configs/demo.yaml
    python -m experiments reid-config experiments/configs/sysu.yaml pgm --out pgm.yaml   # its vireid train config
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from reid.checkpoint import CheckpointError
from reid.cli_support import (EXIT_INTERRUPTED, add_log_level_option, interrupted_message, log_level,
                              parse_with_overrides, positive_int)
from reid.config import ConfigError, load_config, save_config
from reid.runtime import setup_logging
from reid.train import with_method_options

from .config import ABLATION, OPPOSITES, VARIANTS, ExperimentConfig, ablation_variants, reid_config
from .runner import STAGES, run_experiment


SEEDS_HELP = ("train each strategy N times, the k-th (k = 0..N-1) with runtime.seed + k, into "
              "reid/<strategy>/seed_<k>/; the dataset, translator and translation are shared by all seeds. "
              "results.md shows mean ± std over the seeds (sample std). Seeds already trained are reused, "
              "so raising N trains only the new ones. Default: the config's `seeds` (1)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The joint experiment: dataset -> translator -> translated dataset -> ReID training per "
                    "strategy and seed -> evaluation -> report (results.json, results.md, report/*.png) under "
                    "output_dir.\nThe results table carries chance (the protocol on random features) and the "
                    "upper bound beside the strategies, as mean ± std over the seeds.\n"
                    "Rerunning reuses finished stages; a changed config section reruns its stage and the ones after.\n"
                    "OVERRIDEs may stand anywhere after CONFIG, options included.",
        epilog="Exit status: 0 done; 2 it could not run (bad arguments, config or input, an output that cannot be "
               "written); 130 interrupted (Ctrl-C; rerunning the same command resumes).")
    add_log_level_option(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    swaps = ", ".join(f"{name} becomes {opposite}" for name, opposite in OPPOSITES.items())
    for name, help_text in (("run", "run the strategies listed in the config (`strategies`)"),
                            ("ablate", f"run the strategies {', '.join(ABLATION)} side by side on the same data "
                                       f"and seeds, into output_dir + '_ablation' (a variant that changes nothing "
                                       f"in this config is swapped for its opposite: {swaps})")):
        command = commands.add_parser(name, help=help_text, description=help_text,
                                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        command.add_argument("config", metavar="CONFIG", help="experiment YAML (see experiments/configs/)")
        command.add_argument("overrides", nargs="*", metavar="OVERRIDE",
                             help="dotted.key=value, e.g. reid.train.epochs=4 data.root=/data/SYSU-MM01")
        command.add_argument("--from", dest="from_stage", choices=STAGES,
                             help="run this stage and every later one again, even if finished")
        command.add_argument("--seeds", type=positive_int, metavar="N", default=argparse.SUPPRESS, help=SEEDS_HELP)
        command.set_defaults(resumes=True)
    export = commands.add_parser(
        "reid-config", help="write the vireid train config one strategy of the experiment trains with",
        description="Write the `vireid train` config of one strategy of an experiment config (its method, the shared "
                    "ReID recipe and the experiment's recipe for that strategy, seed 0), e.g. to train PGM on "
                    "SYSU-MM01 alone: python -m experiments reid-config experiments/configs/sysu.yaml pgm --out "
                    "pgm.yaml && vireid train pgm.yaml. Nothing is trained; `translated` and output_dir point into "
                    "the experiment's output_dir.")
    export.add_argument("config", metavar="CONFIG", help="experiment YAML (see experiments/configs/)")
    export.add_argument("strategy", metavar="STRATEGY", help=f"one of {', '.join(VARIANTS)}")
    export.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="dotted.key=value of the experiment config")
    export.add_argument("--out", required=True, metavar="FILE", help="the YAML file to write")
    return parser


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line, with key=value overrides allowed after the options too (`run C --seeds 3 a=b`)."""
    return parse_with_overrides(build_parser(), argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    setup_logging(log_level(args))
    try:
        config = load_config(ExperimentConfig, args.config, args.overrides)
        setup_logging(log_level(args, config.runtime.log_level))
        if args.command == "reid-config":
            return write_reid_config(config, args.strategy, Path(args.out))
        if "seeds" in args:
            config.seeds = args.seeds
        variants = ablation_variants(config) if args.command == "ablate" else None
        if args.command == "ablate":
            config.output_dir = f"{config.output_dir}_ablation"
        run_experiment(config, variants=variants, from_stage=args.from_stage)
    except KeyboardInterrupt:
        print(interrupted_message("experiments", args), file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ConfigError, CheckpointError, OSError, ValueError, RuntimeError, KeyError) as error:
        print(f"experiments: error: {error}", file=sys.stderr)
        return 2
    print(Path(config.output_dir, "results.md").read_text())
    return 0


def write_reid_config(config: ExperimentConfig, strategy: str, out: Path) -> int:
    """`reid-config`: write the strategy's vireid train config (seed 0) to `out`."""
    if strategy not in VARIANTS:
        raise ConfigError(f"unknown strategy {strategy!r}; choose among {list(VARIANTS)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_config(with_method_options(reid_config(config, strategy, Path(config.output_dir))), out.parent,
                filename=out.name)
    print(f"{strategy}: vireid train {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
