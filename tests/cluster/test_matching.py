"""progressive_graph_matching against transcriptions of the three released matching blocks:
- "one_sided": PGM (zesenwu23/USL-VI-ReID) train_sysu.py:816-848 (PCLHD train_regdb.py:816-847 holds the same);
- "symmetric": PGM train_regdb.py:683-740 (its `else` branch swaps the roles when Ci > Cv);
- "pclhd": PCLHD (shijiangming1/PCLHD) train_sysu.py:985-1034 `def PGM` (a second padded round when the rows left
  after round 1 are at least as many as the columns, moving b2a).
Each transcription returns the reference's dicts (r2i, i2r); ours must equal them wherever they are defined.
Where the reference leaves visible clusters without a partner (its trainer then raises a KeyError) or cannot run
(PCLHD with Ci > Cv: torch.zeros of a negative size), ours follows the behaviour its module docstring states:
the last round's rule repeated until every row has a column; "pclhd" with Ci > Cv matches nothing."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from reid.cluster.matching import ClusterMatching, matching_cost, progressive_graph_matching


def padded_cost(features1, features2):
    """The blocks' cost: 1 / exp(cos) of the normalised centroids, padded with zero columns to a square."""
    cluster_features1 = F.normalize(features1, dim=1)
    cluster_features2 = F.normalize(features2, dim=1)
    similarity = ((torch.mm(cluster_features1, cluster_features2.T)) / 1).exp().cpu()
    dis_similarity = (1 / (similarity))
    cost = dis_similarity / 1
    tmp = torch.zeros(dis_similarity.shape[0], dis_similarity.shape[0] - dis_similarity.shape[1])
    return torch.cat((cost, tmp), 1), dis_similarity.shape[1]


class Rounds:
    """How a transcription runs its later rounds: `verbatim` (the reference: one more round, and the partners of
    its leftover rows read as `unmatched_row[idx]`, idx the position in the assignment's row list) or `continued`
    (ours' stated rule: `unmatched_row[item]`, the row the assignment chose, and the round repeated until no row
    is left). `truncated` collects the rows and columns the reference set in a round with more rows than columns,
    where `unmatched_row[idx]` is not the chosen row (and the reference's trainer raises a KeyError anyway)."""

    def __init__(self, continued: bool):
        self.continued = continued
        self.truncated_rows, self.truncated_cols = set(), set()

    def assign(self, unmatched_row, unmatched_cost):
        """(row, col) pairs of one round, as the reference indexes them (or as ours, when continued)."""
        unmatched_row_ind, unmatched_col_ind = linear_sum_assignment(unmatched_cost)
        pairs = []
        for idx, item in enumerate(unmatched_row_ind):
            row = unmatched_row[item] if self.continued else unmatched_row[idx]
            pairs.append((row, unmatched_col_ind[idx]))
        if len(unmatched_row) > unmatched_cost.shape[1]:
            self.truncated_rows.update(row for row, _ in pairs)
            self.truncated_cols.update(col for _, col in pairs)
        return pairs


def pgm_block(features1, features2, rounds: Rounds):
    """PGM train_sysu.py:823-846 with cluster_features1 the rows (visible, or infrared in train_regdb.py's else
    branch): (a2b, b2a)."""
    a2b, b2a = {}, {}
    cost, num_cols = padded_cost(features1, features2)
    unmatched_row = []
    row_ind, col_ind = linear_sum_assignment(cost)
    for idx, item in enumerate(row_ind):
        if col_ind[idx] < num_cols:
            a2b[row_ind[idx]] = col_ind[idx]
            b2a[col_ind[idx]] = row_ind[idx]
        else:
            unmatched_row.append(row_ind[idx])
    while True:  # bgm is False: one more round (the reference runs it once)
        unmatched_cost = cost[unmatched_row][:, :num_cols]
        for row, col in rounds.assign(unmatched_row, unmatched_cost):
            a2b[row] = col
        unmatched_row = [row for row in unmatched_row if row not in a2b]
        if not rounds.continued or not unmatched_row:
            return a2b, b2a


def one_sided(vis, ir, rounds):
    """train_sysu.py:816-848: (r2i, i2r); nothing when num_cluster_rgb < num_cluster_ir."""
    if len(vis) >= len(ir):
        return pgm_block(vis, ir, rounds)
    return {}, {}


def symmetric(vis, ir, rounds):
    """train_regdb.py:683-740: (r2i, i2r), the roles swapped when there are more infrared clusters."""
    if len(vis) >= len(ir):
        return pgm_block(vis, ir, rounds)
    i2r, r2i = pgm_block(ir, vis, rounds)
    return r2i, i2r


def pclhd(vis, ir, rounds):
    """PCLHD train_sysu.py:985-1034 `PGM(num_cluster_rgb, num_cluster_ir, ...)`: (r2i, i2r) = (a2b, b2a)."""
    a2b, b2a = {}, {}
    cost, num_cols = padded_cost(vis, ir)
    unmatched_row = []
    row_ind, col_ind = linear_sum_assignment(cost)
    for idx, item in enumerate(row_ind):
        if col_ind[idx] < num_cols:
            a2b[row_ind[idx]] = col_ind[idx]
            b2a[col_ind[idx]] = row_ind[idx]
        else:
            unmatched_row.append(row_ind[idx])
    if len(unmatched_row) < num_cols:
        unmatched_cost = cost[unmatched_row][:, :num_cols]
        for row, col in rounds.assign(unmatched_row, unmatched_cost):
            a2b[row] = col
        return a2b, b2a
    unmatched = []
    unmatched_cost = cost[unmatched_row][:, :len(unmatched_row)]  # square: every row assigned
    unmatched_row_ind, unmatched_col_ind = linear_sum_assignment(unmatched_cost)
    for idx, item in enumerate(unmatched_row_ind):
        if unmatched_col_ind[idx] < num_cols:
            a2b[unmatched_row[idx]] = unmatched_col_ind[idx]
            b2a[unmatched_col_ind[idx]] = unmatched_row[idx]
        else:
            unmatched.append(unmatched_row[idx])
    while True:  # the reference's third round, once
        unmatched_cost = cost[unmatched][:, :num_cols]
        for row, col in rounds.assign(unmatched, unmatched_cost):
            a2b[row] = col
            b2a[col] = row
        unmatched = [row for row in unmatched if row not in a2b]
        if not rounds.continued or not unmatched:
            return a2b, b2a


TRANSCRIPTIONS = {"one_sided": one_sided, "symmetric": symmetric, "pclhd": pclhd}
# (Cv, Ci): equal; Cv > Ci with few leftovers; leftovers == Ci, > Ci (PCLHD's else branch, with and without its
# third round leaving rows); Cv > 2 Ci (PGM's second round leaves rows); Ci > Cv (and Ci > 2 Cv); tiny ones
SIZES = [(5, 5), (1, 1), (7, 4), (6, 5), (8, 4), (9, 4), (12, 4), (13, 4), (17, 3), (10, 1), (2, 1), (3, 7), (4, 9),
         (2, 5), (1, 3)]


def centroids(num_vis, num_ir, seed, dim=6):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(num_vis, dim, generator=generator), torch.randn(num_ir, dim, generator=generator)


def as_arrays(r2i, i2r, num_vis, num_ir):
    vis_to_ir, ir_to_vis = np.full(num_vis, -1), np.full(num_ir, -1)
    for v, i in r2i.items():
        vis_to_ir[v] = i
    for i, v in i2r.items():
        ir_to_vis[i] = v
    return vis_to_ir, ir_to_vis


@pytest.mark.parametrize("rule", ["one_sided", "symmetric", "pclhd"])
@pytest.mark.parametrize("num_vis, num_ir", SIZES)
def test_equal_to_the_reference_where_it_defines_a_partner(rule, num_vis, num_ir):
    runs = 0
    for seed in range(4):
        vis, ir = centroids(num_vis, num_ir, seed)
        ours = progressive_graph_matching(vis, ir, rule=rule)
        assert isinstance(ours, ClusterMatching)
        assert ours.vis_to_ir.shape == (num_vis,) and ours.ir_to_vis.shape == (num_ir,)
        if rule == "pclhd" and num_ir > num_vis:
            with pytest.raises(RuntimeError):
                pclhd(vis, ir, Rounds(continued=False))  # torch.zeros(Cv, Cv - Ci) with a negative size
            assert not ours.matched and np.all(ours.vis_to_ir == -1) and np.all(ours.ir_to_vis == -1)
            continue
        verbatim = Rounds(continued=False)
        r2i, i2r = TRANSCRIPTIONS[rule](vis, ir, verbatim)
        assert ours.matched == bool(r2i)
        complete = len(r2i) == num_vis and len(i2r) == num_ir
        if complete or not r2i:  # the reference's trainer runs: every entry equal
            runs += 1
            np.testing.assert_array_equal(ours.vis_to_ir, as_arrays(r2i, i2r, num_vis, num_ir)[0])
            np.testing.assert_array_equal(ours.ir_to_vis, as_arrays(r2i, i2r, num_vis, num_ir)[1])
        else:  # it would raise a KeyError: equal where it set a partner in a round with no more rows than columns
            assert verbatim.truncated_rows
            swapped = rule == "symmetric" and num_ir > num_vis  # the rows are the infrared clusters
            a2b, b2a = (i2r, r2i) if swapped else (r2i, i2r)
            ours_a2b, ours_b2a = (ours.ir_to_vis, ours.vis_to_ir) if swapped else (ours.vis_to_ir, ours.ir_to_vis)
            for a, b in a2b.items():
                if a not in verbatim.truncated_rows:
                    assert ours_a2b[a] == b, (seed, "a2b", a)
            for b, a in b2a.items():
                if b not in verbatim.truncated_cols:
                    assert ours_b2a[b] == a, (seed, "b2a", b)
        # everywhere: ours is the reference's rule with each round's chosen rows, repeated until none is left
        vis_to_ir, ir_to_vis = as_arrays(*TRANSCRIPTIONS[rule](vis, ir, Rounds(continued=True)), num_vis, num_ir)
        np.testing.assert_array_equal(ours.vis_to_ir, vis_to_ir)
        np.testing.assert_array_equal(ours.ir_to_vis, ir_to_vis)


def test_where_the_reference_runs_and_where_it_would_fail():
    """Which sizes leave the reference's dicts incomplete (its trainer then raises a KeyError on the first batch
    holding such a cluster): PGM when Cv - Ci > Ci, PCLHD when Cv - 2 Ci > Ci; the symmetric rule likewise with
    the roles swapped."""
    expected_complete = {
        "one_sided": lambda v, i: v >= i and v - i <= i,
        "symmetric": lambda v, i: max(v, i) - min(v, i) <= min(v, i),
        "pclhd": lambda v, i: v >= i and (v - i < i or v - 2 * i <= i),
    }
    for rule, transcription in TRANSCRIPTIONS.items():
        for num_vis, num_ir in SIZES:
            if rule == "pclhd" and num_ir > num_vis:
                continue
            r2i, i2r = transcription(*centroids(num_vis, num_ir, seed=1), Rounds(continued=False))
            if rule != "symmetric" and num_ir > num_vis:
                assert not r2i and not i2r
                continue
            complete = len(r2i) == num_vis and len(i2r) == num_ir
            assert complete == expected_complete[rule](num_vis, num_ir), (rule, num_vis, num_ir)


@pytest.mark.parametrize("rule", ["one_sided", "symmetric", "pclhd"])
def test_every_cluster_of_the_larger_side_gets_a_partner(rule):
    for num_vis, num_ir in SIZES:
        vis, ir = centroids(num_vis, num_ir, seed=7)
        ours = progressive_graph_matching(vis, ir, rule=rule)
        if num_vis >= num_ir or rule == "symmetric":
            assert np.all(ours.vis_to_ir >= 0) and np.all(ours.ir_to_vis >= 0), (num_vis, num_ir)
            assert np.all(ours.vis_to_ir < num_ir) and np.all(ours.ir_to_vis < num_vis)
            larger, partners = (ours.vis_to_ir, num_ir) if num_vis >= num_ir else (ours.ir_to_vis, num_vis)
            assert set(larger.tolist()) == set(range(partners))  # every column used by some row
        else:
            assert not ours.matched  # one_sided, pclhd: more infrared clusters -> no cross-modal term


def test_the_cases_reach_every_branch():
    """The sizes above exercise the branches the rules differ in: a reference that leaves visible clusters
    unmatched, PCLHD's second padded round, and a pair where PCLHD moves an infrared partner."""
    vis, ir = centroids(13, 4, seed=0)
    r2i, _ = one_sided(vis, ir, Rounds(continued=False))
    assert len(r2i) < 13  # PGM's trainer would raise a KeyError
    moved = 0
    for seed in range(4):
        for num_vis, num_ir in [(8, 4), (9, 4), (12, 4), (17, 3)]:
            vis, ir = centroids(num_vis, num_ir, seed)
            _, i2r_pgm = one_sided(vis, ir, Rounds(continued=False))
            _, i2r_pclhd = pclhd(vis, ir, Rounds(continued=False))
            moved += i2r_pgm != i2r_pclhd
            assert not np.array_equal(progressive_graph_matching(vis, ir, "one_sided").ir_to_vis,
                                      progressive_graph_matching(vis, ir, "pclhd").ir_to_vis)
    assert moved == 16


def test_the_cost_is_the_references():
    vis, ir = centroids(6, 4, seed=3)
    cost, num_cols = padded_cost(vis, ir)
    np.testing.assert_array_equal(matching_cost(vis, ir), cost[:, :num_cols].numpy())


def test_an_unknown_rule_is_refused():
    vis, ir = centroids(3, 2, seed=0)
    with pytest.raises(ValueError, match="unknown matching rule"):
        progressive_graph_matching(vis, ir, rule="greedy")
