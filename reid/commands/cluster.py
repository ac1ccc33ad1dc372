"""`vireid cluster`: pseudo-labels for saved features."""
from __future__ import annotations

import argparse
import csv

from reid.cli_support import positive_int, write_json
from reid.cluster import METHODS, UNIFY_MODES, cluster_labels, jaccard_distance, mixed_modal_features, summarize_clusters
from reid.evaluation import cluster_quality
from reid.features import FeatureSet
from reid.files import check_output_folder
from reid.train_config import NEED_NUM_CLUSTERS

from .common import command_settings


def add_parser(commands: argparse._SubParsersAction) -> None:
    cluster = commands.add_parser(
        "cluster", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="pseudo-label saved features (k-reciprocal Jaccard + DBSCAN, k-means, spectral, infomap)",
        description="Cluster a saved features file into pseudo-identities. With --translated, each image is "
                    "first mapped into one modality space with the features of its translated view "
                    "(DM2C-style mixed-modal clustering). Writes labels.csv and cluster_report.json (with ARI, NMI, "
                    "pairwise precision/recall/F and purity against the ids stored in the features file).")
    cluster.add_argument("--features", required=True, help="features file of the images (FeatureSet.save)")
    cluster.add_argument("--translated", help="features file of their translated views, same images in the same order")
    cluster.add_argument("--unify", default="both", choices=UNIFY_MODES,
                         help="mixed-modal space with --translated: vis, ir, both (concatenation) or mean")
    cluster.add_argument("--method", default="dbscan", choices=METHODS, help="clustering method")
    cluster.add_argument("--k1", type=positive_int, default=30,
                         help="k-reciprocal neighbourhood size (image itself included)")
    cluster.add_argument("--k2", type=positive_int, default=6, help="query-expansion neighbourhood size")
    cluster.add_argument("--eps", type=float, default=0.6, help="DBSCAN radius on the Jaccard distance, in (0, 1)")
    cluster.add_argument("--min-samples", type=positive_int, default=4,
                         help="DBSCAN core-point size, the image itself included")
    cluster.add_argument("--num-clusters", type=positive_int,
                         help="number of clusters (required by kmeans and spectral)")
    cluster.add_argument("--seed", type=int, default=0, help="seed for kmeans, spectral and infomap")
    cluster.add_argument("--out", required=True, help="output folder")
    cluster.set_defaults(handler=_run_cluster)


def _run_cluster(args: argparse.Namespace) -> tuple[int, str]:
    if args.method in NEED_NUM_CLUSTERS and args.num_clusters is None:
        raise ValueError(f"--method {args.method} needs --num-clusters")
    out = check_output_folder(args.out, what="--out")
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
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "pid", "camid", "modality", "label"])
        writer.writerows([r.path, r.pid, r.camid, r.modality, int(label)]
                         for r, label in zip(feature_set.records, labels))
    pids = [record.pid for record in feature_set.records]
    if all(pid < 0 for pid in pids):  # unlabelled images (e.g. data.name=folder): no quality against true ids
        clusters = summarize_clusters(labels, modalities)
        write_json(out / "cluster_report.json", {"settings": command_settings(args), **clusters.as_dict()})
        return 0, f"{clusters.summary()} (no identities: cluster quality against true ids skipped)"
    quality = cluster_quality(labels, pids, modalities)
    report = {"settings": command_settings(args), **quality.as_dict()}
    write_json(out / "cluster_report.json", report)
    return 0, quality.summary()
