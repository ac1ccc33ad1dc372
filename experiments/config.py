"""The experiment's config: one file describes the dataset, the translator, the translation, the ReID
recipe and the strategies to compare; the runner derives each tool's own config from it."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from reid.config import ConfigError, DataConfig, ModelConfig, RuntimeConfig
from reid.train import VIEW_LABELS
from reid.train_config import AugmentConfig, ClusterConfig, EvalConfig, ReIDConfig, ReIDTrainConfig, StageConfig
from vi_translate.config import ImageConfig, NetworkConfig, TranslatorConfig, TranslatorTrainConfig


@dataclass(frozen=True)
class Variant:
    """One named ReID recipe on the config's stages: the pseudo-labels of its cross-modal stages (every stage after
    the first) and of its first stage, dotted `overrides` of the `reid` section, `stage_overrides` of every
    cross-modal stage, whether it trains with the translated views (`views`), and its label in the results table."""

    labels: str
    views: bool
    label: str
    first_stage_labels: str = "per_modality"
    overrides: Mapping[str, object] = field(default_factory=dict)
    stage_overrides: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.views and self.labels not in VIEW_LABELS:
            raise ValueError(f"pseudo-labels {self.labels!r} cannot train with the translated views "
                             f"(those that can: {VIEW_LABELS})")

    @property
    def upper_bound(self) -> bool:
        """Trains on the true identities: a bound for the unsupervised strategies, not one of them."""
        return self.labels == "true_ids"


NO_VIEW_LOSSES = {"view_weight": 0.0, "cross_view_weight": 0.0}
VARIANTS: dict[str, Variant] = {
    "oracle": Variant("true_ids", True, "upper bound: uses the true identities", first_stage_labels="true_ids"),
    "oracle_labels_only": Variant("true_ids", False, "upper bound, labels only (no translated views)",
                                  first_stage_labels="true_ids"),
    "joint": Variant("mixed_modal", True, "joint: mixed-modal clusters over translated views, view losses"),
    "joint_no_view_losses": Variant("mixed_modal", True,
                                    "joint without view losses (translations only place images for clustering)",
                                    stage_overrides=NO_VIEW_LOSSES),
    "joint_no_channel_augment": Variant("mixed_modal", True, "joint without CAJ channel augmentation",
                                        overrides={"augment.caj": False}),
    "joint_channel_augment": Variant("mixed_modal", True, "joint with CAJ channel augmentation",
                                     overrides={"augment.caj": True}),
    "per_modality_hungarian": Variant("hungarian", False, "per-modality clusters matched by Hungarian association"),
    "none": Variant("per_modality", False, "per-modality clusters, no cross-modal step"),
}
# `ablate`: the upper bound, joint, joint without one part at a time, the baselines
ABLATION = ("oracle", "joint", "joint_no_view_losses", "joint_no_channel_augment", "per_modality_hungarian", "none")
# an ablation variant whose change the config already has is replaced by its opposite (see ablation_variants)
OPPOSITES = {"joint_no_channel_augment": "joint_channel_augment"}


@dataclass
class TranslatorSection:
    """Train a translator with these settings, or use `checkpoint` (a vi-translate train checkpoint)."""

    checkpoint: Optional[str] = None
    image: ImageConfig = field(default_factory=ImageConfig)
    model: NetworkConfig = field(default_factory=NetworkConfig)
    train: TranslatorTrainConfig = field(default_factory=TranslatorTrainConfig)


@dataclass
class TranslateSection:
    """How the dataset is translated (vi-translate translate)."""

    split: str = "train"  # train | all
    batch_size: int = 16


@dataclass
class ReIDSection:
    """The ReID recipe shared by every strategy (`vireid train`'s sections)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    train: ReIDTrainConfig = field(default_factory=ReIDTrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


@dataclass
class ExperimentConfig:
    """Everything `python -m experiments run CONFIG` reads."""

    data: DataConfig = field(default_factory=DataConfig)
    translator: TranslatorSection = field(default_factory=TranslatorSection)
    translate: TranslateSection = field(default_factory=TranslateSection)
    reid: ReIDSection = field(default_factory=ReIDSection)
    strategies: list[str] = field(default_factory=lambda: ["joint", "per_modality_hungarian"])
    seeds: int = 1  # each strategy is trained with runtime.seed + 0..seeds-1; the data and translation are shared
    chance_draws: int = 10  # draws of random features behind the results table's chance row
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    output_dir: str = "runs/experiments/run"

    def __post_init__(self) -> None:
        unknown = [name for name in self.strategies if name not in VARIANTS]
        if unknown:
            raise ConfigError(f"strategies: unknown {unknown}; choose among {list(VARIANTS)}")
        for key in ("seeds", "chance_draws"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")


def translator_config(config: ExperimentConfig, run_dir: Path) -> TranslatorConfig:
    """The vi-translate train config of this experiment."""
    section = config.translator
    return TranslatorConfig(data=config.data, image=section.image, model=section.model, train=section.train,
                            runtime=config.runtime, output_dir=str(run_dir / "translator"))


def reid_config(config: ExperimentConfig, variant: str, run_dir: Path, seed_index: int = 0) -> ReIDConfig:
    """The vireid train config of one strategy variant (`VARIANTS`) and its `seed_index`-th seed k:
    runtime.seed + k, written to reid/<variant>/seed_<k>/; `translated` is set when the variant uses the views."""
    section, recipe = config.reid, VARIANTS[variant]
    reid = ReIDConfig(data=config.data, model=section.model, augment=section.augment, cluster=section.cluster,
                      train=section.train, eval=section.eval,
                      runtime=dataclasses.replace(config.runtime, seed=config.runtime.seed + seed_index),
                      translated=str(run_dir / "translated") if recipe.views else None,
                      output_dir=str(run_dir / "reid" / variant / f"seed_{seed_index}"))
    for dotted, value in recipe.overrides.items():
        reid = _replace_dotted(reid, dotted, value)
    return dataclasses.replace(reid, train=dataclasses.replace(reid.train, stages=variant_stages(reid.train.stages,
                                                                                              recipe)))


def variant_stages(stages: Mapping[str, StageConfig], variant: Variant) -> dict[str, StageConfig]:
    """The stages with a variant's pseudo-labels: `first_stage_labels` for the first, `labels` (and
    `stage_overrides`) for every later one."""
    first = next(iter(stages))
    return {name: dataclasses.replace(stage, labels=variant.first_stage_labels) if name == first
            else dataclasses.replace(stage, labels=variant.labels, **variant.stage_overrides)
            for name, stage in stages.items()}


def ablation_variants(config: ExperimentConfig) -> list[str]:
    """`ABLATION` relative to the config: a variant that would only set what the config already sets (e.g.
    joint_no_channel_augment when channel augmentation is off) is replaced by its opposite in `OPPOSITES`."""
    return [OPPOSITES[name] if name in OPPOSITES and _changes_nothing(config.reid, VARIANTS[name]) else name
            for name in ABLATION]


def _changes_nothing(section: ReIDSection, variant: Variant) -> bool:
    """Whether every override of `variant` (but its pseudo-labels) is the section's value already."""
    cross_stages = list(section.train.stages.values())[1:]
    return (all(_get_dotted(section, dotted) == value for dotted, value in variant.overrides.items())
            and all(getattr(stage, key) == value for stage in cross_stages
                    for key, value in variant.stage_overrides.items()))


def _get_dotted(config, dotted: str):
    for name in dotted.split("."):
        config = getattr(config, name)
    return config


def _replace_dotted(config, dotted: str, value):
    """A copy of a dataclass tree with `a.b` set to value."""
    head, _, rest = dotted.partition(".")
    if not rest:
        return dataclasses.replace(config, **{head: value})
    return dataclasses.replace(config, **{head: _replace_dotted(getattr(config, head), rest, value)})
