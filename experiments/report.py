"""Report pictures and tables of the joint experiment: epoch curves, t-SNE maps, retrieval rows, Markdown results.

Every function is pure (inputs in, a PNG or a Markdown string out); files are written atomically
(`write_atomically`).
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from reid.data import read_image  # noqa: E402
from reid.files import write_atomically  # noqa: E402

DPI = 110
MODALITY_MARKERS = {"vis": ("o", "visible"), "ir": ("^", "infrared")}
THUMBNAIL_SIZE = (64, 128)  # width, height: the usual person crop
MATCH_COLOURS = {True: "#1a9641", False: "#d7191c"}

TsnePanel = tuple[object, Sequence, Sequence[str]]  # features [N, D], pids [N], modalities [N]


# ------------------------------------------------------------------------------------------------ shared helpers

def save_figure(figure: plt.Figure, path: str | os.PathLike) -> Path:
    """Write `figure` to `path` as PNG atomically (`write_atomically`); close it."""
    try:
        return write_atomically(path, lambda handle: figure.savefig(handle, format="png", dpi=DPI))
    finally:
        plt.close(figure)


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _as_numpy(values) -> np.ndarray:
    """A torch tensor or array-like as a numpy array (on the CPU, detached)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def strategy_colours(names: Sequence[str]) -> dict[str, tuple]:
    """One tab10 colour per strategy, in the given order."""
    cmap = plt.get_cmap("tab10")
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


# ------------------------------------------------------------------------------------------------ epoch curves

def first_setting(histories: Mapping[str, list[dict]]) -> str | None:
    """The first evaluation setting named in any record (None when nothing was evaluated)."""
    for records in histories.values():
        for record in records:
            for name in (record.get("eval") or {}):
                return name
    return None


def _eval_value(record: dict, setting: str | None, metric: str):
    return ((record.get("eval") or {}).get(setting) or {}).get(metric)


def _cluster_value(record: dict, key: str):
    return (record.get("cluster") or {}).get(key)


def epoch_series(records: list[dict], value: Callable[[dict], object]) -> tuple[list[int], list[float]]:
    """(epochs, values) of `value(record)` over the records, skipping missing (None/NaN) values."""
    points = [(record.get("epoch"), value(record)) for record in records]
    points = [(int(epoch), float(v)) for epoch, v in points if epoch is not None and not _is_missing(v)]
    return [p[0] for p in points], [p[1] for p in points]


def plot_epoch_curves(histories: Mapping[str, list[dict]], path: str | os.PathLike, *,
                      setting: str | None = None) -> Path:
    """A 2x2 panel per epoch: mAP and R1 (%) of one evaluation setting (the first found unless given),
    the cluster ARI and the share of clusters holding both modalities; one colour per strategy."""
    setting = setting or first_setting(histories)
    label = setting or "no evaluation"
    panels = [
        (f"mAP ({label})", "mAP (%)", lambda r: _percent(_eval_value(r, setting, "mAP")), "o"),
        (f"Rank-1 ({label})", "R1 (%)", lambda r: _percent(_eval_value(r, setting, "R1")), "o"),
        ("Pseudo-label ARI", "adjusted Rand index", lambda r: _cluster_value(r, "ari"), None),
        ("Clusters holding both modalities", "mixed vis+ir clusters (%)",
         lambda r: _percent(_cluster_value(r, "mixed_share")), None),
    ]
    colours = strategy_colours(list(histories))
    all_epochs = [r["epoch"] for records in histories.values() for r in records if r.get("epoch") is not None]
    figure, axes = plt.subplots(2, 2, figsize=(10, 7.2), dpi=DPI)
    for axis, (title, ylabel, value, marker) in zip(axes.flat, panels):
        drawn = 0
        for name, records in histories.items():
            xs, ys = epoch_series(records, value)
            if xs:
                axis.plot(xs, ys, color=colours[name], marker=marker or "o", markersize=6 if marker else 3,
                          linewidth=1.8)
                drawn += 1
        if not drawn:
            axis.text(0.5, 0.5, "no data", transform=axis.transAxes, ha="center", va="center", color="grey")
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.set_ylabel(ylabel)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        if all_epochs:  # the same epoch range in every panel, also where evaluation is sparse
            axis.set_xlim(min(all_epochs) - 0.5, max(all_epochs) + 0.5)
        axis.grid(alpha=0.3)
    handles = [Line2D([], [], color=colours[name], linewidth=2.5, label=name) for name in histories]
    figure.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4) or 1, frameon=False,
                  fontsize=11, title="strategy")
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    return save_figure(figure, path)


def _percent(value):
    return None if _is_missing(value) else 100.0 * float(value)


# ------------------------------------------------------------------------------------------------ t-SNE

def select_identities(pids: Sequence, max_ids: int) -> np.ndarray:
    """A boolean mask of the images of the first `max_ids` sorted identities."""
    pids = _as_numpy(pids)
    keep = np.unique(pids)[:max_ids]
    return np.isin(pids, keep)


def tsne_embedding(features, seed: int = 0, threads: int | None = None) -> np.ndarray:
    """[N, 2] t-SNE of [N, D] features (init="pca", perplexity min(30, (N-1)/3)); PCA below 4 points.

    threads: OpenMP threads of scikit-learn's t-SNE (None: scikit-learn's default). The map is the same
    for any count; on busy cores 1 is much faster, since threads waiting for each other stall (a 48-point map
    took 0.3 s on 1 thread and 8 s on 2, measured on a loaded 2-core CPU).
    """
    x = _as_numpy(features).astype(np.float64).reshape(len(features), -1)
    n = len(x)
    if n < 4:  # t-SNE needs perplexity < N; two principal axes say as much for 1-3 points
        centred = x - x.mean(axis=0, keepdims=True)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        xy = centred @ vt[:2].T if len(vt) else np.zeros((n, 0))
        return np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    from sklearn.manifold import TSNE  # noqa: PLC0415 (slow import, only when drawing)
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    if x.shape[1] < 2:
        x = np.pad(x, ((0, 0), (0, 2 - x.shape[1])))
    tsne = TSNE(n_components=2, init="pca", perplexity=min(30.0, (n - 1) / 3), random_state=seed)
    with threadpool_limits(threads, user_api="openmp"):  # None: no limit
        return tsne.fit_transform(x)


def draw_tsne(axis: plt.Axes, xy: np.ndarray, pids: np.ndarray, modalities: np.ndarray,
              colours: Mapping, title: str = "") -> None:
    """Scatter one embedding: colour by identity, marker by modality."""
    for modality in np.unique(modalities):
        marker = MODALITY_MARKERS.get(str(modality), ("s", str(modality)))[0]
        rows = modalities == modality
        axis.scatter(xy[rows, 0], xy[rows, 1], c=[colours[p] for p in pids[rows]], marker=marker, s=42,
                     edgecolors="black", linewidths=0.4, alpha=0.9)
    axis.set_title(title)
    axis.set_xlabel("t-SNE 1")
    axis.set_ylabel("t-SNE 2")
    axis.set_xticks([])
    axis.set_yticks([])


def _modality_legend(modalities: set[str]) -> list[Line2D]:
    known = [m for m in MODALITY_MARKERS if m in modalities] + sorted(modalities - set(MODALITY_MARKERS))
    return [Line2D([], [], linestyle="", marker=MODALITY_MARKERS.get(m, ("s", m))[0], markersize=9,
                   markerfacecolor="lightgrey", markeredgecolor="black", label=MODALITY_MARKERS.get(m, ("s", m))[1])
            for m in known]


def plot_tsne_panels(panels: Mapping[str, TsnePanel], path: str | os.PathLike, *, max_ids: int = 12,
                     seed: int = 0, title: str = "", threads: int | None = None) -> Path:
    """t-SNE maps side by side, one per entry (e.g. joint vs baseline), of the images of the first `max_ids`
    sorted identities; the same identity has the same tab20 colour in every panel. threads: see tsne_embedding."""
    prepared = []
    for name, (features, pids, modalities) in panels.items():
        pids, modalities = _as_numpy(pids), np.asarray([str(m) for m in modalities])
        keep = select_identities(pids, max_ids)
        xy = tsne_embedding(_as_numpy(features)[keep], seed=seed, threads=threads)
        prepared.append((name, xy, pids[keep], modalities[keep]))
    identities = np.unique(np.concatenate([p[2] for p in prepared])) if prepared else []
    cmap = plt.get_cmap("tab20")
    colours = {pid: cmap(i % cmap.N) for i, pid in enumerate(identities)}
    figure, axes = plt.subplots(1, max(len(prepared), 1), figsize=(5.2 * max(len(prepared), 1), 5.4), dpi=DPI,
                                squeeze=False)
    for axis, (name, xy, pids, modalities) in zip(axes[0], prepared):
        draw_tsne(axis, xy, pids, modalities, colours, title=name)
    shown = {m for p in prepared for m in p[3]}
    noun = "identity" if len(identities) == 1 else "identities"
    figure.legend(handles=_modality_legend(shown), loc="lower center", ncol=max(len(shown), 1), frameon=False,
                  fontsize=11, title=f"{len(identities)} {noun}, one colour each; marker = modality")
    if title:
        figure.suptitle(title, fontsize=13)
    figure.tight_layout(rect=(0, 0.11, 1, 1))
    return save_figure(figure, path)


def plot_tsne(features, pids: Sequence, modalities: Sequence[str], path: str | os.PathLike, *, title: str = "",
              max_ids: int = 12, seed: int = 0, threads: int | None = None) -> Path:
    """One t-SNE map of the images of the first `max_ids` sorted identities (see plot_tsne_panels)."""
    return plot_tsne_panels({title: (features, pids, modalities)}, path, max_ids=max_ids, seed=seed,
                            threads=threads)


# ------------------------------------------------------------------------------------------------ retrieval

def query_indices(num_total: int, num_queries: int, seed: int = 0) -> list[int]:
    """`num_queries` query indices spread evenly over [0, num_total), the start offset drawn from `seed`."""
    count = min(num_queries, num_total)
    if count <= 0:
        return []
    stride = num_total / count
    offset = np.random.default_rng(seed).uniform(0, stride)
    return sorted({min(int(offset + i * stride), num_total - 1) for i in range(count)})


def retrieval_rows(distmat, num_queries: int = 4, top_k: int = 5, seed: int = 0) -> list[tuple[int, list[int]]]:
    """[(query index, its top_k gallery indices by ascending distance, ties by index)] for evenly chosen queries."""
    distmat = _as_numpy(distmat)
    return [(q, np.argsort(distmat[q], kind="stable")[:top_k].tolist())
            for q in query_indices(distmat.shape[0], num_queries, seed)]


def _thumbnail(path: str | os.PathLike) -> np.ndarray:
    return np.asarray(read_image(path, "RGB").resize(THUMBNAIL_SIZE, resample=3))  # 3 = bicubic


def _draw_image(axis: plt.Axes, path, frame: str, caption: str, caption_colour: str = "black") -> None:
    axis.imshow(_thumbnail(path))
    axis.set_xticks([])
    axis.set_yticks([])
    for spine in axis.spines.values():
        spine.set_edgecolor(frame)
        spine.set_linewidth(4)
    axis.set_xlabel(caption, fontsize=9, color=caption_colour)


def plot_retrieval(query_paths: Sequence[str], query_pids: Sequence, gallery_paths: Sequence[str],
                   gallery_pids: Sequence, distmat, path: str | os.PathLike, *, num_queries: int = 4, top_k: int = 5,
                   seed: int = 0, title: str = "") -> Path:
    """One row per chosen query: the query image, then its top_k gallery images by ascending distance,
    framed green when the gallery identity is the query's and red otherwise."""
    query_pids, gallery_pids = _as_numpy(query_pids), _as_numpy(gallery_pids)
    rows = retrieval_rows(distmat, num_queries, top_k, seed)
    lines, columns = max(len(rows), 1), 1 + max((len(ranked) for _, ranked in rows), default=0)
    figure, axes = plt.subplots(lines, columns, figsize=(1.2 * columns + 0.3, 2.3 * lines + 0.7), dpi=DPI,
                                squeeze=False, gridspec_kw={"wspace": 0.12, "hspace": 0.35})
    for axis in axes.flat:
        axis.set_axis_off()
    for line, (query, ranked) in zip(axes, rows):
        line[0].set_axis_on()
        _draw_image(line[0], query_paths[query], "black", f"query\nid {query_pids[query]}")
        for rank, (axis, index) in enumerate(zip(line[1:], ranked), start=1):
            same = bool(gallery_pids[index] == query_pids[query])
            axis.set_axis_on()
            _draw_image(axis, gallery_paths[index], MATCH_COLOURS[same],
                        f"#{rank} id {gallery_pids[index]}\n{'ok' if same else 'x'}", MATCH_COLOURS[same])
    heading = title or "Retrieval"
    height = figure.get_figheight()
    figure.suptitle(f"{heading}\n(green = same identity, red = different)", fontsize=11, y=1 - 0.1 / height,
                    va="top")
    figure.subplots_adjust(left=0.03, right=0.97, bottom=0.45 / height, top=1 - 0.75 / height)
    return save_figure(figure, path)


# ------------------------------------------------------------------------------------------------ Markdown tables

def _fmt_percent(decimals: int) -> Callable[[float], str]:
    return lambda value: f"{100.0 * float(value):.{decimals}f}"


def _fmt_fixed(decimals: int) -> Callable[[float], str]:
    return lambda value: f"{float(value):.{decimals}f}"


def _fmt_int(value) -> str:
    return str(int(value))


CLUSTER_COLUMNS: dict[str, tuple[str, Callable]] = {
    "ari": ("ARI", _fmt_fixed(3)),
    "nmi": ("NMI", _fmt_fixed(3)),
    "pairwise_f": ("pairwise F", _fmt_fixed(3)),
    "purity": ("purity", _fmt_fixed(3)),
    "mixed_share": ("mixed share (%)", _fmt_percent(1)),
    "labelled_vis": ("labelled vis (%)", _fmt_percent(0)),
    "labelled_ir": ("labelled ir (%)", _fmt_percent(0)),
    "cross_modal_precision": ("cross-modal pair precision", _fmt_fixed(2)),
    "cross_modal_f": ("cross-modal pair F", _fmt_fixed(2)),
    "num_clusters": ("clusters", _fmt_int),
    "num_outliers": ("outliers", _fmt_int),
}


def _cell(value, fmt: Callable, missing: str = "n/a") -> str:
    return missing if _is_missing(value) else fmt(value)


def _table(header: list[str], align: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n"


# the last epoch's cluster report in a results row: how good, how mixed, how much of each modality got a label, how
# well the labels join the modalities (`reid.evaluation.cluster_quality`)
CLUSTER_SUMMARY_KEYS = ("ari", "mixed_share", "labelled_vis", "labelled_ir", "cross_modal_precision", "cross_modal_f")
SUMMARY_KEYS = ("R1", "R5", "R10", "R20", "mAP", "mINP", *CLUSTER_SUMMARY_KEYS, "best_R1", "best_mAP")
# the papers' convention, marked †: chosen on the test split
BEST_COLUMNS = {"best_R1": "R1 at best epoch (%)†", "best_mAP": "mAP at best epoch (%)†"}
KINDS = ("chance", "start", "upper_bound", "strategy")  # the order of a setting's rows in the results table
REFERENCE_KINDS = ("chance", "start", "upper_bound")  # rows that are references, not methods (in italics)


def mean_std(values: Sequence) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value) of the values that are not missing
    (None/NaN); (None, None) when all are."""
    present = np.asarray([float(v) for v in values if not _is_missing(v)])
    if not len(present):
        return None, None
    return float(present.mean()), float(present.std(ddof=1)) if len(present) > 1 else 0.0


def aggregate_runs(rows: Sequence[Mapping], keys: Sequence[str] = SUMMARY_KEYS) -> list[dict]:
    """One row per (strategy, setting), in order of first appearance, over the rows of that pair (one per seed,
    or per chance draw): {"strategy", "setting", "n": rows, "mean": {key: value}, "std": {key: value}}."""
    groups: dict[tuple, list[Mapping]] = {}
    for row in rows:
        groups.setdefault((row.get("strategy"), row.get("setting")), []).append(row)
    summary = []
    for (strategy, setting), members in groups.items():
        stats = {key: mean_std([member.get(key) for member in members]) for key in keys}
        summary.append({"strategy": strategy, "setting": setting, "n": len(members),
                        "mean": {key: mean for key, (mean, _) in stats.items()},
                        "std": {key: std for key, (_, std) in stats.items()}})
    return summary


def order_summary(rows: Sequence[Mapping]) -> list[Mapping]:
    """Rows grouped by setting (in order of first appearance), each group as chance, upper bounds, strategies
    (by the row's "kind", see KINDS; a row without one is a strategy), otherwise in the given order."""
    settings = list(dict.fromkeys(row.get("setting") for row in rows))
    return sorted(rows, key=lambda row: (settings.index(row.get("setting")), KINDS.index(row.get("kind", "strategy"))))


def _fmt_mean_std(fmt: Callable[[float], str]) -> Callable[[tuple], str]:
    return lambda pair: f"{fmt(pair[0])} ± {fmt(pair[1])}"


def results_markdown(rows: Sequence[Mapping], *, metrics: Sequence[str] = ("R1", "R10", "R20", "mAP", "mINP"),
                     cluster_metrics: Sequence[str] = CLUSTER_SUMMARY_KEYS,
                     best_metrics: Sequence[str] = ("best_R1", "best_mAP")) -> str:
    """A Markdown table of `aggregate_runs` rows, in the given order, one line each: the strategy (in italics
    for the reference rows: "kind" in REFERENCE_KINDS), its "label", the setting, then `mean ± std` of the
    last epoch's retrieval metrics in percent with 1 decimal, its cluster report as `CLUSTER_COLUMNS` formats it,
    then the best epoch's (`BEST_COLUMNS`, marked †: chosen on the test split); "n/a" when missing."""
    cluster = [CLUSTER_COLUMNS.get(key, (key, _fmt_fixed(3))) for key in cluster_metrics]
    formats = ([_fmt_mean_std(_fmt_percent(1))] * len(metrics) + [_fmt_mean_std(fmt) for _, fmt in cluster]
               + [_fmt_mean_std(_fmt_percent(1))] * len(best_metrics))
    keys = list(metrics) + list(cluster_metrics) + list(best_metrics)
    header = (["strategy", "what it is", "setting"] + [f"{m} (%)" for m in metrics] + [name for name, _ in cluster]
              + [BEST_COLUMNS.get(key, key) for key in best_metrics])
    align = ["---"] * 3 + ["---:"] * len(keys)
    body = []
    for row in rows:
        strategy = str(row.get("strategy", ""))
        mean, std = row.get("mean") or {}, row.get("std") or {}
        body.append([f"*{strategy}*" if row.get("kind") in REFERENCE_KINDS else strategy,
                     str(row.get("label", "")), str(row.get("setting") or "n/a")]
                    + [_cell(None if _is_missing(mean.get(key)) else (mean[key], std.get(key) or 0.0), fmt)
                       for key, fmt in zip(keys, formats)])
    return _table(header, align, body)


def epoch_table_markdown(histories: Mapping[str, list[dict]], *, setting: str | None = None) -> str:
    """One Markdown table per strategy: epoch | stage | ARI | NMI | clusters | outliers | labelled vis / ir | mixed
    share | cross-modal pair precision / F | mAP | R1 | the method's notes (ADCA's aggregated pairs, PCLHD's bimodal
    clusters, ...) (mAP and R1 of one setting, the first found unless given; blank on epochs without evaluation)."""
    setting = setting or first_setting(histories)
    keys = ("ari", "nmi", "num_clusters", "num_outliers", "labelled_vis", "labelled_ir", "mixed_share",
            "cross_modal_precision", "cross_modal_f")
    header = ["epoch", "stage", *(CLUSTER_COLUMNS[key][0] for key in keys), "mAP (%)", "R1 (%)", "method notes"]
    sections = []
    for name, records in histories.items():
        body = []
        for record in records:
            evaluated = bool(record.get("eval"))
            notes = ", ".join(f"{key} {value}" for key, value in (record.get("method") or {}).items())
            body.append([str(record.get("epoch", "")), str(record.get("stage", ""))]
                        + [_cell(_cluster_value(record, key), CLUSTER_COLUMNS[key][1]) for key in keys]
                        + [_cell(_eval_value(record, setting, m), _fmt_percent(2), "n/a" if evaluated else "")
                           for m in ("mAP", "R1")] + [notes])
        caption = f"**{name}**" + (f" (evaluation: {setting})" if setting else "")
        sections.append(caption + "\n\n" + _table(header, ["---:"] * len(header), body))
    return "\n".join(sections)
