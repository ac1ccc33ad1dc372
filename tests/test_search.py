"""`vireid extract` / `vireid search` and `reid.search`: folder records, rankings equal to `vireid evaluate`'s
ordering (ties included), the CSV / HTML / PNG outputs, the commands end to end with the tiny model."""
from __future__ import annotations

import csv
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reid.cli import build_parser
from reid.cli import main as vireid_main
from reid.cluster.neighbors import l2_normalize
from reid.config import ModelConfig
from reid.data import make_synthetic_sysu
from reid.evaluation import evaluate_ranking
from reid.features import FeatureSet, extract_features
from reid.models import build_model, load_model_checkpoint, save_model_checkpoint
from reid.search import (MATCH_COLOURS, folder_ids, folder_records, plot_rank_rows, rank_gallery, rank_plot_size,
                         search_gallery, write_rank_csv, write_rank_html)

TINY = ModelConfig(arch="tiny", height=32, width=16)
GREEN, RED = MATCH_COLOURS[True], MATCH_COLOURS[False]


# ------------------------------------------------------------------------------------------------ data

def evaluate_distances(query: torch.Tensor, gallery: torch.Tensor) -> np.ndarray:
    """The distance matrix `vireid evaluate` ranks (reid.evaluation.protocols): -(q @ g.T) of l2_normalize'd rows."""
    return -(l2_normalize(query) @ l2_normalize(gallery).T).numpy()


def exact_unit_vectors(count: int, rng: np.random.Generator, dim: int = 8) -> torch.Tensor:
    """[count, dim] unit rows with four entries +-1/2: every dot product is a multiple of 1/4, computed exactly in
    float32 in any summation order, so there are many exact ties and no rounding differences between blocks."""
    rows = np.zeros((count, dim), np.float32)
    for row in rows:
        row[rng.choice(dim, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
    return torch.from_numpy(rows)


@pytest.fixture(scope="module")
def tied():
    """Queries and a gallery with exact ties (and duplicated gallery rows) on which np.argsort's order is not the
    stable order, so a ranking by another sort fails."""
    rng = np.random.default_rng(3)
    query, gallery = exact_unit_vectors(12, rng), exact_unit_vectors(40, rng)
    gallery[30:] = gallery[:10]  # duplicates: equal distances for every query
    distmat = evaluate_distances(query, gallery)
    for k in (3, 7):  # the test has power: a stable sort changes some top-k
        assert (np.argsort(distmat, axis=1)[:, :k] != np.argsort(distmat, axis=1, kind="stable")[:, :k]).any()
    return query, gallery, distmat


def write_image(path: Path, value: int, size=(16, 32)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, 255 - value, value // 2)).save(path)
    return path


# ------------------------------------------------------------------------------------------------ folders

@pytest.mark.parametrize(("relative", "ids"), [
    ("0001/a.jpg", (1, -1)), ("cam3/0007/0001.jpg", (7, 3)), ("a.jpg", (-1, -1)), ("person7/a.jpg", (-1, -1)),
    ("0001/cam3/a.jpg", (-1, 3)), ("-1/a.jpg", (-1, -1)), ("CAM2/12/x.png", (12, 2)), ("cam1x/3/a.jpg", (3, -1)),
    ("cam1/sub/cam5/42/b.bmp", (42, 5)), ("1.5/a.jpg", (-1, -1)), ("Visible/0/a.bmp", (0, -1)),
    ("Camera_04/0002/a.jpg", (2, 4)), ("cam-7/a.jpg", (-1, 7)), ("webcam2/0001/a.jpg", (1, -1)),
])
def test_ids_come_from_folder_names(relative, ids):
    assert folder_ids(relative) == ids


def test_folder_records_are_every_image_sorted_with_absolute_paths(tmp_path):
    root = tmp_path / "0005"  # the root's own name is no identity: images directly under it have pid -1
    names = ["cam3/0002/b.jpg", "cam3/0002/a.PNG", "cam3/0010/a.jpeg", "0001/x.bmp", "top.jpg", "cam1/misc/c.jpg",
             "cam3-old/0002/d.jpg"]  # folder by folder: cam3/ before cam3-old/ (a string sort puts "-" first)
    for n, name in enumerate(names):
        write_image(root / name, 10 * n)
    (root / "0001" / "notes.txt").write_text("not an image")
    write_image(root / "0001" / ".hidden.jpg", 1)
    write_image(root / ".cache" / "0003" / "y.jpg", 1)
    write_image(tmp_path / "elsewhere" / "z.jpg", 2)
    (root / "0004").symlink_to(tmp_path / "elsewhere", target_is_directory=True)  # a linked identity folder
    (root / "0004" / "loop").symlink_to(root, target_is_directory=True)  # a link loop is walked once
    records = folder_records(root, "ir")
    expected = ["0001/x.bmp", "0004/z.jpg", "cam1/misc/c.jpg", "cam3/0002/a.PNG", "cam3/0002/b.jpg", "cam3/0010/a.jpeg",
                "cam3-old/0002/d.jpg", "top.jpg"]
    assert [Path(r.path).relative_to(root).as_posix() for r in records] == expected
    assert all(Path(r.path).is_absolute() and r.modality == "ir" for r in records)
    assert [(r.pid, r.camid) for r in records] == \
        [(1, -1), (4, -1), (-1, 1), (2, 3), (2, 3), (10, 3), (2, -1), (-1, -1)]


def test_empty_or_missing_folder_is_an_error_naming_it(tmp_path):
    (tmp_path / "empty" / "0001").mkdir(parents=True)
    (tmp_path / "empty" / "0001" / "readme.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=f"--query: no images .* under {tmp_path / 'empty'}"):
        folder_records(tmp_path / "empty", "vis", "--query")
    with pytest.raises(FileNotFoundError, match=f"no such folder: {tmp_path / 'absent'}"):
        folder_records(tmp_path / "absent", "vis")


# ------------------------------------------------------------------------------------------------ ranking

@pytest.mark.parametrize("top_k", [1, 3, 7, 40, 100])
@pytest.mark.parametrize("block", [None, 1, 5, 12])
def test_ranks_are_np_argsort_of_the_evaluate_distances_ties_included(tied, top_k, block):
    query, gallery, distmat = tied
    indices, similarities = rank_gallery(query, gallery, top_k, block=block)
    k = min(top_k, gallery.shape[0])
    expected = np.argsort(distmat, axis=1)[:, :k]
    assert indices.shape == (12, k) and indices.dtype == np.int64
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_array_equal(similarities, -np.take_along_axis(distmat, expected, axis=1))


def test_default_ranking_uses_the_very_matrix_vireid_evaluate_builds():
    """Float features (rounding present): the one default block is evaluate's matmul, bit for bit."""
    torch.manual_seed(0)
    query, gallery = torch.randn(64, 48), torch.randn(300, 48)
    distmat = evaluate_distances(query, gallery)
    indices, similarities = rank_gallery(query, gallery, 300)
    np.testing.assert_array_equal(indices, np.argsort(distmat, axis=1))
    np.testing.assert_array_equal(similarities, -np.take_along_axis(distmat, indices, axis=1))
    assert similarities.dtype == np.float32 and (np.diff(similarities, axis=1) <= 0).all()


def test_metrics_equal_evaluate_ranking_regdb_blocked_or_not(tied):
    query, gallery, distmat = tied
    rng = np.random.default_rng(1)
    q_ids, g_ids = rng.integers(0, 6, 12), rng.integers(0, 5, 40)  # id 5 is absent from the gallery
    q_ids[:4] = 5  # so the first blocks of 2 hold no query with a match
    zeros_q, zeros_g = np.zeros(12, int), np.zeros(40, int)
    reference = evaluate_ranking(distmat, q_ids, g_ids, zeros_q, zeros_g, protocol="regdb")
    assert reference.num_skipped_queries == 4 + int((~np.isin(q_ids[4:], g_ids)).sum())
    whole = search_gallery(query, gallery, 5, query_ids=q_ids, gallery_ids=g_ids).metrics
    np.testing.assert_array_equal(whole.cmc, reference.cmc)
    assert (whole.mAP, whole.mINP, whole.num_queries, whole.num_valid_queries) == \
        (reference.mAP, reference.mINP, reference.num_queries, reference.num_valid_queries)
    for block in (1, 2, 5):
        blocked = search_gallery(query, gallery, 5, query_ids=q_ids, gallery_ids=g_ids, block=block).metrics
        np.testing.assert_allclose(blocked.cmc, reference.cmc, rtol=0, atol=1e-12)
        assert blocked.mAP == pytest.approx(reference.mAP, abs=1e-12)
        assert blocked.mINP == pytest.approx(reference.mINP, abs=1e-12)
        assert (blocked.num_queries, blocked.num_valid_queries) == (12, reference.num_valid_queries)
    assert search_gallery(query, gallery, 5, query_ids=np.full(12, 9), gallery_ids=g_ids).metrics is None
    assert search_gallery(query, gallery, 5).metrics is None


# ------------------------------------------------------------------------------------------------ outputs

@pytest.fixture(scope="module")
def small_search(tmp_path_factory):
    """4 query and 7 gallery images in identity folders, exact features, ids where every query has matches
    and non-matches in its top 3."""
    root = tmp_path_factory.mktemp("small")
    q_ids, g_ids = np.array([0, 1, 2, 3]), np.array([0, 1, 2, 3, 0, 1, 2])
    query_paths = [str(write_image(root / "q" / f"{p:04d}" / f"{n}.png", 30 * n)) for n, p in enumerate(q_ids)]
    gallery_paths = [str(write_image(root / "g" / f"{p:04d}" / f"{n}.png", 20 * n, (20, 30)))
                     for n, p in enumerate(g_ids)]
    rng = np.random.default_rng(5)
    query, gallery = exact_unit_vectors(4, rng), exact_unit_vectors(7, rng)
    indices, similarities = rank_gallery(query, gallery, 3)
    matches = q_ids[:, None] == g_ids[indices]
    assert matches.any() and not matches.all()
    return {"root": root, "q_ids": q_ids, "g_ids": g_ids, "query_paths": query_paths, "gallery_paths": gallery_paths,
            "query": query, "gallery": gallery, "indices": indices, "similarities": similarities, "matches": matches}


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("with_ids", [True, False])
def test_rank_csv_rows_columns_similarities_and_matches(small_search, tmp_path, with_ids):
    s = small_search
    torch.manual_seed(1)  # float features: similarities that a rounded decimal would not give back
    query, gallery = torch.randn(4, 16), torch.randn(7, 16)
    indices, similarities = rank_gallery(query, gallery, 3)
    matches = s["q_ids"][:, None] == s["g_ids"][indices]
    assert matches.any() and not matches.all()
    query_names = [f"q{n}.png" for n in range(4)]
    gallery_names = [f"g{n}.png" for n in range(7)]
    ids = {"query_ids": s["q_ids"], "gallery_ids": s["g_ids"]} if with_ids else {}
    rows = read_csv(write_rank_csv(query_names, gallery_names, indices, similarities, tmp_path / "r.csv", **ids))
    columns = ["query", "rank", "gallery", "similarity"] + (["query_id", "gallery_id", "match"] if with_ids else [])
    assert list(rows[0]) == columns and len(rows) == 4 * 3
    dots = -evaluate_distances(query, gallery)  # cosine: dot products of the L2-normalised rows
    for n, row in enumerate(rows):
        q, rank = divmod(n, 3)
        g = indices[q, rank]
        assert (row["query"], int(row["rank"]), row["gallery"]) == (query_names[q], rank + 1, gallery_names[g])
        assert np.float32(row["similarity"]) == dots[q, g]
        if with_ids:
            assert (int(row["query_id"]), int(row["gallery_id"])) == (s["q_ids"][q], s["g_ids"][g])
            assert row["match"] == str(int(matches[q, rank]))


class RankPage(HTMLParser):
    """Rows of the rank-list HTML: per `tr.ranks`, its cells' (classes, attributes, thumb styles)."""

    def __init__(self):
        super().__init__()
        self.rows, self.cell, self.urls, self.sources = [], None, [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.sources += [attrs[key] for key in ("src", "href") if key in attrs]
        classes = (attrs.get("class") or "").split()
        if tag == "tr" and "ranks" in classes:
            self.rows.append([])
        elif tag == "td":
            self.cell = {"classes": classes, "attrs": attrs, "thumbs": []}
            self.rows[-1].append(self.cell)
        elif tag == "div" and "thumb" in classes:
            self.cell["thumbs"].append(attrs.get("style") or "")

    def handle_data(self, data):
        self.urls += [part.split(")")[0] for part in data.split("url(")[1:]]


@pytest.mark.parametrize("with_ids", [True, False])
def test_rank_html_is_self_contained_with_borders_where_matches_are(small_search, tmp_path, with_ids):
    s = small_search
    ids = {"query_ids": s["q_ids"], "gallery_ids": s["g_ids"]} if with_ids else {}
    path = write_rank_html(s["query_paths"], s["gallery_paths"], s["indices"], s["similarities"], tmp_path / "r.html",
                           gallery_names=[f"g{n}" for n in range(7)], **ids)
    text = path.read_text()
    page = RankPage()
    page.feed(text)
    assert page.sources == [] and page.urls and all(url.startswith("data:image/jpeg;base64,") for url in page.urls)
    assert len(page.urls) == 4 + len(np.unique(s["indices"]))  # each image embedded once
    assert len(page.rows) == 4
    for q, row in enumerate(page.rows):
        assert "query" in row[0]["classes"] and len(row[0]["thumbs"]) == 1
        hits = row[1:]
        assert len(hits) == 3 and all(len(hit["thumbs"]) == 1 for hit in hits)
        assert [hit["attrs"]["data-rank"] for hit in hits] == ["1", "2", "3"]
        assert [hit["attrs"]["data-gallery"] for hit in hits] == [f"g{g}" for g in s["indices"][q]]
        assert [np.float32(hit["attrs"]["data-similarity"]) for hit in hits] == list(s["similarities"][q])
        for rank, hit in enumerate(hits):
            if with_ids:
                same = bool(s["matches"][q, rank])
                assert hit["thumbs"][0] == f"border-color:{GREEN if same else RED}"
                assert ("match" if same else "nomatch") in hit["classes"]
            else:
                assert hit["thumbs"][0] == "" and hit["classes"] == ["hit"]
    assert (GREEN in text and RED in text) == with_ids and (GREEN in text or RED in text) == with_ids


def frame_colours(path: Path) -> list[str]:
    """Colours of the green / red picture frames of a PNG in reading order (row by row, left to right): the
    connected pixel groups of exactly the match colours that are at least thumbnail-sized (captions are smaller)."""
    from scipy import ndimage  # noqa: PLC0415

    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    frames = []
    for name, colour in (("green", GREEN), ("red", RED)):
        mask = (pixels == np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])).all(axis=2)
        labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))
        for rows, columns in ndimage.find_objects(labels):
            if rows.stop - rows.start > 60 and columns.stop - columns.start > 30:
                frames.append((rows.start, columns.start, name))
    tops = sorted({top for top, _, _ in frames})
    assert all(b - a > 100 for a, b in zip(tops, tops[1:]))  # one top edge per row of frames
    return [name for _, _, name in sorted(frames)]


@pytest.mark.parametrize("with_ids", [True, False])
def test_rank_png_is_an_image_of_the_expected_size_with_frames_where_matches_are(small_search, tmp_path, with_ids):
    s = small_search
    ids = {"query_ids": s["q_ids"], "gallery_ids": s["g_ids"]} if with_ids else {}
    path = plot_rank_rows(s["query_paths"], s["gallery_paths"], s["indices"], s["similarities"], tmp_path / "r.png",
                          max_rows=2, **ids)
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == rank_plot_size(2, 3) == (561, 583)  # (1.2 * 4 + 0.3, 2.3 * 2 + 0.7) inches at 110 dpi
    expected = ["green" if same else "red" for same in s["matches"][:2].ravel()] if with_ids else []
    assert frame_colours(path) == expected


# ------------------------------------------------------------------------------------------------ the commands

@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """query/ (SYSU cameras 3 and 6, infrared) and gallery/ (cameras 1, 2, 4, 5) in cam*/<id>/ folders, and a
    tiny model checkpoint."""
    base = tmp_path_factory.mktemp("search")
    make_synthetic_sysu(base / "sysu", num_ids=6, images_per_camera=1, height=32, width=16)
    for cam in range(1, 7):
        shutil.copytree(base / "sysu" / f"cam{cam}", base / ("query" if cam in (3, 6) else "gallery") / f"cam{cam}")
    torch.manual_seed(0)
    checkpoint = save_model_checkpoint(base / "model.pt", build_model("tiny"), TINY)
    return {"base": base, "query": base / "query", "gallery": base / "gallery", "checkpoint": checkpoint}


def test_extract_writes_a_portable_feature_set(folders, tmp_path, capsys):
    out = tmp_path / "query_features.pt"
    assert vireid_main(["extract", "--checkpoint", str(folders["checkpoint"]), "--images", str(folders["query"]),
                        "--modality", "ir", "--out", str(out), "--workers", "0"]) == 0
    assert f"written: {out}" in capsys.readouterr().out
    stored = FeatureSet.load(out)  # paths as stored: relative to --images
    records = folder_records(folders["query"], "ir")
    assert [r.path for r in stored.records] == [Path(r.path).relative_to(folders["query"]).as_posix() for r in records]
    assert [(r.pid, r.camid, r.modality) for r in stored.records] == [(r.pid, r.camid, "ir") for r in records]
    assert {r.camid for r in records} == {3, 6} and min(r.pid for r in records) >= 1
    model, config = load_model_checkpoint(folders["checkpoint"])
    expected = extract_features(model, records, torch.device("cpu"), height=config.height, width=config.width,
                                progress=False)
    assert torch.equal(stored.features, expected)
    moved = tmp_path / "elsewhere"  # portable: the folder and the file moved together still match
    shutil.copytree(folders["query"], moved)
    assert all(Path(r.path).is_file() for r in FeatureSet.load(out, root=moved).records)


def search_args(folders, out, *extra):
    return ["search", "--query", str(folders["query"]), "--gallery", str(folders["gallery"]), "--out", str(out),
            "--workers", "0", *extra]


def test_search_end_to_end_and_from_saved_features(folders, tmp_path, capsys):
    checkpoint = str(folders["checkpoint"])
    assert vireid_main(search_args(folders, tmp_path / "a", "--checkpoint", checkpoint, "--top-k", "4")) == 0
    printed = capsys.readouterr().out
    rows = read_csv(tmp_path / "a" / "ranks.csv")
    query, gallery = folder_records(folders["query"], "ir"), folder_records(folders["gallery"], "vis")
    assert len(rows) == 4 * len(query) and list(rows[0])[-3:] == ["query_id", "gallery_id", "match"]
    assert rows[0]["query"] == Path(query[0].path).relative_to(folders["query"]).as_posix()
    assert all(row["match"] == str(int(row["query_id"] == row["gallery_id"])) for row in rows)
    assert f"queries: {len(query)}" in printed and f"gallery: {len(gallery)}" in printed

    features = {}
    for side, records, modality in (("query", query, "ir"), ("gallery", gallery, "vis")):
        features[side] = tmp_path / f"{side}.pt"
        assert vireid_main(["extract", "--checkpoint", checkpoint, "--images", str(folders[side]), "--modality",
                            modality, "--out", str(features[side]), "--workers", "0"]) == 0
    capsys.readouterr()
    assert vireid_main(search_args(folders, tmp_path / "b", "--top-k", "4", "--query-features", str(features["query"]),
                                   "--gallery-features", str(features["gallery"]))) == 0
    assert capsys.readouterr().out.replace(str(tmp_path / "b"), "OUT") == printed.replace(str(tmp_path / "a"), "OUT")
    assert (tmp_path / "b" / "ranks.csv").read_bytes() == (tmp_path / "a" / "ranks.csv").read_bytes()

    q, g = FeatureSet.load(features["query"]), FeatureSet.load(features["gallery"])
    distmat = evaluate_distances(q.features, g.features)
    np.testing.assert_array_equal(np.array([int(r["rank"]) for r in rows]), np.tile(np.arange(1, 5), len(query)))
    gallery_names = [r.path for r in g.records]
    ranked = np.array([gallery_names.index(r["gallery"]) for r in rows]).reshape(len(query), 4)
    np.testing.assert_array_equal(ranked, np.argsort(distmat, axis=1)[:, :4])
    assert [r["query"] for r in rows[::4]] == [r.path for r in q.records]
    np.testing.assert_array_equal(np.array([np.float32(r["similarity"]) for r in rows]).reshape(len(query), 4),
                                  -np.take_along_axis(distmat, ranked, axis=1))
    reference = evaluate_ranking(distmat, [r.pid for r in q.records], [r.pid for r in g.records], np.zeros(len(query)),
                                 np.zeros(len(gallery)), protocol="regdb")
    assert f"R1 {100 * reference.rank(1):.2f}" in printed and f"mAP {100 * reference.mAP:.2f}" in printed

    page = RankPage()
    page.feed((tmp_path / "a" / "ranks.html").read_text())
    assert len(page.rows) == len(query) and all(len(row) == 5 for row in page.rows)
    with Image.open(tmp_path / "a" / "ranks.png") as image:
        assert image.size == rank_plot_size(10, 4)


def test_search_without_identity_folders(folders, tmp_path, capsys):
    flat = tmp_path / "flat"  # gallery images straight under the folder: identities unknown
    flat.mkdir()
    for n, path in enumerate(sorted(folders["gallery"].rglob("*.jpg"))[:5]):
        shutil.copy(path, flat / f"{n}.jpg")
    assert vireid_main(["search", "--checkpoint", str(folders["checkpoint"]), "--query", str(folders["query"]),
                        "--gallery", str(flat), "--out", str(tmp_path / "out"), "--workers", "0"]) == 0
    printed = capsys.readouterr().out
    assert "identities unknown" in printed and "no R1 / mAP" in printed
    assert re.search(r"R1 [0-9]", printed) is None
    assert "top-5 per query (the whole gallery; --top-k 10)" in printed
    rows = read_csv(tmp_path / "out" / "ranks.csv")
    assert list(rows[0]) == ["query", "rank", "gallery", "similarity"] and len(rows) == 5 * 19
    text = (tmp_path / "out" / "ranks.html").read_text()
    assert GREEN not in text and RED not in text and 'class="hit match' not in text


def error_of(argv, capsys) -> str:
    assert vireid_main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()  # log lines may come first
    assert lines[-1].startswith("vireid: error: ") and sum(line.startswith("vireid:") for line in lines) == 1
    return lines[-1]


def test_errors_name_the_path(folders, tmp_path, capsys):
    checkpoint = str(folders["checkpoint"])
    empty = tmp_path / "empty"
    empty.mkdir()
    extract = ["extract", "--checkpoint", checkpoint, "--modality", "vis", "--out", str(tmp_path / "f.pt"),
               "--workers", "0", "--images"]
    assert f"--images: no images (.bmp, .jpeg, .jpg, .png) under {empty}" in error_of(extract + [str(empty)], capsys)
    search = ["search", "--checkpoint", checkpoint, "--gallery", str(folders["gallery"]), "--out",
              str(tmp_path / "out"), "--workers", "0", "--query"]
    assert "--query: no images" in error_of(search + [str(empty)], capsys)
    assert f"no such folder: {tmp_path / 'absent'}" in error_of(search + [str(tmp_path / "absent")], capsys)

    corrupt = tmp_path / "corrupt"
    shutil.copytree(folders["query"], corrupt)
    bad = corrupt / "cam3" / "0001" / "0009.jpg"
    bad.write_bytes(b"not an image")
    assert f"cannot read image {bad}" in error_of(extract + [str(corrupt)], capsys)
    assert f"cannot read image {bad}" in error_of(search + [str(corrupt)], capsys)
    assert not (tmp_path / "f.pt").exists() and not (tmp_path / "out").exists()

    missing = tmp_path / "no_model.pt"
    assert f"checkpoint not found: {missing}" in error_of(
        ["extract", "--checkpoint", str(missing), "--images", str(folders["query"]), "--modality", "ir", "--out",
         str(tmp_path / "f.pt")], capsys)
    assert f"checkpoint not found: {missing}" in error_of(
        ["search", "--checkpoint", str(missing), "--query", str(folders["query"]), "--gallery",
         str(folders["gallery"]), "--out", str(tmp_path / "out")], capsys)
    assert "--checkpoint is needed to extract the query features" in error_of(
        ["search", "--query", str(folders["query"]), "--gallery", str(folders["gallery"]), "--out",
         str(tmp_path / "out")], capsys)


@pytest.mark.parametrize("command", ["extract", "search"])
def test_every_option_has_help_and_the_identity_rule_is_documented(command):
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    parser = subparsers.choices[command]
    assert all(action.help for action in parser._actions)
    assert "when it is a whole number (0001/ -> 1), else -1 (unknown)" in parser.description
    assert "folder named camN or cameraN, else -1" in parser.description
