"""`vireid evaluate`: a ReID checkpoint or saved features under a dataset's official protocol."""
from __future__ import annotations

import argparse
from pathlib import Path

from reid.cli_support import non_negative_int, positive_int, write_json
from reid.data import dataset_names, load_dataset
from reid.evaluation import evaluate_protocol
from reid.features import FeatureSet, extract_feature_set
from reid.files import check_output_file
from reid.models import load_model_checkpoint
from reid.runtime import resolve_device

from .common import OVERWRITE_HELP, check_features_output, command_settings, is_json_report


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        "evaluate", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="evaluate a checkpoint or saved features under the dataset's official protocol",
        description="Rank-k (CMC), mAP and mINP of every evaluation setting of the dataset, exactly as the "
                    "community's evaluation code computes them: SYSU-MM01 all/indoor x single/multi-shot over "
                    "10 gallery trials; RegDB v2t and t2v of the loaded trial; LLCM v2i and i2v over 10 "
                    "gallery trials. Prints a table (percent) and writes JSON.")
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="ReID checkpoint to extract test features with")
    source.add_argument("--features", help="features file (FeatureSet.save) holding every test image")
    evaluate.add_argument("--dataset", required=True, choices=dataset_names(), help="dataset layout under --root")
    evaluate.add_argument("--root", required=True, help="dataset root folder")
    evaluate.add_argument("--trial", type=positive_int, default=1,
                          help="RegDB train/test split 1..10 (ignored elsewhere)")
    evaluate.add_argument("--settings", nargs="+", metavar="SETTING",
                          help="settings to evaluate, default all: sysu all-single all-multi indoor-single "
                               "indoor-multi; regdb v2t t2v; llcm v2i i2v")
    evaluate.add_argument("--trials", type=positive_int, default=10,
                          help="gallery trials per setting (SYSU-MM01, LLCM)")
    evaluate.add_argument("--rerank", action="store_true", help="cluster-contrast's k-reciprocal re-ranking, after Zhong et al. (off in published tables)")
    evaluate.add_argument("--rerank-k1", type=positive_int, default=20, help="re-ranking neighbourhood size")
    evaluate.add_argument("--rerank-k2", type=positive_int, default=6, help="re-ranking query-expansion size")
    evaluate.add_argument("--rerank-lambda", type=float, default=0.3, help="weight of the original distance")
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (with --checkpoint)")
    evaluate.add_argument("--batch-size", type=positive_int, default=64,
                          help="extraction batch size (with --checkpoint)")
    evaluate.add_argument("--workers", type=non_negative_int, default=2,
                          help="image-decoding worker processes (with --checkpoint)")
    evaluate.add_argument("--save-features", help="with --checkpoint: also write the extracted test features here")
    evaluate.add_argument("--out", help="JSON results file; default eval_<dataset>.json beside the checkpoint "
                                        "or features file. An existing file is replaced only when it is such a "
                                        "results file, or with --overwrite (--save-features: only a features file)")
    evaluate.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    evaluate.set_defaults(handler=run)


def run(args: argparse.Namespace) -> tuple[int, str]:
    if args.features and args.save_features:
        raise ValueError("--save-features saves features extracted with --checkpoint; with --features there is "
                         "nothing to extract")
    source_path = Path(args.checkpoint or args.features)
    out = check_output_file(args.out or source_path.parent / f"eval_{args.dataset}.json",
                            what="--out" if args.out else "results file (default --out)", overwrite=args.overwrite,
                            ours=is_json_report, kind="a results file of vireid evaluate")
    if args.save_features:
        check_features_output(args.save_features, "--save-features", args.overwrite)
    dataset = load_dataset(args.dataset, args.root, **({"trial": args.trial} if args.dataset == "regdb" else {}))
    if args.features:
        source = FeatureSet.load(args.features, root=dataset.root)
    else:
        source = _checkpoint_features(args, dataset.root)
    result = evaluate_protocol(source, dataset, settings=args.settings, trials=args.trials, rerank=args.rerank,
                               rerank_options={"k1": args.rerank_k1, "k2": args.rerank_k2,
                                               "lambda_value": args.rerank_lambda})
    write_json(out, {"source": str(source_path), "options": command_settings(args), **result.as_dict()})
    return 0, f"{result.table()}\n\nwritten: {out}"


def _checkpoint_features(args: argparse.Namespace, root: Path):
    """A function records -> features that extracts with the checkpoint's model (and saves them if asked)."""
    device = resolve_device(args.device)
    model, model_config = load_model_checkpoint(args.checkpoint, device)

    def extract(records):
        feature_set = extract_feature_set(model, records, device, batch_size=args.batch_size,
                                          height=model_config.height, width=model_config.width,
                                          num_workers=args.workers)
        if args.save_features:
            feature_set.save(args.save_features, root=root)
        return feature_set.features

    return extract
