"""Search a folder: the records of a folder of images, gallery rankings for query features, and their outputs
(a CSV of the top-k, a self-contained HTML rank list, a PNG of the first rows).

Identities and cameras come from folder names, so no index file is needed:

- pid: the name of the folder an image sits in, when that folder lies inside the searched root and its name is
  a whole number in ASCII digits (`0001/` -> 1); else -1 (unknown). Images directly under the root have pid -1.
- camid: N for the nearest folder on the image's path inside the root named `camN` / `cameraN` (SYSU-MM01's
  `cam3/`; any case, `_` or `-` allowed before N, as the folder dataset's camera folders); else -1 (unknown).

Rankings are those of `vireid evaluate` on the same features: rows L2-normalised (`l2_normalize`), distances
-(q @ g.T) in float32 and `np.argsort(distmat, axis=1)`, so ties break the same way. The distance matrix is built
in blocks of queries, [block, G] at a time; by default one block holds every query when Q x G is at most
`MAX_CELLS`, so the matrix is the very one `vireid evaluate` builds (a float32 matmul split into blocks may round
differently by one unit in the last place, which can swap two gallery images that are that close).
"""
from __future__ import annotations

import base64
import csv
import html
import io
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from torch import nn

from .cluster.neighbors import l2_normalize
from .data import Record, read_image, relative_path
from .data.folder import walk_images
from .data.sysu import IMAGE_SUFFIXES
from .evaluation import RankingResult, evaluate_ranking
from .features import FeatureSet, extract_features
from .files import write_atomically, write_text_atomically

UNKNOWN = -1  # pid / camid of an image whose folder names do not give it
MAX_CELLS = 1 << 23  # query x gallery distances held at once (32 MiB of float32, plus the argsort's int64)
MAX_RANK = 20  # CMC length of the summary metrics, as `vireid evaluate`
IDENTITY_FOLDER = re.compile(r"[0-9]+")
CAMERA_FOLDER = re.compile(r"cam(?:era)?[_-]?([0-9]+)", re.IGNORECASE)  # as reid.data.folder's camera folders
MATCH_COLOURS = {True: "#1a9641", False: "#d7191c"}  # green / red, as the experiment report's retrieval rows
UNKNOWN_FRAME = "#bbbbbb"  # PNG frame of a gallery image whose identity is unknown
THUMBNAIL_SIZE = (64, 128)  # width, height: the usual person crop
DPI = 110
SIMILARITY_DECIMALS = 2  # in the HTML and PNG captions (the CSV and the HTML's data-similarity hold the exact value)
NAME_CHARS = 16  # a PNG caption's file name is cut to its last NAME_CHARS characters
LISTING_RULE = ("searched recursively: .jpg .jpeg .png .bmp in any case, sorted by path folder by folder, hidden "
                "files and folders skipped, symlinked folders followed")
IDENTITY_RULE = ("identity (pid) = the name of the folder an image sits in when it is a whole number "
                 "(0001/ -> 1), else -1 (unknown); camera = N of the nearest folder named camN or cameraN, else -1")


# ------------------------------------------------------------------------------------------------ folders

def folder_images(root: str | os.PathLike, what: str = "images") -> list[Path]:
    """Every image file under `root` (any nesting; suffixes `IMAGE_SUFFIXES`, any case), sorted by relative path
    folder by folder; hidden files and folders (a name starting with ".") are skipped, symlinked folders followed
    (each real folder once, so a link loop ends).

    what: how error messages name the folder (e.g. "--query"). FileNotFoundError when `root` is not a folder or
    holds no image.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{what}: no such folder: {root}")
    relpaths = walk_images(root)
    if not relpaths:
        raise FileNotFoundError(f"{what}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}")
    return [root / relpath for relpath in sorted(relpaths, key=lambda relpath: PurePosixPath(relpath).parts)]


def folder_ids(relative: str | os.PathLike) -> tuple[int, int]:
    """(pid, camid) of an image from its path relative to the searched root, by the module's folder-name rule."""
    folders = PurePosixPath(Path(relative).as_posix()).parts[:-1]
    pid = int(folders[-1]) if folders and IDENTITY_FOLDER.fullmatch(folders[-1]) else UNKNOWN
    cameras = [CAMERA_FOLDER.fullmatch(folder) for folder in reversed(folders)]
    camid = next((int(match.group(1)) for match in cameras if match), UNKNOWN)
    return pid, camid


def folder_records(root: str | os.PathLike, modality: str, what: str = "images") -> list[Record]:
    """Records of every image under `root` (see `folder_images`), in that order: absolute paths, pid and camid
    from folder names (`folder_ids`; -1 when unknown), the given `modality` ("vis" or "ir")."""
    records = []
    for path in folder_images(root, what):
        pid, camid = folder_ids(path.relative_to(root))
        records.append(Record(os.path.abspath(path), pid, camid, modality))
    return records


def extract_folder(model: nn.Module, root: str | os.PathLike, modality: str, device: torch.device, *,
                   height: int, width: int, what: str = "images", records: Sequence[Record] | None = None,
                   **kwargs) -> FeatureSet:
    """FeatureSet of every image under `root` (`folder_records`, or `records` when the caller listed them already):
    features [N, D] by `extract_features` (flip-averaged, L2-normalised; keyword arguments such as batch_size,
    num_workers, flip passed through). Save it with `.save(path, root=root)` to keep its paths relative to the
    folder."""
    records = list(folder_records(root, modality, what) if records is None else records)
    return FeatureSet(records, extract_features(model, records, device, height=height, width=width, **kwargs))


def check_features_match(feature_set: FeatureSet, root: str | os.PathLike, *, file_label: str,
                         folder_label: str, shown: int = 3) -> None:
    """ValueError naming the features file and the folder (`file_label`, `folder_label`, e.g. "--query-features
    q.pt", "--query probes/") unless the images of `feature_set` (loaded with `root=root`) are exactly the images
    under `root` (the listing rule of `folder_images`): says how many of its images are not there and how many
    there it lacks, with the first `shown` names of each."""
    stored = {relative_path(record.path, root) for record in feature_set.records}
    on_disk = set(walk_images(Path(root)))
    missing, extra = sorted(stored - on_disk), sorted(on_disk - stored)
    if not missing and not extra:
        return
    problems = []
    if missing:
        problems.append(f"{len(missing)} of its {len(stored)} images are not there ({_first(missing, shown)})")
    if extra:
        problems.append(f"{len(extra)} of the {len(on_disk)} images there are not in it ({_first(extra, shown)})")
    raise ValueError(f"{file_label} does not describe the images under {folder_label}: {'; '.join(problems)}. "
                     "Give the folder the file was extracted from, or extract this folder again (vireid extract)")


def _first(names: Sequence[str], shown: int) -> str:
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


def identities_known(*record_lists: Sequence[Record]) -> bool:
    """Whether every record of every list has a known identity (pid >= 0)."""
    return all(record.pid >= 0 for records in record_lists for record in records)


def identity_summary(records: Sequence[Record]) -> str:
    """E.g. "12 images, 6 identities" or "12 images, 2 identities, identity unknown for 4"."""
    known = [record.pid for record in records if record.pid >= 0]
    text = f"{len(records)} images, {len(set(known))} identities"
    unknown = len(records) - len(known)
    return text + (f", identity unknown for {unknown}" if unknown else "")


# ------------------------------------------------------------------------------------------------ ranking

@dataclass(frozen=True)
class SearchResult:
    """indices: [Q, k] int64 gallery rows, best first; similarities: [Q, k] float32 cosine similarities of those
    rows; metrics: R1 / mAP ... under the "regdb" protocol (no camera rules) when identities were given and some
    query's identity is in the gallery, else None."""

    indices: np.ndarray
    similarities: np.ndarray
    metrics: RankingResult | None = None

    @property
    def top_k(self) -> int:
        return self.indices.shape[1]


def default_block(num_gallery: int) -> int:
    """Queries per block: as many as keep a block within `MAX_CELLS` distances (at least 1)."""
    return max(1, MAX_CELLS // max(num_gallery, 1))


def distance_blocks(query_features: torch.Tensor, gallery_features: torch.Tensor,
                    block: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(first query row, distances [b, G] float32) per block of `block` queries (default `default_block`): the rows
    of -(q @ g.T) of the L2-normalised features (query_features [Q, D], gallery_features [G, D]), as
    `vireid evaluate` computes them."""
    query_features, gallery_features = _normalised(query_features), _normalised(gallery_features)
    if query_features.shape[1] != gallery_features.shape[1]:
        raise ValueError(f"query features have dimension {query_features.shape[1]}, gallery features "
                         f"{gallery_features.shape[1]}: they come from different models")
    block = default_block(gallery_features.shape[0]) if block is None else block
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    for start in range(0, query_features.shape[0], block):
        yield start, -(query_features[start:start + block] @ gallery_features.T).numpy()


def search_gallery(query_features: torch.Tensor, gallery_features: torch.Tensor, top_k: int, *,
                   query_ids: Sequence[int] | None = None, gallery_ids: Sequence[int] | None = None,
                   block: int | None = None) -> SearchResult:
    """The top_k gallery rows of every query, best first, and (given ids) the summary metrics.

    query_features: [Q, D]; gallery_features: [G, D] (L2-normalised here, as `vireid evaluate` does);
    query_ids: [Q], gallery_ids: [G] identities, or None. k = min(top_k, G). Each block's ranking is
    `np.argsort(-(q @ g.T), axis=1)[:, :k]` and its metrics `evaluate_ranking(..., protocol="regdb")`, combined
    over blocks weighted by their queries with a match (one block: exactly `evaluate_ranking`'s numbers).
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    num_gallery = gallery_features.shape[0]
    if num_gallery == 0 or query_features.shape[0] == 0:
        raise ValueError(f"nothing to rank: {query_features.shape[0]} queries, {num_gallery} gallery images")
    if (query_ids is None) != (gallery_ids is None):
        raise ValueError("give both query_ids and gallery_ids, or neither")
    k = min(top_k, num_gallery)
    if query_ids is not None:
        query_ids, gallery_ids = np.asarray(query_ids), np.asarray(gallery_ids)
        if query_ids.shape != (query_features.shape[0],) or gallery_ids.shape != (num_gallery,):
            raise ValueError(f"ids of shape {query_ids.shape} and {gallery_ids.shape} for {query_features.shape[0]} "
                             f"queries and {num_gallery} gallery images")
    indices, similarities, parts = [], [], []
    for start, distmat in distance_blocks(query_features, gallery_features, block):
        order = np.argsort(distmat, axis=1)[:, :k]
        indices.append(order)
        similarities.append(-np.take_along_axis(distmat, order, axis=1))
        if query_ids is not None:
            ids = query_ids[start:start + distmat.shape[0]]
            if np.isin(ids, gallery_ids).any():  # else evaluate_ranking refuses: nothing to evaluate
                zeros_q, zeros_g = np.zeros(len(ids), np.int64), np.zeros(num_gallery, np.int64)
                parts.append(evaluate_ranking(distmat, ids, gallery_ids, zeros_q, zeros_g, protocol="regdb",
                                              max_rank=MAX_RANK))
    metrics = _combine(parts, query_features.shape[0]) if query_ids is not None and parts else None
    return SearchResult(np.concatenate(indices).astype(np.int64), np.concatenate(similarities).astype(np.float32),
                        metrics)


def rank_gallery(query_features: torch.Tensor, gallery_features: torch.Tensor, top_k: int,
                 block: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(indices [Q, k] int64, similarities [Q, k] float32): `search_gallery` without metrics."""
    result = search_gallery(query_features, gallery_features, top_k, block=block)
    return result.indices, result.similarities


def _normalised(features) -> torch.Tensor:
    features = torch.as_tensor(features).detach().cpu()
    if features.ndim != 2:
        raise ValueError(f"features must be [N, D], got shape {tuple(features.shape)}")
    return l2_normalize(features)


def _combine(parts: list[RankingResult], num_queries: int) -> RankingResult:
    """The blocks' results as one: CMC, mAP and mINP averaged over every valid query."""
    if len(parts) == 1:
        part = parts[0]
        return RankingResult(part.cmc, part.mAP, part.mINP, num_queries, part.num_valid_queries)
    weights = np.array([part.num_valid_queries for part in parts], dtype=np.float64)
    total = weights.sum()
    cmc = sum(part.cmc * w for part, w in zip(parts, weights)) / total
    return RankingResult(cmc, float(sum(part.mAP * w for part, w in zip(parts, weights)) / total),
                         float(sum(part.mINP * w for part, w in zip(parts, weights)) / total),
                         num_queries, int(total))


def metrics_line(metrics: RankingResult | None, ids_known: bool) -> str:
    """One line: R1, R5, R10, mAP, mINP in percent (protocol regdb), or why there are none."""
    if not ids_known:
        return "identities unknown (not every image sits in a numbered identity folder): no R1 / mAP"
    if metrics is None:
        return "no query identity appears in the gallery: R1 / mAP undefined"
    line = (f"R1 {100 * metrics.rank(1):.2f}  R5 {100 * metrics.rank(5):.2f}  R10 {100 * metrics.rank(10):.2f}  "
            f"mAP {100 * metrics.mAP:.2f}  mINP {100 * metrics.mINP:.2f}  (%, protocol regdb: no camera rules)")
    if metrics.num_skipped_queries:
        line += f"; {metrics.num_skipped_queries} queries whose identity is not in the gallery left out"
    return line


# ------------------------------------------------------------------------------------------------ outputs

def _format_similarity(value) -> str:
    """The shortest decimal that reads back as the same float32."""
    return np.format_float_positional(np.float32(value), unique=True, trim="-")


def _ids_given(query_ids, gallery_ids) -> bool:
    if (query_ids is None) != (gallery_ids is None):
        raise ValueError("give both query_ids and gallery_ids, or neither")
    return query_ids is not None


def write_rank_csv(query_names: Sequence[str], gallery_names: Sequence[str], indices: np.ndarray,
                   similarities: np.ndarray, path: str | os.PathLike, *, query_ids: Sequence[int] | None = None,
                   gallery_ids: Sequence[int] | None = None) -> Path:
    """`path` (atomically): one row per query and rank, Q x k rows under the header query, rank, gallery,
    similarity (+ query_id, gallery_id, match 1/0 when ids are given).

    query_names: [Q], gallery_names: [G] (e.g. paths relative to their folders); indices, similarities: [Q, k]."""
    with_ids = _ids_given(query_ids, gallery_ids)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["query", "rank", "gallery", "similarity"] + (["query_id", "gallery_id", "match"] * with_ids))
    for q, (row, sims) in enumerate(zip(indices, similarities)):
        for rank, (g, sim) in enumerate(zip(row, sims), start=1):
            line = [query_names[q], rank, gallery_names[g], _format_similarity(sim)]
            if with_ids:
                line += [int(query_ids[q]), int(gallery_ids[g]), int(query_ids[q] == gallery_ids[g])]
            writer.writerow(line)
    return write_text_atomically(path, buffer.getvalue())


def _thumbnail_uri(path: str | os.PathLike) -> str:
    """A data: URI of the image scaled to fit THUMBNAIL_SIZE, aspect kept (JPEG); ImageReadError names a bad file."""
    image = read_image(path, "RGB")
    scale = min(THUMBNAIL_SIZE[0] / image.width, THUMBNAIL_SIZE[1] / image.height)
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), resample=3)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


HTML_STYLE = """body{font-family:sans-serif;font-size:12px;margin:16px}
table{border-collapse:separate;border-spacing:6px 10px}
td{vertical-align:top;text-align:center;min-width:80px}
td.query{border-right:2px solid #444;padding-right:10px}
.thumb{width:64px;height:128px;margin:0 auto 3px;border:4px solid transparent;background:#eee no-repeat center;
background-size:contain}
.query .thumb{border-color:#000}
.name{color:#555;max-width:88px;overflow-wrap:anywhere}"""


def write_rank_html(query_paths: Sequence[str], gallery_paths: Sequence[str], indices: np.ndarray,
                    similarities: np.ndarray, path: str | os.PathLike, *, query_ids: Sequence[int] | None = None,
                    gallery_ids: Sequence[int] | None = None, query_names: Sequence[str] | None = None,
                    gallery_names: Sequence[str] | None = None, title: str = "Rank list", summary: str = "",
                    max_rows: int | None = None) -> Path:
    """A self-contained HTML rank list at `path` (atomically): one table row per query (`tr.ranks`) for the first
    `max_rows` queries (all when None; the page says how many of how many it shows), the query thumbnail then its
    k gallery thumbnails (`td.hit` with data-rank, data-gallery, data-similarity: the exact float32), captioned
    with rank and similarity (SIMILARITY_DECIMALS). With ids, each hit's frame is green (same identity, class
    `match`) or red (class `nomatch`); without, no frame. Thumbnails are embedded once per image as base64 JPEG
    in CSS classes, so the file needs nothing beside it.

    query_paths: [Q], gallery_paths: [G] readable image paths; names: what captions show (default the paths);
    indices, similarities: [Q, k]."""
    with_ids = _ids_given(query_ids, gallery_ids)
    query_names = query_paths if query_names is None else query_names
    gallery_names = gallery_paths if gallery_names is None else gallery_names
    classes: dict[tuple[str, int], str] = {}
    rules = []

    def thumb(side: str, index: int, image_path: str, name: str, style: str = "") -> str:
        key = (side, index)
        if key not in classes:
            classes[key] = f"{side[0]}{index}"
            rules.append(f".{classes[key]}{{background-image:url({_thumbnail_uri(image_path)})}}")
        label = html.escape(name)
        return (f'<div class="thumb {classes[key]}" role="img" aria-label="{label}" title="{label}"'
                f'{style}></div>')

    rows = []
    shown = len(indices) if max_rows is None else min(max_rows, len(indices))
    for q, (row, sims) in enumerate(zip(indices[:shown], similarities[:shown])):
        query_id = f"<br>id {int(query_ids[q])}" if with_ids else ""
        cells = [f'<td class="query">{thumb("query", q, query_paths[q], query_names[q])}<b>query</b>{query_id}'
                 f'<div class="name">{html.escape(query_names[q])}</div></td>']
        for rank, (g, sim) in enumerate(zip(row, sims), start=1):
            kind, style, gallery_id = "hit", "", ""
            if with_ids:
                same = bool(query_ids[q] == gallery_ids[g])
                kind += " match" if same else " nomatch"
                style = f' style="border-color:{MATCH_COLOURS[same]}"'
                gallery_id = f"<br>id {int(gallery_ids[g])}"
            cells.append(f'<td class="{kind}" data-rank="{rank}" data-gallery="{html.escape(gallery_names[g])}" '
                         f'data-similarity="{_format_similarity(sim)}">'
                         f'{thumb("gallery", int(g), gallery_paths[g], gallery_names[g], style)}'
                         f'#{rank} &middot; {float(sim):.{SIMILARITY_DECIMALS}f}{gallery_id}</td>')
        rows.append(f'<tr class="ranks">{"".join(cells)}</tr>')
    legend = " Frames: green = same identity as the query, red = different." if with_ids else ""
    text = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
            f"<style>\n{HTML_STYLE}\n{chr(10).join(rules)}\n</style>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
            f"<p>{html.escape(summary)}{legend} Similarity: cosine of L2-normalised features.</p>\n"
            f'<p class="shown">Queries shown: {_shown_text(shown, len(indices))}.</p>\n'
            f'<table>\n{chr(10).join(rows)}\n</table>\n</body>\n</html>\n')
    return write_text_atomically(path, text)


def _shown_text(shown: int, total: int) -> str:
    return f"all {total}" if shown == total else f"the first {shown} of {total}"


def short_name(name: str, chars: int = NAME_CHARS) -> str:
    """`name` cut to its last `chars` characters, an ellipsis first, when longer: the end, where the file name is."""
    return name if len(name) <= chars else "\u2026" + name[len(name) - chars + 1:]


def rank_plot_size(num_rows: int, top_k: int) -> tuple[int, int]:
    """(width, height) in pixels of `plot_rank_rows`' PNG for `num_rows` rows of 1 + top_k images."""
    width, height = _figure_inches(num_rows, top_k)
    return round(width * DPI), round(height * DPI)


def _figure_inches(num_rows: int, top_k: int) -> tuple[float, float]:
    return 1.2 * (1 + top_k) + 0.3, 2.3 * max(num_rows, 1) + 0.7


def _thumbnail_array(path: str | os.PathLike) -> np.ndarray:
    return np.asarray(read_image(path, "RGB").resize(THUMBNAIL_SIZE, resample=3))  # 3 = bicubic


def plot_rank_rows(query_paths: Sequence[str], gallery_paths: Sequence[str], indices: np.ndarray,
                   similarities: np.ndarray, path: str | os.PathLike, *, query_ids: Sequence[int] | None = None,
                   gallery_ids: Sequence[int] | None = None, max_rows: int = 10, title: str = "Rank list",
                   query_names: Sequence[str] | None = None, gallery_names: Sequence[str] | None = None) -> Path:
    """A PNG at `path` (atomically) of the first `max_rows` queries, drawn as the experiment report's retrieval
    rows: the query framed black, then its k gallery images captioned `#rank similarity` (SIMILARITY_DECIMALS),
    each image's name (`short_name`) and ids, framed green / red for same / different identity when ids are given,
    grey otherwise. Size: `rank_plot_size`.

    query_paths: [Q], gallery_paths: [G] readable image paths; names: what captions show (default the file
    names); indices, similarities: [Q, k]."""
    from matplotlib.figure import Figure  # noqa: PLC0415 (slow import, only when drawing; no global backend)

    with_ids = _ids_given(query_ids, gallery_ids)
    query_names = [Path(p).name for p in query_paths] if query_names is None else query_names
    gallery_names = [Path(p).name for p in gallery_paths] if gallery_names is None else gallery_names
    lines = min(max_rows, len(indices))
    top_k = indices.shape[1]
    figure = Figure(figsize=_figure_inches(lines, top_k), dpi=DPI)
    axes = figure.subplots(max(lines, 1), 1 + top_k, squeeze=False, gridspec_kw={"wspace": 0.12, "hspace": 0.45})
    cache: dict[str, np.ndarray] = {}

    def draw(axis, image_path: str, frame: str, caption: str, colour: str = "black") -> None:
        if image_path not in cache:
            cache[image_path] = _thumbnail_array(image_path)
        axis.imshow(cache[image_path])
        axis.set_xticks([])
        axis.set_yticks([])
        for spine in axis.spines.values():
            spine.set_edgecolor(frame)
            spine.set_linewidth(4)
        axis.set_xlabel(caption, fontsize=8, color=colour)

    for q in range(lines):
        line = axes[q]
        query_id = f"\nid {int(query_ids[q])}" if with_ids else ""
        draw(line[0], query_paths[q], "black", f"query\n{short_name(query_names[q])}{query_id}")
        for rank, (g, sim) in enumerate(zip(indices[q], similarities[q]), start=1):
            caption = f"#{rank} {float(sim):.{SIMILARITY_DECIMALS}f}\n{short_name(gallery_names[g])}"
            if with_ids:
                same = bool(query_ids[q] == gallery_ids[g])
                draw(line[rank], gallery_paths[g], MATCH_COLOURS[same], f"{caption}\nid {int(gallery_ids[g])}",
                     MATCH_COLOURS[same])
            else:
                draw(line[rank], gallery_paths[g], UNKNOWN_FRAME, caption)
    if lines == 0:
        for axis in axes.flat:
            axis.set_axis_off()
    height = figure.get_figheight()
    legend = "green = same identity, red = different" if with_ids else "identities unknown"
    figure.suptitle(f"{title}: first {lines} of {len(indices)} queries\n({legend})", fontsize=11,
                    y=1 - 0.1 / height, va="top")
    figure.subplots_adjust(left=0.03, right=0.97, bottom=0.6 / height, top=1 - 0.75 / height)
    return write_atomically(path, lambda handle: figure.savefig(handle, format="png", dpi=DPI))


def display_names(records: Sequence[Record], root: str | os.PathLike) -> list[str]:
    """The records' paths relative to `root` (POSIX), as the CSV and captions show them."""
    return [relative_path(record.path, root) for record in records]
