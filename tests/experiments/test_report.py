"""Report pictures and Markdown tables of the joint experiment runner."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from experiments.report import (aggregate_runs, epoch_series, epoch_table_markdown, first_setting, mean_std,
                                order_summary, plot_epoch_curves, plot_retrieval, plot_tsne, plot_tsne_panels,
                                query_indices, results_markdown, retrieval_rows, select_identities)


def record(epoch, ari, mixed, evaluation=None, stage=None):
    line = {"epoch": epoch, "loss_cluster": 1.0, **({"stage": stage} if stage else {}),
            "cluster": {"ari": ari, "nmi": 0.5, "pairwise_f": 0.4, "mixed_share": mixed, "num_clusters": 10 + epoch,
                        "num_outliers": 3}}
    if evaluation is not None:
        line["eval"] = {"all-single": {"R1": evaluation, "R5": 0.6, "R10": 0.7, "R20": 0.8, "mAP": evaluation / 2,
                                       "mINP": 0.1},
                        "indoor-single": {"R1": 0.9, "R5": 0.9, "R10": 0.9, "R20": 0.9, "mAP": 0.9, "mINP": 0.9}}
    return line


@pytest.fixture
def histories():
    return {"joint": [record(1, 0.2, 0.3, stage="intra"), record(2, 0.4, None, 0.5, stage="intra"),
                      record(3, None, 0.6, stage="cross"), record(4, 0.7, 0.8, 0.6, stage="cross")],
            "pgm": [record(1, 0.1, 0.0), record(2, 0.2, 0.1, 0.3)],
            "none": [record(1, 0.15, 0.0)]}  # never evaluated


def check_png(path, min_size=(300, 200)):
    assert path.exists() and path.stat().st_size > 5_000
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width >= min_size[0] and image.height >= min_size[1]
        return image.size


def test_epoch_series_skips_none_and_epochs_without_eval(histories):
    assert first_setting(histories) == "all-single"
    assert epoch_series(histories["joint"], lambda r: r["cluster"]["ari"]) == ([1, 2, 4], [0.2, 0.4, 0.7])
    r1 = epoch_series(histories["joint"], lambda r: (r.get("eval") or {}).get("all-single", {}).get("R1"))
    assert r1 == ([2, 4], [0.5, 0.6])
    assert first_setting({"none": histories["none"]}) is None


def test_epoch_curves_png(histories, tmp_path):
    width, height = check_png(plot_epoch_curves(histories, tmp_path / "deep" / "curves.png"))
    assert 900 <= width <= 1400 and 650 <= height <= 1000
    assert list(tmp_path.joinpath("deep").iterdir()) == [tmp_path / "deep" / "curves.png"]  # no temp file left
    # nothing evaluated at all, and an empty strategy, still draw
    check_png(plot_epoch_curves({"none": histories["none"], "empty": []}, tmp_path / "bare.png"))


def test_tsne_of_ten_points_and_identity_selection(tmp_path):
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(10, 16, generator=generator)
    pids = [3, 3, 1, 1, 2, 2, 5, 5, 4, 4]
    modalities = ["vis", "ir"] * 5
    assert select_identities(pids, 3).tolist() == [True, True, True, True, True, True, False, False, False, False]
    width, height = check_png(plot_tsne(features, pids, modalities, tmp_path / "tsne.png", title="tiny", max_ids=3))
    assert 450 <= width <= 800 and 450 <= height <= 800
    # numpy input, two points (below the t-SNE minimum)
    check_png(plot_tsne(np.ones((2, 4)), [0, 1], ["vis", "ir"], tmp_path / "two.png"), min_size=(300, 300))


def test_tsne_panels_side_by_side(tmp_path):
    rng = np.random.default_rng(0)
    pids = np.repeat(np.arange(15), 4)
    modalities = np.tile(["vis", "vis", "ir", "ir"], 15)
    centres = rng.normal(size=(15, 8)) * 4
    joint = centres[pids] + rng.normal(size=(60, 8))
    baseline = rng.normal(size=(60, 8)) + 5 * (modalities == "ir")[:, None]
    panels = {"joint": (joint, pids, modalities), "baseline": (torch.from_numpy(baseline), pids, modalities)}
    path = plot_tsne_panels(panels, tmp_path / "panels.png", max_ids=12)
    width, height = check_png(path)
    assert width > 1.6 * height  # two panels side by side


def test_retrieval_rows_are_the_top_k_smallest_distances_in_order():
    rng = np.random.default_rng(1)
    distmat = rng.random((20, 30))
    rows = retrieval_rows(distmat, num_queries=4, top_k=5)
    assert len(rows) == 4 and rows == retrieval_rows(torch.from_numpy(distmat), num_queries=4, top_k=5)
    queries = [q for q, _ in rows]
    assert queries == sorted(set(queries)) and max(np.diff(queries)) <= 6  # spread evenly over the 20 queries
    for query, ranked in rows:
        assert ranked == sorted(range(30), key=lambda g: distmat[query, g])[:5]
    assert query_indices(3, 10) == [0, 1, 2]
    assert retrieval_rows(np.zeros((2, 3)), num_queries=1, top_k=5)[0][1] == [0, 1, 2]  # ties by index, k > G


def test_retrieval_figure(tmp_path):
    rng = np.random.default_rng(0)

    def image(name, pid, size):
        path = tmp_path / f"{name}.png"
        Image.new("RGB", size, (40 * pid % 255, 90, 200 - 30 * pid)).save(path)
        return str(path)

    query_pids, gallery_pids = [0, 1, 2, 3, 4, 5], [0, 0, 1, 1, 2, 2, 3, 3, 4, 5]
    queries = [image(f"q{i}", pid, (64, 128)) for i, pid in enumerate(query_pids)]
    gallery = [image(f"g{i}", pid, (96, 160) if i % 2 else (64, 128)) for i, pid in enumerate(gallery_pids)]
    distmat = rng.random((6, 10)) + 0.5 * (np.array(query_pids)[:, None] != np.array(gallery_pids)[None])
    path = plot_retrieval(queries, query_pids, gallery, np.asarray(gallery_pids), distmat,
                          tmp_path / "out" / "retrieval.png", num_queries=3, top_k=4, title="IR query -> visible")
    width, height = check_png(path)
    assert 450 <= width <= 900 and 700 <= height <= 1100  # 3 rows of 1 + 4 images
    matches = [gallery_pids[g] == query_pids[q] for q, ranked in retrieval_rows(distmat, 3, 4) for g in ranked]
    assert any(matches) and not all(matches)
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3).astype(int)
    for colour in ((0x1a, 0x96, 0x41), (0xd7, 0x19, 0x1c)):  # green and red frames are drawn
        assert (np.abs(pixels - colour).sum(axis=1) < 12).sum() > 500


def test_mean_std_is_the_sample_std_over_present_values():
    assert mean_std([0.1, 0.3, None, float("nan"), 0.8]) == pytest.approx((0.4, np.std([0.1, 0.3, 0.8], ddof=1)))
    assert mean_std([0.5]) == (0.5, 0.0)  # one seed: no spread
    assert mean_std([None, float("nan")]) == (None, None)


def test_aggregate_runs_groups_by_strategy_and_setting():
    rows = [{"strategy": s, "seed": k, "setting": setting, "R1": r1, "ari": None if s == "b" else 0.5}
            for k, r1 in enumerate([0.2, 0.4, 0.9]) for s in ("a", "b") for setting in ("x", "y")]
    summary = aggregate_runs(rows, keys=("R1", "ari"))
    assert [(row["strategy"], row["setting"], row["n"]) for row in summary] == \
        [("a", "x", 3), ("a", "y", 3), ("b", "x", 3), ("b", "y", 3)]
    assert summary[0]["mean"] == pytest.approx({"R1": 0.5, "ari": 0.5})
    assert summary[0]["std"] == pytest.approx({"R1": np.std([0.2, 0.4, 0.9], ddof=1), "ari": 0.0})
    assert summary[2]["mean"]["ari"] is None and summary[2]["std"]["ari"] is None


def test_order_summary_puts_chance_then_upper_bounds_first_in_each_setting():
    rows = [{"strategy": "joint", "setting": "x"}, {"strategy": "oracle", "setting": "x", "kind": "upper_bound"},
            {"strategy": "none", "setting": "y", "kind": "strategy"}, {"strategy": "chance", "setting": "y",
                                                                       "kind": "chance"},
            {"strategy": "chance", "setting": "x", "kind": "chance"}]
    assert [(row["setting"], row["strategy"]) for row in order_summary(rows)] == \
        [("x", "chance"), ("x", "oracle"), ("x", "joint"), ("y", "chance"), ("y", "none")]


def test_results_markdown_formats_mean_std_and_missing_values():
    rows = [{"strategy": "chance", "label": "random", "kind": "chance", "setting": "all-single", "n": 10,
             "mean": {"R1": 0.25, "R10": 0.8, "R20": 1.0, "mAP": 0.3, "mINP": 0.2, "ari": None, "mixed_share": None},
             "std": {"R1": 0.0412, "R10": 0.01, "R20": 0.0, "mAP": 0.02, "mINP": 0.02, "ari": None,
                     "mixed_share": None}},
            {"strategy": "oracle", "label": "upper bound", "kind": "upper_bound", "setting": "all-single", "n": 2,
             "mean": {"R1": 0.9, "R10": 1.0, "R20": 1.0, "mAP": 0.8, "mINP": 0.7, "ari": 1.0, "mixed_share": 1.0},
             "std": {"R1": 0.0, "R10": 0.0, "R20": 0.0, "mAP": 0.01, "mINP": 0.0, "ari": 0.0, "mixed_share": 0.0}},
            {"strategy": "joint", "label": "ours", "kind": "strategy", "setting": "all-single", "n": 2,
             "mean": {"R1": 0.62345, "R10": 0.8, "R20": 0.9, "mAP": 0.456789, "mINP": float("nan"), "ari": 0.61234,
                      "mixed_share": 0.4567, "best_R1": 0.7, "best_mAP": 0.5},
             "std": {"R1": 0.01751, "R10": 0.0, "R20": 0.0, "mAP": 0.001, "mINP": None, "ari": 0.0104,
                     "mixed_share": 0.05, "best_R1": 0.02, "best_mAP": 0.01}}]
    assert results_markdown(rows, cluster_metrics=("ari", "mixed_share")) == (
        "| strategy | what it is | setting | R1 (%) | R10 (%) | R20 (%) | mAP (%) | mINP (%) | ARI "
        "| mixed share (%) | R1 at best epoch (%)† | mAP at best epoch (%)† |\n"
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        "| *chance* | random | all-single | 25.0 ± 4.1 | 80.0 ± 1.0 | 100.0 ± 0.0 | 30.0 ± 2.0 | 20.0 ± 2.0 "
        "| n/a | n/a | n/a | n/a |\n"
        "| *oracle* | upper bound | all-single | 90.0 ± 0.0 | 100.0 ± 0.0 | 100.0 ± 0.0 | 80.0 ± 1.0 | 70.0 ± 0.0 "
        "| 1.000 ± 0.000 | 100.0 ± 0.0 | n/a | n/a |\n"
        "| joint | ours | all-single | 62.3 ± 1.8 | 80.0 ± 0.0 | 90.0 ± 0.0 | 45.7 ± 0.1 | n/a | 0.612 ± 0.010 "
        "| 45.7 ± 5.0 | 70.0 ± 2.0 | 50.0 ± 1.0 |\n")
    assert results_markdown(rows[2:], metrics=("mAP",), cluster_metrics=("nmi",), best_metrics=()).splitlines()[2] == \
        "| joint | ours | all-single | 45.7 ± 0.1 | n/a |"
    shares = [{**rows[2], "mean": {**rows[2]["mean"], "labelled_vis": 0.4567, "cross_modal_f": 0.123},
               "std": {**rows[2]["std"], "labelled_vis": 0.05, "cross_modal_f": 0.0312}}]
    table = results_markdown(shares, metrics=(), cluster_metrics=("labelled_vis", "labelled_ir", "cross_modal_f"),
                             best_metrics=()).splitlines()
    assert table[0] == "| strategy | what it is | setting | labelled vis (%) | labelled ir (%) | cross-modal pair F |"
    assert table[2] == "| joint | ours | all-single | 46 ± 5 | n/a | 0.12 ± 0.03 |"


def test_epoch_table_markdown(histories):
    text = epoch_table_markdown(histories)
    joint, hungarian, none = text.split("\n\n**")
    assert joint.startswith("**joint** (evaluation: all-single)\n\n| epoch | stage | ARI | NMI | clusters | outliers | "
                            "labelled vis (%) | labelled ir (%) | mixed share (%) | cross-modal pair precision | "
                            "cross-modal pair F | mAP (%) | R1 (%) | method notes |")
    lines = joint.splitlines()
    assert lines[4] == "| 1 | intra | 0.200 | 0.500 | 11 | 3 | n/a | n/a | 30.0 | n/a | n/a |  |  |  |"  # not evaluated
    assert lines[5] == "| 2 | intra | 0.400 | 0.500 | 12 | 3 | n/a | n/a | n/a | n/a | n/a | 25.00 | 50.00 |  |"
    assert lines[6] == "| 3 | cross | n/a | 0.500 | 13 | 3 | n/a | n/a | 60.0 | n/a | n/a |  |  |  |"
    assert hungarian.startswith("pgm**")
    assert none.strip().splitlines()[-1] == "| 1 |  | 0.150 | 0.500 | 11 | 3 | n/a | n/a | 0.0 | n/a | n/a |  |  |  |"
    noted = epoch_table_markdown({"adca": [{"epoch": 4, "stage": "cross", "method": {"cma_pairs": 12}}]})
    assert noted.splitlines()[-1].endswith("| cma_pairs 12 |")


def test_best_epoch_is_the_highest_test_map_of_the_first_setting(histories):
    """The papers' convention, reported beside the last epoch: epoch 4 (mAP 0.30) over epoch 2 (0.25)."""
    from experiments.runner import best_epoch, seed_row

    best = best_epoch(histories["joint"])
    assert (best["epoch"], best["stage"]) == (4, "cross")
    falling = histories["joint"] + [record(5, 0.7, 0.8, 0.4, stage="cross")]  # mAP 0.20 after 0.30: not the last
    assert best_epoch(falling)["epoch"] == 4
    row = seed_row("joint", 0, "indoor-single", histories["joint"][-1]["eval"]["indoor-single"], histories["joint"], best)
    assert (row["best_R1"], row["best_mAP"], row["best_epoch"]) == (0.9, 0.9, 4)
    assert best_epoch(histories["none"]) == {}
    assert seed_row("none", 0, "all-single", {}, histories["none"], {})["best_R1"] is None
