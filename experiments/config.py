"""The experiment's config: one file describes the dataset, the translator, the translation, the ReID
recipe and the strategies to compare; the runner derives each tool's own config from it."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from reid.config import (ConfigError, DataConfig, ModelConfig, RuntimeConfig, config_from_dict, config_to_dict,
                         deep_merge, nest)
from reid.methods import METHODS, PHASES, build_method, known_method, method_class, resolve_options
from reid.train_config import AugmentConfig, ClusterConfig, EvalConfig, MethodConfig, ReIDConfig, ReIDTrainConfig
from vi_translate.config import ImageConfig, NetworkConfig, TranslatorConfig, TranslatorTrainConfig


@dataclass(frozen=True)
class Variant:
    """One named ReID recipe: its method (`reid.methods`) with option overrides, dotted `overrides` of the `reid`
    section, and its label in the results table. It trains with the translated views when its method uses them
    in some stage, unless `views` is False."""

    method: str
    label: str
    options: Mapping[str, object] = field(default_factory=dict)
    overrides: Mapping[str, object] = field(default_factory=dict)
    views: bool = True
    trains: bool = True  # False: the start (`model.pretrained`) evaluated as it is, no training on the benchmark

    def __post_init__(self) -> None:
        method_class(self.method)  # a known method

    @property
    def upper_bound(self) -> bool:
        """Trains on the true identities: a bound for the unsupervised methods, not one of them."""
        return self.method == "oracle" and self.trains

    @property
    def kind(self) -> str:
        """Its rows' kind in the results table: "start" (the start alone), "upper_bound" or "strategy"."""
        return "start" if not self.trains else "upper_bound" if self.upper_bound else "strategy"

    def uses_views(self, options: Mapping[str, object] | None = None) -> bool:
        """Whether the variant trains with the translated views (under its options, or `options` when given)."""
        method = build_method(self.method, resolve_options(self.method, dict(self.options if options is None
                                                                              else options)))
        return self.views and any(method.uses_views(phase, True) for phase in PHASES)


NO_VIEW_LOSSES = {"view_weight": 0.0, "cross_view_weight": 0.0}
VARIANTS: dict[str, Variant] = {
    "oracle": Variant("oracle", "upper bound: the true identities, with the translated views"),
    "oracle_labels_only": Variant("oracle", "upper bound: the true identities, labels only (no translated views)",
                                  views=False),
    "oracle_random_start": Variant("oracle", "upper bound, labels only, from a random start (model.pretrained=null)",
                                   views=False, overrides={"model.pretrained": None}),
    "start": Variant("oracle", "the start (model.pretrained) evaluated as it is, before any training on the "
                               "benchmark", views=False, trains=False),
    "cluster_contrast": Variant("cluster_contrast", "cluster-contrast per modality, no cross-modal step"),
    "adca": Variant("adca", "ADCA: cluster-contrast per modality + cross-modality memory aggregation"),
    "pgm": Variant("pgm", "PGM: hard memories + cross-modal loss over progressive graph matching"),
    "pclhd": Variant("pclhd", "PCLHD: hybrid + dynamic prototypes, EMA teacher, PGM matching, mixed clusters"),
    "joint": Variant("joint", "joint: mixed-modal clusters over translated views, view losses"),
    "joint_no_view_losses": Variant("joint", "joint without view losses (translations only place images for "
                                             "clustering)", options=NO_VIEW_LOSSES),
    "joint_no_channel_augment": Variant("joint", "joint without CAJ channel augmentation",
                                        overrides={"augment.caj": False}),
    "joint_channel_augment": Variant("joint", "joint with CAJ channel augmentation", overrides={"augment.caj": True}),
}
# `ablate`: the upper bound, joint, joint without one part at a time, the intra-modality baseline
ABLATION = ("oracle", "joint", "joint_no_view_losses", "joint_no_channel_augment", "cluster_contrast")
# an ablation variant whose change the config already has is replaced by its opposite (see ablation_variants)
OPPOSITES = {"joint_no_channel_augment": "joint_channel_augment"}
METHOD_OPTIONS = "method.options."  # recipe keys that set the variant's method options


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
    strategies: list[str] = field(default_factory=lambda: ["oracle", "cluster_contrast", "joint"])
    # strategy -> {dotted key of the reid section: value}: what one strategy trains differently (e.g. the reference
    # values of its method); method.options.<key> sets an option of its method
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)
    seeds: int = 1  # each strategy is trained with runtime.seed + 0..seeds-1; the data and translation are shared
    chance_draws: int = 10  # draws of random features behind the results table's chance row
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    output_dir: str = "runs/experiments/run"

    def __post_init__(self) -> None:
        for key, names in (("strategies", self.strategies), ("recipes", list(self.recipes))):
            unknown = [name for name in names if not is_strategy(name)]
            if unknown:
                raise ConfigError(f"{key}: unknown strategies {unknown}; choose among {list(VARIANTS)} or a method "
                                  f"registered by a package (entry-point group vireid.methods: {sorted(METHODS)})")
        for strategy in self.recipes:  # every key of a recipe exists, every value has its type
            variant_section(self.reid, strategy, self.recipes)
        for key in ("seeds", "chance_draws"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")


def translator_config(config: ExperimentConfig, run_dir: Path) -> TranslatorConfig:
    """The vi-translate train config of this experiment."""
    section = config.translator
    return TranslatorConfig(data=config.data, image=section.image, model=section.model, train=section.train,
                            runtime=config.runtime, output_dir=str(run_dir / "translator"))


def variant_section(section: ReIDSection, variant: str, recipes: Mapping[str, Mapping[str, Any]]
                    ) -> tuple[ReIDSection, dict]:
    """(the reid section, the method options) of one variant: its `overrides` and then the experiment's recipe for
    it applied to the shared section, its options then the recipe's method.options.* keys. A recipe key that does
    not exist or a value of the wrong type is a ConfigError naming recipes.<variant>.<key>."""
    recipe = variant_of(variant)
    options = dict(recipe.options)
    merged: dict = config_to_dict(section)
    for dotted, value in [*recipe.overrides.items(), *(recipes.get(variant) or {}).items()]:
        if dotted.startswith(METHOD_OPTIONS):
            options[dotted[len(METHOD_OPTIONS):]] = value
        else:
            merged = deep_merge(merged, nest(dotted, value))
    source = f"recipes.{variant}"
    resolve_options(recipe.method, options)  # names a bad method.options key
    try:
        return config_from_dict(ReIDSection, merged, source=source), options
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def reid_config(config: ExperimentConfig, variant: str, run_dir: Path, seed_index: int = 0) -> ReIDConfig:
    """The vireid train config of one strategy variant (`VARIANTS`, with the experiment's recipe for it) and its
    `seed_index`-th seed k: runtime.seed + k, written to reid/<variant>/seed_<k>/; `translated` is set when the
    variant uses the views."""
    section, options = variant_section(config.reid, variant, config.recipes)
    recipe = variant_of(variant)
    return ReIDConfig(data=config.data, method=MethodConfig(recipe.method, options), model=section.model,
                      augment=section.augment, cluster=section.cluster, train=section.train, eval=section.eval,
                      runtime=dataclasses.replace(config.runtime, seed=config.runtime.seed + seed_index),
                      translated=str(run_dir / "translated") if recipe.uses_views(options) else None,
                      output_dir=str(run_dir / "reid" / variant / f"seed_{seed_index}"))


def is_strategy(name: str) -> bool:
    """Whether `name` is a strategy: one of VARIANTS, or a registered method (`variant_of`)."""
    return name in VARIANTS or known_method(name)


def variant_of(strategy: str) -> Variant:
    """The variant a strategy trains: VARIANTS[strategy], or a method registered under that name (a method of your
    own: `reid.methods.register_method`, or a package's entry point in group vireid.methods) trained as it is."""
    if strategy in VARIANTS:
        return VARIANTS[strategy]
    if known_method(strategy):
        return Variant(strategy, f"{strategy}: {METHODS[strategy].summary or 'a registered method'}")
    raise ConfigError(f"unknown strategy {strategy!r}; choose among {list(VARIANTS)} or a registered method")


def ablation_variants(config: ExperimentConfig) -> list[str]:
    """`ABLATION` relative to the config: a variant that would only set what the config already sets (e.g.
    joint_no_channel_augment when channel augmentation is off) is replaced by its opposite in `OPPOSITES`."""
    return [OPPOSITES[name] if name in OPPOSITES and _changes_nothing(config.reid, VARIANTS[name]) else name
            for name in ABLATION]


def _changes_nothing(section: ReIDSection, variant: Variant) -> bool:
    """Whether every override of `variant` is the section's value already."""
    return all(_get_dotted(section, dotted) == value for dotted, value in variant.overrides.items())


def _get_dotted(config, dotted: str):
    for name in dotted.split("."):
        config = getattr(config, name)
    return config

