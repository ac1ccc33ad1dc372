"""`vireid search`: rank a gallery folder for every image of a query folder; CSV, HTML and PNG rank lists."""
from __future__ import annotations

import argparse
from pathlib import Path

from reid.cli_support import positive_int
from reid.data import MODALITIES, Record
from reid.features import FeatureSet
from reid.files import check_output_folder
from reid.models import load_model_checkpoint
from reid.runtime import resolve_device
from reid.search import (IDENTITY_RULE, LISTING_RULE, check_features_match, display_names, extract_folder,
                         folder_records, identities_known, identity_summary, metrics_line, plot_rank_rows,
                         search_gallery, write_rank_csv, write_rank_html)

from .extract import _add_extraction_options, extraction_options

SIDES = ("query", "gallery")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    search = subparsers.add_parser(
        "search", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="rank a gallery folder for every image of a query folder",
        description="Rank every gallery image for every query image by the cosine similarity of L2-normalised "
                    "features (extracted with --checkpoint, or read from features files written by vireid "
                    "extract), exactly as vireid evaluate orders them (np.argsort of -(q @ g.T): the same ties). "
                    "Writes OUT/ranks.csv (every query's top-k: query, rank, gallery, similarity; with identities "
                    "also query_id, gallery_id, match), OUT/ranks.html (a self-contained rank list of the first "
                    "--html-rows queries) and OUT/ranks.png (the first --max-rows queries, captioned with file names "
                    "and similarities), replacing those three files of an earlier search in OUT, and prints the query "
                    "and gallery sizes, with R1 / "
                    "mAP (protocol regdb: no camera rules) when every image's identity is known. Folders are "
                    f"{LISTING_RULE}; {IDENTITY_RULE}.")
    search.add_argument("--checkpoint",
                        help="ReID checkpoint to extract features with (not needed when both --query-features and "
                             "--gallery-features are given)")
    search.add_argument("--query", required=True, metavar="DIR",
                        help="folder of query images; with --query-features, the folder that file's paths are "
                             "relative to (thumbnails are read from it)")
    search.add_argument("--gallery", required=True, metavar="DIR",
                        help="folder of gallery images; with --gallery-features, the folder that file's paths are "
                             "relative to")
    search.add_argument("--query-modality", default="ir", choices=MODALITIES,
                        help="camera of the query images when extracting: vis or ir")
    search.add_argument("--gallery-modality", default="vis", choices=MODALITIES,
                        help="camera of the gallery images when extracting: vis or ir")
    search.add_argument("--query-features", metavar="F",
                        help="features file of the query images (vireid extract) instead of extracting them")
    search.add_argument("--gallery-features", metavar="F",
                        help="features file of the gallery images (vireid extract) instead of extracting them")
    search.add_argument("--top-k", type=positive_int, default=10,
                        help="gallery images listed per query (all of them when the gallery is smaller)")
    search.add_argument("--max-rows", type=positive_int, default=10, help="queries drawn in ranks.png (the first ones)")
    search.add_argument("--html-rows", type=positive_int, default=200,
                        help="queries shown in ranks.html (the first ones; the page says how many of how many, and "
                             "ranks.csv holds every query's ranking)")
    search.add_argument("--out", required=True, help="output folder for ranks.csv, ranks.html and ranks.png")
    _add_extraction_options(search)
    search.set_defaults(handler=run)


def run(args: argparse.Namespace) -> tuple[int, str]:
    sets, listed = _read_inputs(args)
    out = check_output_folder(args.out, what="--out")
    if listed:  # the model is loaded only once the inputs and --out are known to be fine
        device = resolve_device(args.device)
        model, model_config = load_model_checkpoint(args.checkpoint, device)
        for side, records in listed.items():
            sets[side] = extract_folder(model, getattr(args, side), getattr(args, f"{side}_modality"), device,
                                        height=model_config.height, width=model_config.width, what=f"--{side}",
                                        records=records, **extraction_options(args))
    query, gallery = sets["query"], sets["gallery"]
    with_ids = identities_known(query.records, gallery.records)
    ids = {"query_ids": [r.pid for r in query.records], "gallery_ids": [r.pid for r in gallery.records]} \
        if with_ids else {}
    result = search_gallery(query.features, gallery.features, args.top_k, **ids)

    query_paths, gallery_paths = [r.path for r in query.records], [r.path for r in gallery.records]
    query_names, gallery_names = display_names(query.records, args.query), display_names(gallery.records, args.gallery)
    names = {"query_names": query_names, "gallery_names": gallery_names}
    metrics = metrics_line(result.metrics, with_ids)
    summary = (f"{len(query.records)} queries ({identity_summary(query.records)}), gallery of {len(gallery.records)} "
               f"({identity_summary(gallery.records)}); top {result.top_k} of each.")
    csv_path = write_rank_csv(query_names, gallery_names, result.indices, result.similarities, out / "ranks.csv", **ids)
    html_path = write_rank_html(query_paths, gallery_paths, result.indices, result.similarities, out / "ranks.html",
                                title=f"vireid search: {args.query} in {args.gallery}",
                                summary=f"{summary} {metrics}. Every query's ranking: ranks.csv.",
                                max_rows=args.html_rows, **names, **ids)
    png_path = plot_rank_rows(query_paths, gallery_paths, result.indices, result.similarities, out / "ranks.png",
                              max_rows=args.max_rows, title="vireid search", **names, **ids)
    lines = [f"queries: {len(query.records)} under {args.query} ({identity_summary(query.records)})",
             f"gallery: {len(gallery.records)} under {args.gallery} ({identity_summary(gallery.records)})",
             f"top-{result.top_k} per query" + (f" (the whole gallery; --top-k {args.top_k})"
                                                if result.top_k < args.top_k else ""),
             metrics,
             f"written: {csv_path}, {html_path}, {png_path}"]
    return 0, "\n".join(lines)


def _read_inputs(args: argparse.Namespace) -> tuple[dict[str, FeatureSet], dict[str, list[Record]]]:
    """(side -> FeatureSet read from its --SIDE-features file, side -> records of a folder to extract): every input
    checked before any model is loaded, a features file against its folder's images."""
    sets, listed = {}, {}
    for side in SIDES:
        folder, features = getattr(args, side), getattr(args, f"{side}_features")
        if features is None:
            if not args.checkpoint:
                raise ValueError(f"--checkpoint is needed to extract the {side} features "
                                 f"(or give --{side}-features)")
            listed[side] = folder_records(folder, getattr(args, f"{side}_modality"), f"--{side}")
        elif not Path(folder).is_dir():
            raise FileNotFoundError(f"--{side}: no such folder: {folder}")
        else:
            sets[side] = FeatureSet.load(features, root=folder)
            check_features_match(sets[side], folder, file_label=f"--{side}-features {features}",
                                 folder_label=f"--{side} {folder}")
    return sets, listed
