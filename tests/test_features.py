from __future__ import annotations

import csv
import json

import pytest
import torch

from reid.checkpoint import CheckpointError, save_checkpoint
from reid.cli import main as vireid_main
from reid.data import Record
from reid.data import relative_path
from reid.features import FeatureSet


def blob_feature_set(root, num_ids=4, per_modality=5, modality_offset=0.0, seed=0):
    """Records of `num_ids` identities, each with vis and ir images, and blob features around each id."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_ids, 16, generator=generator)
    offset = {"vis": torch.zeros(16), "ir": modality_offset * torch.randn(16, generator=generator)}
    records, rows = [], []
    for pid in range(num_ids):
        for modality, camid in (("vis", 1), ("ir", 3)):
            for n in range(per_modality):
                records.append(Record(str(root / f"cam{camid}" / f"{pid:04d}" / f"{n:04d}.jpg"), pid, camid, modality))
                rows.append(centres[pid] + offset[modality] + 0.05 * torch.randn(16, generator=generator))
    return FeatureSet(records, torch.stack(rows))


def test_round_trip_is_portable_across_roots(tmp_path):
    feature_set = blob_feature_set(tmp_path / "dataset")
    path = feature_set.save(tmp_path / "feats.pt", root=tmp_path / "dataset")
    moved = FeatureSet.load(path, root="/elsewhere/SYSU")
    assert moved.records[0].path == "/elsewhere/SYSU/cam1/0000/0000.jpg"
    assert [(r.pid, r.camid, r.modality) for r in moved.records] == \
           [(r.pid, r.camid, r.modality) for r in feature_set.records]
    torch.testing.assert_close(moved.features, feature_set.features)
    wanted = [moved.records[7], moved.records[2]]
    torch.testing.assert_close(moved.lookup(wanted), feature_set.features[[7, 2]])
    with pytest.raises(KeyError, match="nothere.jpg"):
        moved.lookup([Record("/elsewhere/SYSU/nothere.jpg", 0, 1, "vis")])


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="not inside the dataset root"):
        relative_path("/a/b.jpg", "/c")
    with pytest.raises(ValueError, match=r"\[N, D\] with N = 1"):
        FeatureSet([Record("a.jpg", 0, 1, "vis")], torch.zeros(2, 3))
    other = save_checkpoint(tmp_path / "model.pt", kind="reid", state={})
    with pytest.raises(CheckpointError, match="'reid' checkpoint, expected a 'features'"):
        FeatureSet.load(other)


def test_cluster_command_mixed_modal(tmp_path, capsys):
    """Per-modality features are split by a large modality offset; their translated views (the other
    modality's features of the same id) let mixed-modal clustering join vis and ir of each identity."""
    root = tmp_path / "dataset"
    original = blob_feature_set(root, modality_offset=3.0)
    swapped = {"vis": "ir", "ir": "vis"}
    by_key = {(r.pid, r.modality, i % 5): row for i, (r, row) in enumerate(zip(original.records, original.features))}
    translated = torch.stack([by_key[(r.pid, swapped[r.modality], i % 5)] for i, r in enumerate(original.records)])
    translated += 0.05 * torch.randn(translated.shape, generator=torch.Generator().manual_seed(1))
    original.save(tmp_path / "feats.pt", root=root)
    FeatureSet(original.records, translated).save(tmp_path / "translated.pt", root=root)

    common = ["--k1", "8", "--k2", "3", "--eps", "0.5", "--min-samples", "3"]
    assert vireid_main(["cluster", "--features", str(tmp_path / "feats.pt"), "--out", str(tmp_path / "plain"), *common]) == 0
    plain = json.loads((tmp_path / "plain" / "cluster_report.json").read_text())
    assert plain["num_clusters"] == 8 and plain["mixed_clusters"] == 0
    assert plain["pairwise_precision"] == 1.0 and plain["pairwise_recall"] < 0.5  # each id split by modality
    assert vireid_main(["cluster", "--features", str(tmp_path / "feats.pt"), "--translated", str(tmp_path / "translated.pt"),
                        "--unify", "vis", "--out", str(tmp_path / "mixed"), *common]) == 0
    mixed = json.loads((tmp_path / "mixed" / "cluster_report.json").read_text())
    assert mixed["num_clusters"] == 4 and mixed["mixed_clusters"] == 4 and mixed["settings"]["unify"] == "vis"
    assert mixed["ari"] == 1.0 and mixed["nmi"] == pytest.approx(1.0)
    with open(tmp_path / "mixed" / "labels.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 40 and rows[0]["path"] == "cam1/0000/0000.jpg"
    label_of_pid = {}
    for row in rows:
        assert label_of_pid.setdefault(row["pid"], row["label"]) == row["label"]  # one label per identity
    assert "ARI 1.000" in capsys.readouterr().out


def test_cluster_command_rejects_misaligned_translated_features(tmp_path, capsys):
    root = tmp_path / "dataset"
    original = blob_feature_set(root)
    original.save(tmp_path / "feats.pt", root=root)
    FeatureSet(original.records[::-1], original.features).save(tmp_path / "translated.pt", root=root)
    assert vireid_main(["cluster", "--features", str(tmp_path / "feats.pt"), "--translated",
                        str(tmp_path / "translated.pt"), "--out", str(tmp_path / "out")]) == 2
    assert "same order" in capsys.readouterr().err
