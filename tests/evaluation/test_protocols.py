"""Protocol runners on a tiny synthetic SYSU-layout dataset, and re-ranking."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reid.data import load_dataset, make_synthetic_sysu
from reid.evaluation import evaluate_protocol, evaluate_ranking, protocol_settings, rerank_distances
from reid.features import FeatureSet


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic_sysu(root, num_ids=12, seed=0, images_per_camera=3, height=32, width=16, test_fraction=0.5)
    return load_dataset("synthetic", root)


def identity_features(records, noise: float, seed: int = 0) -> torch.Tensor:
    """A feature per image: its identity's random direction plus noise (so results are imperfect but sane)."""
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(1000, 32, generator=torch.Generator().manual_seed(123))
    return directions[[r.pid for r in records]] + noise * torch.randn(len(records), 32, generator=generator)


def test_settings_per_dataset(dataset):
    settings = protocol_settings(dataset)
    assert list(settings) == ["all-single", "all-multi", "indoor-single", "indoor-multi"]
    assert [t["trial"] for t in settings["all-multi"]] == list(range(10)) and settings["all-multi"][0]["shots"] == 10


def test_runner_averages_trials_and_computes_each_image_once(dataset):
    calls = []

    def feature_fn(records):
        calls.append(len(records))
        return identity_features(records, noise=1.5)

    result = evaluate_protocol(feature_fn, dataset, trials=3)
    assert len(calls) == 1  # one call for every distinct image of every setting and trial
    query, _ = dataset.test_split(mode="all", trial=0)
    distinct = {r.path for s in protocol_settings(dataset, 3).values() for args in s for r in sum(dataset.test_split(**args), [])}
    assert calls[0] == len(distinct) and len(query) < calls[0]

    features = dict(zip([r.path for r in _distinct(dataset)], identity_features(_distinct(dataset), noise=1.5)))
    for name, arguments in protocol_settings(dataset, 3).items():
        per_trial = []
        for args in arguments:
            q, g = dataset.test_split(**args)
            qf = torch.nn.functional.normalize(torch.stack([features[r.path] for r in q]), dim=1)
            gf = torch.nn.functional.normalize(torch.stack([features[r.path] for r in g]), dim=1)
            per_trial.append(evaluate_ranking(-(qf @ gf.T).numpy(), [r.pid for r in q], [r.pid for r in g],
                                              [r.camid for r in q], [r.camid for r in g], "sysu"))
        mean = result.settings[name].mean()
        assert mean["num_trials"] == 3
        assert mean["mAP"] == pytest.approx(np.mean([t.mAP for t in per_trial]))
        assert mean["R1"] == pytest.approx(np.mean([t.rank(1) for t in per_trial]))
        assert 0.0 < mean["mAP"] < 1.0
    # different trials draw different galleries, so single-shot trials differ
    assert len({t.mAP for t in result.settings["all-single"].trials}) > 1


def _distinct(dataset):
    seen, records = set(), []
    for arguments in protocol_settings(dataset, 3).values():
        for args in arguments:
            for record in sum(dataset.test_split(**args), []):
                if record.path not in seen:
                    seen.add(record.path)
                    records.append(record)
    return records


def test_feature_set_source_perfect_features_and_table(dataset):
    records = _distinct(dataset)
    feature_set = FeatureSet(records, identity_features(records, noise=0.0))
    result = evaluate_protocol(feature_set, dataset, settings=["indoor-single"], trials=2)
    assert list(result.settings) == ["indoor-single"]
    assert result.settings["indoor-single"].mean()["R1"] == 1.0 and result.settings["indoor-single"].mean()["mAP"] == 1.0
    assert "| indoor-single | 100.00 |" in result.table()
    assert result.as_dict()["settings"]["indoor-single"]["trials"][0]["mAP"] == 1.0
    with pytest.raises(ValueError, match="unknown setting"):
        evaluate_protocol(feature_set, dataset, settings=["outdoor"])
    with pytest.raises(KeyError, match="no feature for"):
        evaluate_protocol(FeatureSet(records[:3], feature_set.features[:3]), dataset, settings=["all-single"])


def test_rerank_improves_noisy_retrieval_and_is_shaped_like_the_distances():
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(10, 32, generator=generator)
    pids = torch.arange(10).repeat_interleave(8)
    features = centres[pids] + 0.9 * torch.randn(80, 32, generator=generator)
    query, gallery = features[::4], features[[i for i in range(80) if i % 4]]
    q_pids, g_pids = pids[::4].numpy(), pids[[i for i in range(80) if i % 4]].numpy()
    q_cams, g_cams = np.ones(len(q_pids)), np.full(len(g_pids), 2)
    plain = -(torch.nn.functional.normalize(query, dim=1) @ torch.nn.functional.normalize(gallery, dim=1).T).numpy()
    reranked = rerank_distances(query, gallery, k1=8, k2=3, lambda_value=0.3)
    assert reranked.shape == plain.shape and reranked.min() >= 0.0
    before = evaluate_ranking(plain, q_pids, g_pids, q_cams, g_cams, "regdb")
    after = evaluate_ranking(reranked, q_pids, g_pids, q_cams, g_cams, "regdb")
    assert after.mAP > before.mAP
    only_original = rerank_distances(query, gallery, k1=8, k2=3, lambda_value=1.0)
    np.testing.assert_array_equal(np.argsort(only_original, axis=1, kind="stable")[:, :5],
                                  np.argsort(plain, axis=1, kind="stable")[:, :5])
    with pytest.raises(ValueError, match="lambda_value"):
        rerank_distances(query, gallery, lambda_value=2.0)
