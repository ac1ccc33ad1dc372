"""`vireid`: the ReID toolkit's command line.

    vireid data synth --root data/synthetic --num-ids 60 --seed 0
    vireid data info --dataset sysu --root /data/SYSU-MM01
    vireid cluster --features feats.pt --translated feats_translated.pt --unify both --out runs/labels
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Sequence

from .checkpoint import CheckpointError
from .cluster import METHODS, UNIFY_MODES, cluster_labels, jaccard_distance, mixed_modal_features, summarize_clusters
from .data import dataset_names, load_dataset, make_synthetic_sysu, summarize_records
from .features import FeatureSet
from .runtime import setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vireid",
        description="Unsupervised visible-infrared person re-identification toolkit.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="how much the library logs to stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_data_parser(commands)
    _add_cluster_parser(commands)
    return parser


def _add_data_parser(commands: argparse._SubParsersAction) -> None:
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
    info.add_argument("--trial", type=int, default=1, help="RegDB split (1..10); ignored for other datasets")
    info.set_defaults(handler=_run_data_info)

    synth = actions.add_parser("synth", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                               help="write the synthetic SYSU-MM01-layout dataset",
                               description="Generate procedural visible/infrared persons in the SYSU-MM01 "
                                           "layout (cams 1,2,4,5 visible, 3,6 infrared). Rerunning with the "
                                           "same options resumes or does nothing.")
    synth.add_argument("--root", required=True, help="output folder (empty, or an earlier synthetic tree)")
    synth.add_argument("--num-ids", type=int, default=60, help="number of identities")
    synth.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes the same files")
    synth.add_argument("--images-per-camera", type=int, default=4, help="images per identity and camera")
    synth.add_argument("--height", type=int, default=128, help="image height in pixels")
    synth.add_argument("--width", type=int, default=64, help="image width in pixels")
    synth.set_defaults(handler=_run_data_synth)


def _add_cluster_parser(commands: argparse._SubParsersAction) -> None:
    cluster = commands.add_parser(
        "cluster", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="pseudo-label saved features (k-reciprocal Jaccard + DBSCAN, k-means, spectral, infomap)",
        description="Cluster a saved features file into pseudo-identities. With --translated, each image is "
                    "first mapped into one modality space with the features of its translated view "
                    "(DM2C-style mixed-modal clustering). Writes labels.csv and cluster_report.json.")
    cluster.add_argument("--features", required=True, help="features file of the images (FeatureSet.save)")
    cluster.add_argument("--translated", help="features file of their translated views, same images in the same order")
    cluster.add_argument("--unify", default="both", choices=UNIFY_MODES,
                         help="mixed-modal space with --translated: vis, ir, both (concatenation) or mean")
    cluster.add_argument("--method", default="dbscan", choices=METHODS, help="clustering method")
    cluster.add_argument("--k1", type=int, default=30, help="k-reciprocal neighbourhood size (image itself included)")
    cluster.add_argument("--k2", type=int, default=6, help="query-expansion neighbourhood size")
    cluster.add_argument("--eps", type=float, default=0.6, help="DBSCAN radius on the Jaccard distance, in (0, 1)")
    cluster.add_argument("--min-samples", type=int, default=4, help="DBSCAN core-point size, the image itself included")
    cluster.add_argument("--num-clusters", type=int, help="number of clusters for kmeans and spectral")
    cluster.add_argument("--seed", type=int, default=0, help="seed for kmeans, spectral and infomap")
    cluster.add_argument("--out", required=True, help="output folder")
    cluster.set_defaults(handler=_run_cluster)


def _run_cluster(args: argparse.Namespace) -> int:
    feature_set = FeatureSet.load(args.features)
    features = feature_set.features
    if args.translated:
        translated = FeatureSet.load(args.translated)
        if [r.path for r in translated.records] != [r.path for r in feature_set.records]:
            raise ValueError(f"{args.translated} does not describe the images of {args.features} in the same order")
        features = mixed_modal_features(features, translated.features,
                                        [r.modality for r in feature_set.records], unify=args.unify)
    modalities = [record.modality for record in feature_set.records]
    distance = None if args.method == "kmeans" else jaccard_distance(features, k1=args.k1, k2=args.k2)
    labels = cluster_labels(distance, method=args.method, eps=args.eps, min_samples=args.min_samples,
                            features=features, num_clusters=args.num_clusters, modalities=modalities, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "pid", "camid", "modality", "label"])
        writer.writerows([r.path, r.pid, r.camid, r.modality, int(label)]
                         for r, label in zip(feature_set.records, labels))
    report = summarize_clusters(labels, modalities).as_dict()
    (out / "cluster_report.json").write_text(json.dumps({"settings": _settings(args), **report}, indent=2))
    print(json.dumps({key: report[key] for key in ("num_samples", "num_clusters", "num_outliers", "mixed_clusters",
                                                   "mixed_share")}, indent=2))
    return 0


def _settings(args: argparse.Namespace) -> dict:
    """The command's options, for the files it writes."""
    return {key: value for key, value in vars(args).items() if key != "handler"}


def _dataset_options(args: argparse.Namespace) -> dict:
    return {"trial": args.trial} if args.dataset == "regdb" else {}


def _run_data_info(args: argparse.Namespace) -> int:
    dataset = load_dataset(args.dataset, args.root, **_dataset_options(args))
    report = {"dataset": args.dataset, "root": str(dataset.root), "train": summarize_records(dataset.train),
              "test": _default_test_split_summary(dataset)}
    print(json.dumps(report, indent=2))
    return 0


def _default_test_split_summary(dataset) -> dict:
    """Counts of the first test setting of each direction/mode."""
    if dataset.name in ("sysu", "synthetic"):
        settings = {"all": {"mode": "all"}, "indoor": {"mode": "indoor"}}
    elif dataset.name == "regdb":
        settings = {"v2t": {"direction": "v2t"}, "t2v": {"direction": "t2v"}}
    else:
        settings = {"v2i": {"direction": "v2i"}, "i2v": {"direction": "i2v"}}
    summary = {}
    for label, protocol in settings.items():
        query, gallery = dataset.test_split(**protocol)
        summary[label] = {"query": summarize_records(query), "gallery": summarize_records(gallery)}
    return summary


def _run_data_synth(args: argparse.Namespace) -> int:
    summary = make_synthetic_sysu(args.root, num_ids=args.num_ids, seed=args.seed,
                                  images_per_camera=args.images_per_camera, height=args.height,
                                  width=args.width, progress=True)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        return args.handler(args)
    except (FileNotFoundError, ValueError, OSError, RuntimeError, KeyError, CheckpointError) as error:
        print(f"vireid: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
