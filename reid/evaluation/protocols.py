"""Protocol runners: every evaluation setting of a dataset, averaged over its trials.

SYSU-MM01: `all` and `indoor` search, single-shot and multi-shot (10 images), 10 gallery trials each;
RegDB: both directions of the loaded trial; LLCM: both directions, 10 gallery trials each.
Features of every image are computed once (queries are shared across trials) and distances are
negative cosine similarities of L2-normalised features, or k-reciprocal re-ranked distances.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Union

import numpy as np
import torch

from reid.cluster.neighbors import l2_normalize
from reid.data import Record, VIDataset
from reid.features import FeatureSet

from .ranking import RankingResult, evaluate_ranking
from .rerank import rerank_distances

logger = logging.getLogger(__name__)

FeatureSource = Union[FeatureSet, Callable[[list[Record]], torch.Tensor]]
METRICS = ("R1", "R5", "R10", "R20", "mAP", "mINP")
NUM_TRIALS = 10


def protocol_settings(dataset: VIDataset, trials: int = NUM_TRIALS) -> dict[str, list[dict]]:
    """Setting name -> the `test_split` arguments of each of its trials (ValueError for a dataset without
    identities, which has no test protocol)."""
    if not dataset.has_identities:
        raise ValueError(f"dataset {dataset.name!r} at {dataset.root} has no identities, so no test protocol: "
                         f"evaluation needs a labelled dataset (sysu, regdb, llcm, synthetic)")
    if dataset.name == "sysu":
        return {f"{mode}-{shot_name}": [{"mode": mode, "trial": t, "shots": shots} for t in range(trials)]
                for mode in ("all", "indoor") for shot_name, shots in (("single", 1), ("multi", 10))}
    if dataset.name == "regdb":
        return {direction: [{"direction": direction}] for direction in ("v2t", "t2v")}
    if dataset.name == "llcm":
        return {direction: [{"direction": direction, "trial": t} for t in range(trials)] for direction in ("v2i", "i2v")}
    raise ValueError(f"no evaluation protocol is defined for dataset {dataset.name!r}")


@dataclass
class SettingResult:
    """One setting's trials and their mean."""

    name: str
    trials: list[RankingResult]

    def mean(self) -> dict:
        """Each metric averaged over the trials (fractions), as the published tables do."""
        per_trial = [trial.as_dict() for trial in self.trials]
        return {metric: float(np.mean([t[metric] for t in per_trial])) for metric in METRICS} | \
            {"num_trials": len(self.trials)}


@dataclass
class ProtocolResult:
    """Results of every evaluated setting of one dataset."""

    dataset: str
    settings: dict[str, SettingResult] = field(default_factory=dict)
    rerank: bool = False

    def as_dict(self) -> dict:
        return {"dataset": self.dataset, "rerank": self.rerank,
                "settings": {name: {"mean": result.mean(), "trials": [t.as_dict() for t in result.trials]}
                             for name, result in self.settings.items()}}

    def table(self) -> str:
        """A Markdown table of the means, in percent."""
        lines = ["| setting | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 1) + "|"]
        for name, result in self.settings.items():
            mean = result.mean()
            lines.append(f"| {name} | " + " | ".join(f"{100 * mean[m]:.2f}" for m in METRICS) + " |")
        return "\n".join(lines)


def evaluate_protocol(features: FeatureSource, dataset: VIDataset, *, settings: list[str] | None = None,
                      trials: int = NUM_TRIALS, rerank: bool = False, rerank_options: dict | None = None,
                      max_rank: int = 20) -> ProtocolResult:
    """Evaluate `features` on every setting (or the named `settings`) of `dataset`'s protocol.

    features: a FeatureSet holding every test image, or a function records -> [N, D] features that
    is called once on all the distinct images the settings need.
    """
    available = protocol_settings(dataset, trials)
    chosen = list(available) if settings is None else settings
    unknown = [name for name in chosen if name not in available]
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown} for {dataset.name}: expected some of {list(available)}")
    splits = {name: [dataset.test_split(**arguments) for arguments in available[name]] for name in chosen}
    images, row_of = _distinct_images(splits)
    all_features = l2_normalize(_features_of(features, images))
    result = ProtocolResult(dataset=dataset.name, rerank=rerank)
    for name, trial_splits in splits.items():
        trial_results = [_evaluate_split(all_features, row_of, query, gallery, dataset.name, rerank,
                                         rerank_options or {}, max_rank) for query, gallery in trial_splits]
        result.settings[name] = SettingResult(name, trial_results)
        logger.info("%s %s: %s", dataset.name, name, {k: round(100 * v, 2) for k, v in result.settings[name].mean().items()
                                                       if k in METRICS})
    return result


def _distinct_images(splits: dict[str, list[tuple[list[Record], list[Record]]]]) -> tuple[list[Record], dict[str, int]]:
    """Every distinct image (by path) the splits use, in order of first use, and its row."""
    images: list[Record] = []
    row_of: dict[str, int] = {}
    for trial_splits in splits.values():
        for query, gallery in trial_splits:
            for record in (*query, *gallery):
                if record.path not in row_of:
                    row_of[record.path] = len(images)
                    images.append(record)
    return images, row_of


def _features_of(source: FeatureSource, images: list[Record]) -> torch.Tensor:
    features = source.lookup(images) if isinstance(source, FeatureSet) else source(images)
    features = torch.as_tensor(features)
    if features.ndim != 2 or features.shape[0] != len(images):
        raise ValueError(f"the feature source returned shape {tuple(features.shape)} for {len(images)} images")
    return features


def _evaluate_split(features: torch.Tensor, row_of: dict[str, int], query: list[Record], gallery: list[Record],
                    protocol: str, rerank: bool, rerank_options: dict, max_rank: int) -> RankingResult:
    query_features = features[[row_of[r.path] for r in query]]
    gallery_features = features[[row_of[r.path] for r in gallery]]
    if rerank:
        distmat = rerank_distances(query_features, gallery_features, **rerank_options)
    else:
        distmat = -(query_features @ gallery_features.T).numpy()
    return evaluate_ranking(distmat, np.array([r.pid for r in query]), np.array([r.pid for r in gallery]),
                            np.array([r.camid for r in query]), np.array([r.camid for r in gallery]),
                            protocol=protocol, max_rank=max_rank)
