"""The experiment's config: one file describes the dataset, the translator, the translation, the ReID
recipe and the strategies to compare; the runner derives each tool's own config from it."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from reid.config import ConfigError, DataConfig, ModelConfig, RuntimeConfig
from reid.train_config import AugmentConfig, ClusterConfig, EvalConfig, ReIDConfig, ReIDTrainConfig
from vi_translate.config import ImageConfig, NetworkConfig, TranslatorConfig, TranslatorTrainConfig

# Named variants of the ReID recipe: dotted overrides applied to the `reid` section.
VARIANTS: dict[str, dict[str, object]] = {
    "none": {"train.strategy": "none"},
    "per_modality_hungarian": {"train.strategy": "per_modality_hungarian"},
    "channel_augment": {"train.strategy": "none", "augment.channel_augment": True},
    "joint": {"train.strategy": "joint"},
}
ABLATION = ("none", "per_modality_hungarian", "channel_augment", "joint")


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
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    output_dir: str = "runs/experiments/run"

    def __post_init__(self) -> None:
        unknown = [name for name in self.strategies if name not in VARIANTS]
        if unknown:
            raise ConfigError(f"strategies: unknown {unknown}; choose among {list(VARIANTS)}")


def translator_config(config: ExperimentConfig, run_dir: Path) -> TranslatorConfig:
    """The vi-translate train config of this experiment."""
    section = config.translator
    return TranslatorConfig(data=config.data, image=section.image, model=section.model, train=section.train,
                            runtime=config.runtime, output_dir=str(run_dir / "translator"))


def reid_config(config: ExperimentConfig, variant: str, run_dir: Path) -> ReIDConfig:
    """The vireid train config of one strategy variant (`VARIANTS`)."""
    section = config.reid
    reid = ReIDConfig(data=config.data, model=section.model, augment=section.augment, cluster=section.cluster,
                      train=section.train, eval=section.eval, runtime=config.runtime,
                      output_dir=str(run_dir / "reid" / variant))
    for dotted, value in VARIANTS[variant].items():
        reid = _replace_dotted(reid, dotted, value)
    uses_views = reid.train.strategy == "joint"
    return dataclasses.replace(reid, translated=str(run_dir / "translated") if uses_views else None)


def _replace_dotted(config, dotted: str, value):
    """A copy of a dataclass tree with `a.b` set to value."""
    head, _, rest = dotted.partition(".")
    if not rest:
        return dataclasses.replace(config, **{head: value})
    return dataclasses.replace(config, **{head: _replace_dotted(getattr(config, head), rest, value)})
