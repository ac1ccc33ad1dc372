"""Ranking metrics: hand-computed cases per protocol, and equality with the reference loops."""
from __future__ import annotations

import numpy as np
import pytest

from reid.evaluation.ranking import evaluate_ranking


def reference_eval(distmat, q_pids, g_pids, q_camids, g_camids, protocol, max_rank=20):
    """The community's per-query evaluation (eval_sysu / eval_regdb / eval_llcm), transcribed."""
    num_q, num_g = distmat.shape
    max_rank = min(max_rank, num_g)
    indices = np.argsort(distmat, axis=1)
    pred_label = g_pids[indices]
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    new_all_cmc, all_cmc, all_ap, all_inp, num_valid = [], [], [], [], 0.0
    for q_idx in range(num_q):
        order = indices[q_idx]
        if protocol == "sysu":
            remove = (q_camids[q_idx] == 3) & (g_camids[order] == 2)
        elif protocol == "llcm":
            remove = (g_pids[order] == q_pids[q_idx]) & (g_camids[order] == q_camids[q_idx])
        else:
            remove = np.zeros(num_g, dtype=bool)
        keep = np.invert(remove)
        new_cmc = pred_label[q_idx][keep]
        new_index = np.unique(new_cmc, return_index=True)[1]
        new_cmc = np.array([new_cmc[index] for index in sorted(new_index)])
        new_cmc = (new_cmc == q_pids[q_idx]).astype(np.int32).cumsum()
        new_cmc = np.pad(new_cmc, (0, max(0, max_rank - len(new_cmc))), mode="edge")  # short deduplicated lists
        orig_cmc = matches[q_idx][keep]
        if not np.any(orig_cmc):
            continue
        new_all_cmc.append(new_cmc[:max_rank])
        cmc = orig_cmc.cumsum()
        pos_max_idx = np.max(np.where(orig_cmc == 1))
        all_inp.append(cmc[pos_max_idx] / (pos_max_idx + 1.0))
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        num_valid += 1.0
        tmp_cmc = np.asarray([x / (i + 1.0) for i, x in enumerate(orig_cmc.cumsum())]) * orig_cmc
        all_ap.append(tmp_cmc.sum() / orig_cmc.sum())
    curve = new_all_cmc if protocol in ("sysu", "llcm") else all_cmc
    return np.asarray(curve, dtype=np.float64).sum(0) / num_valid, np.mean(all_ap), np.mean(all_inp), num_valid


def arrays(*values):
    return [np.asarray(v) for v in values]


def test_sysu_camera3_drops_camera2_and_cmc_counts_identities_once():
    # gallery ranked by distance: g0 (id 2, cam 2), g1 (id 2, cam 1), g2 (id 2, cam 4), g3 (id 1, cam 1), g4 (id 1, cam 2)
    distmat = np.array([[0.1, 0.2, 0.3, 0.4, 0.5],   # query id 1 from cam 3: g0 and g4 dropped (cam 2)
                        [0.1, 0.2, 0.3, 0.4, 0.5]])  # query id 1 from cam 6: nothing dropped
    q_pids, q_cams = arrays([1, 1], [3, 6])
    g_pids, g_cams = arrays([2, 2, 2, 1, 1], [2, 1, 4, 1, 2])
    result = evaluate_ranking(distmat, q_pids, g_pids, q_cams, g_cams, "sysu", max_rank=5)
    # cam-3 query: kept list ids [2, 2, 1]; de-duplicated [2, 1] -> first match at rank 2
    # cam-6 query: ids [2, 2, 2, 1, 1]; de-duplicated [2, 1] -> rank 2
    np.testing.assert_allclose(result.cmc, [0.0, 1.0, 1.0, 1.0, 1.0])
    # AP without de-duplication: cam-3 kept [2,2,1] -> match at position 3: AP 1/3; INP 1/3
    # cam-6: matches at positions 4 and 5: AP (1/4 + 2/5) / 2 = 0.325; INP 2/5
    assert result.mAP == pytest.approx((1 / 3 + 0.325) / 2)
    assert result.mINP == pytest.approx((1 / 3 + 0.4) / 2)
    assert result.num_valid_queries == 2 and result.num_skipped_queries == 0


def test_sysu_camera3_query_with_only_camera2_matches_is_skipped():
    distmat = np.array([[0.1, 0.2], [0.2, 0.1]])
    result = evaluate_ranking(distmat, np.array([5, 5]), np.array([5, 6]), np.array([3, 6]), np.array([2, 1]), "sysu")
    assert result.num_skipped_queries == 1 and result.num_valid_queries == 1
    np.testing.assert_allclose(result.cmc, [0.0, 1.0])  # the cam-6 query ranks id 6, then id 5
    assert result.mAP == 0.5


def test_regdb_plain_ranking_keeps_duplicates_in_cmc():
    distmat = np.array([[0.1, 0.2, 0.3]])  # ids ranked [7, 7, 3], query id 3
    result = evaluate_ranking(distmat, np.array([3]), np.array([7, 7, 3]), np.array([1]), np.array([2, 2, 2]), "regdb")
    np.testing.assert_allclose(result.cmc, [0.0, 0.0, 1.0])  # no de-duplication: rank 3
    assert result.mAP == pytest.approx(1 / 3) and result.mINP == pytest.approx(1 / 3)
    sysu = evaluate_ranking(distmat, np.array([3]), np.array([7, 7, 3]), np.array([1]), np.array([2, 2, 2]), "sysu")
    np.testing.assert_allclose(sysu.cmc, [0.0, 1.0, 1.0])  # the same list de-duplicated: rank 2


def test_llcm_drops_same_identity_same_camera_only():
    # ranked: g0 (id 4, cam 2) dropped for a cam-2 query of id 4; g1 (id 9, cam 2) kept; g2 (id 4, cam 5)
    distmat = np.array([[0.1, 0.2, 0.3]])
    args = (np.array([4]), np.array([4, 9, 4]), np.array([2]), np.array([2, 2, 5]))
    result = evaluate_ranking(distmat, *args, protocol="llcm")
    np.testing.assert_allclose(result.cmc, [0.0, 1.0, 1.0])
    assert result.mAP == pytest.approx(0.5) and result.mINP == pytest.approx(0.5)


def test_no_valid_query_and_empty_gallery_are_clear_errors():
    with pytest.raises(ValueError, match="no query identity appears"):
        evaluate_ranking(np.zeros((2, 3)), np.array([1, 2]), np.array([3, 3, 3]), np.array([1, 1]), np.array([2, 2, 2]), "regdb")
    with pytest.raises(ValueError, match="no query identity appears"):
        evaluate_ranking(np.zeros((2, 0)), np.array([1, 2]), np.array([]), np.array([1, 1]), np.array([]), "sysu")
    with pytest.raises(ValueError, match="unknown protocol"):
        evaluate_ranking(np.zeros((1, 1)), [1], [1], [1], [1], "market")
    with pytest.raises(ValueError, match=r"g_pids must be \[3\]"):
        evaluate_ranking(np.zeros((1, 3)), [1], [1, 2], [1], [1, 2, 3], "sysu")


def test_max_rank_is_capped_by_the_gallery_size():
    result = evaluate_ranking(np.array([[0.3, 0.1]]), [1], [1, 2], [3], [1, 4], "sysu", max_rank=20)
    assert len(result.cmc) == 2 and result.rank(20) == 1.0


@pytest.mark.parametrize("protocol", ["sysu", "regdb", "llcm"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_the_reference_loop_with_ties(protocol, seed):
    rng = np.random.default_rng(seed)
    num_q, num_g = 60, 45
    q_pids, g_pids = rng.integers(0, 18, num_q), rng.integers(0, 15, num_g)  # some query ids absent
    q_cams = rng.choice([3, 6], num_q) if protocol == "sysu" else rng.integers(1, 4, num_q)
    g_cams = rng.choice([1, 2, 4, 5], num_g) if protocol == "sysu" else rng.integers(1, 4, num_g)
    distmat = rng.integers(0, 8, (num_q, num_g)).astype(np.float32)  # many ties
    expected_cmc, expected_map, expected_minp, num_valid = reference_eval(distmat, q_pids, g_pids, q_cams, g_cams, protocol)
    result = evaluate_ranking(distmat, q_pids, g_pids, q_cams, g_cams, protocol)
    np.testing.assert_allclose(result.cmc, expected_cmc, rtol=0, atol=1e-12)
    assert result.mAP == pytest.approx(expected_map, abs=1e-12)
    assert result.mINP == pytest.approx(expected_minp, abs=1e-12)
    assert result.num_valid_queries == num_valid and 0 < num_valid < num_q


def test_chunked_evaluation_equals_one_chunk(monkeypatch):
    rng = np.random.default_rng(3)
    args = (rng.random((50, 30)), rng.integers(0, 6, 50), rng.integers(0, 6, 30), rng.choice([3, 6], 50),
            rng.choice([1, 2, 4, 5], 30))
    whole = evaluate_ranking(*args, protocol="sysu")
    monkeypatch.setattr("reid.evaluation.ranking.MAX_CELLS_PER_CHUNK", 7 * 30)
    chunked = evaluate_ranking(*args, protocol="sysu")
    np.testing.assert_array_equal(whole.cmc, chunked.cmc)
    assert whole.mAP == chunked.mAP and whole.mINP == chunked.mINP
