"""`vireid data info` and `vireid data synth`."""
from __future__ import annotations

import argparse
import json

from reid.cli_support import positive_int
from reid.data import dataset_names, load_dataset, make_synthetic_sysu, summarize_records
from reid.evaluation import protocol_settings

NO_IDENTITIES = "none (unlabelled footage)"  # `data info`'s ids of a dataset without identities (data.name=folder)


def add_parser(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="inspect datasets or generate the synthetic one",
                               description="Inspect a dataset in its official layout, or write the "
                                           "synthetic SYSU-MM01-layout dataset.")
    actions = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    info = actions.add_parser("info", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                              help="count ids, images per modality and camera, and test splits",
                              description="Read a dataset's index files / folders and print its counts as "
                                          "JSON, checking the layout on the way.")
    info.add_argument("--dataset", required=True, choices=dataset_names(),
                      help="dataset layout to read (synthetic = a tree written by `vireid data synth`)")
    info.add_argument("--root", required=True, help="dataset root folder")
    info.add_argument("--trial", type=positive_int, default=1, help="RegDB split (1..10); ignored for other datasets")
    info.set_defaults(handler=_run_data_info)

    synth = actions.add_parser("synth", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                               help="write the synthetic SYSU-MM01-layout dataset",
                               description="Generate procedural visible/infrared persons in the SYSU-MM01 "
                                           "layout (cams 1,2,4,5 visible, 3,6 infrared). Rerunning with the "
                                           "same options resumes or does nothing.")
    synth.add_argument("--root", required=True, help="output folder (empty, or an earlier synthetic tree)")
    synth.add_argument("--num-ids", type=positive_int, default=60, help="number of identities")
    synth.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes the same files")
    synth.add_argument("--images-per-camera", type=positive_int, default=4, help="images per identity and camera")
    synth.add_argument("--height", type=positive_int, default=128, help="image height in pixels")
    synth.add_argument("--width", type=positive_int, default=64, help="image width in pixels")
    synth.add_argument("--test-fraction", type=float, default=0.3, help="share of the ids in exp/test_id.txt")
    synth.add_argument("--val-fraction", type=float, default=0.1,
                       help="share of the ids in exp/val_id.txt (held out for tuning with data.evaluate_on=val)")
    synth.set_defaults(handler=_run_data_synth, resumes=True)


def _dataset_options(args: argparse.Namespace) -> dict:
    return {"trial": args.trial} if args.dataset == "regdb" else {}


def _run_data_info(args: argparse.Namespace) -> tuple[int, str]:
    dataset = load_dataset(args.dataset, args.root, **_dataset_options(args))
    report = {"dataset": args.dataset, "root": str(dataset.root), "train": _train_summary(dataset),
              "test": _default_test_split_summary(dataset) if dataset.has_identities else None}
    return 0, json.dumps(report, indent=2)


def _train_summary(dataset) -> dict:
    """Counts of the training images; for footage without identities (pid -1 everywhere) "ids" says so instead
    of counting the -1 as one identity."""
    summary = summarize_records(dataset.train)
    if not dataset.has_identities:
        summary["ids"] = NO_IDENTITIES
        del summary["ids_per_modality"]
    return summary


def _default_test_split_summary(dataset) -> dict:
    """Counts of the first trial of each evaluation setting."""
    summary = {}
    for name, trials in protocol_settings(dataset, trials=1).items():
        query, gallery = dataset.test_split(**trials[0])
        summary[name] = {"query": summarize_records(query), "gallery": summarize_records(gallery)}
    return summary


def _run_data_synth(args: argparse.Namespace) -> tuple[int, str]:
    summary = make_synthetic_sysu(args.root, num_ids=args.num_ids, seed=args.seed,
                                  images_per_camera=args.images_per_camera, height=args.height,
                                  width=args.width, test_fraction=args.test_fraction,
                                  val_fraction=args.val_fraction, progress=True)
    return 0, json.dumps(summary, indent=2, default=str)
