"""Typed configs: dataclass schemas as OmegaConf structured configs, YAML files with `_base_`,
dotted `key=value` overrides, and errors that name the offending key.

    cfg = load_config(TrainConfig, "configs/sysu.yaml", ["train.lr=1e-4", "data.root=/data/SYSU"])

A YAML file may start with `_base_: other.yaml` (or a list of files), resolved relative to the
file; the file's own keys are merged over its bases, dictionaries key by key, lists replaced whole.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, TypeVar

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")
BASE_KEY = "_base_"
CONFIG_FILENAME = "config.yaml"


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the key and where it came from."""


# --------------------------------------------------------------------------- shared schema pieces


@dataclass
class DataConfig:
    """Which dataset to read. `name`: sysu | regdb | llcm | synthetic | folder (own footage: vis/ and ir/, no ids).

    num_ids, seed, images_per_camera, test_fraction, val_fraction: synthetic only, the generator's options
    (`make_synthetic_sysu`): used when `root` holds no complete tree yet, checked against the tree's record when it
    does; None: the generator's default / whatever the tree has."""

    name: str = "synthetic"  # sysu | regdb | llcm | synthetic | folder
    root: str = "data/synthetic"  # the dataset's folder (synthetic: generated there when absent)
    trial: int = 1  # RegDB split 1..10; ignored elsewhere
    num_ids: Optional[int] = None  # synthetic: identities (generator default 60)
    seed: Optional[int] = None  # synthetic: the generator's seed (default 0)
    images_per_camera: Optional[int] = None  # synthetic: each (id, camera) gets this many images, +-1 (default 4)
    test_fraction: Optional[float] = None  # synthetic: share of the ids in exp/test_id.txt (default 0.3)
    val_fraction: Optional[float] = None  # synthetic: share of the ids in exp/val_id.txt (default 0.1)
    evaluate_on: str = "test"  # test | val (sysu / synthetic: train on train_id.txt, evaluate on the val ids)

    def __post_init__(self) -> None:
        check_choice("data.evaluate_on", self.evaluate_on, ("test", "val"))


@dataclass
class RuntimeConfig:
    """Where and how a job runs."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = 0
    workers: int = 2  # DataLoader worker processes
    bf16: bool = True  # bf16 autocast, CUDA only
    channels_last: bool = True  # channels_last memory format, CUDA only
    log_level: str = "INFO"
    # TensorBoard event files in OUTPUT_DIR/tensorboard/ when the tensorboard package is installed (`reid.tensorboard`)
    tensorboard: bool = True

    def __post_init__(self) -> None:
        check_choice("runtime.log_level", self.log_level, ("DEBUG", "INFO", "WARNING", "ERROR"))
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"runtime.device: expected auto, cpu, cuda or cuda:N, got {self.device!r}")


@dataclass
class ModelConfig:
    """The ReID network and its input size (`reid.models.build_model` arguments)."""

    arch: str = "agw_resnet50"  # agw_resnet50 | resnet50 | resnet18 | small | tiny
    non_local: Optional[bool] = None  # None: the architecture's default (on for agw_resnet50)
    # None | "imagenet" (torch hub cache) | "synthetic-visible" (the start shipped for `small`) | a path to a
    # torchvision ResNet .pth or a `vireid pretrain` backbone file
    pretrained: Optional[str] = None
    gem_p: float = 3.0
    height: int = 288
    width: int = 144


def check_choice(key: str, value: Any, choices: Sequence[Any]) -> None:
    """Raise ConfigError naming `key` when `value` is not one of `choices`."""
    if value not in choices:
        raise ConfigError(f"{key}: expected one of {list(choices)}, got {value!r}")


def check_positive(section: str, config: Any, keys: Sequence[str]) -> None:
    """Raise ConfigError naming `section.key` for the first of `keys` whose value is below 1."""
    for key in keys:
        value = getattr(config, key)
        if value < 1:
            raise ConfigError(f"{section}.{key} must be >= 1, got {value}")


# --------------------------------------------------------------------------- loading


def load_config(schema: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Build a `schema` instance from its defaults, a YAML file (with `_base_`) and `key=value` overrides.

    Unknown keys raise ConfigError with a close-match suggestion; values of the wrong type raise
    ConfigError naming the key, the expected type and the given value.
    """
    config = OmegaConf.structured(schema)
    if path is not None:
        _merge_checked(config, read_yaml_with_bases(path), schema, source=str(path))
    for override in overrides:
        _merge_checked(config, parse_override(override), schema, source=f"override {override!r}")
    try:
        return OmegaConf.to_object(config)
    except OmegaConfBaseException as error:
        raise ConfigError(_describe_omegaconf_error(error, schema, "config")) from None


def config_from_dict(schema: type[T], data: dict, source: str = "dict", prefix: str = "") -> T:
    """A `schema` instance from a plain dict (e.g. a checkpoint's saved config section), checked like a file.
    prefix: where the dict sits in a larger config (e.g. "method.options."), for the keys errors name."""
    config = OmegaConf.structured(schema)
    _merge_checked(config, dict(data), schema, source=source, prefix=prefix)
    try:
        return OmegaConf.to_object(config)
    except OmegaConfBaseException as error:
        raise ConfigError(_describe_omegaconf_error(error, schema, source, prefix)) from None


def parse_override(text: str) -> dict:
    """Turn `a.b.c=value` into {"a": {"b": {"c": value}}}, the value parsed as YAML (`1e-4`, `[1, 2]`, `null`)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: expected dotted.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({error})") from None
    return nest(key, value)


def nest(dotted: str, value: Any) -> dict:
    """`a.b.c`, value -> {"a": {"b": {"c": value}}}."""
    nested: dict = {}
    cursor = nested
    parts = dotted.split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return nested


def read_yaml_with_bases(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict:
    """Read a YAML mapping, merging it over the files named by its `_base_` key (recursively)."""
    path = Path(path).expanduser().resolve()
    if path in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, path))
        raise ConfigError(f"config files include each other in a cycle: {cycle}")
    if not path.is_file():
        where = f" (named in _base_ of {_chain[-1]})" if _chain else ""
        raise ConfigError(f"config file not found: {path}{where}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, not {type(data).__name__}")
    bases = data.pop(BASE_KEY, [])
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"config file {path}: _base_ must be a file name or a list of file names")
    merged: dict = {}
    for base in bases:
        merged = deep_merge(merged, read_yaml_with_bases(path.parent / base, (*_chain, path)))
    return deep_merge(merged, data)


def deep_merge(base: dict, update: dict) -> dict:
    """Return `base` updated by `update`: nested dicts merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _merge_checked(config: DictConfig, update: dict, schema: type, source: str, prefix: str = "") -> None:
    """Merge `update` into `config` after checking every key exists in `schema` (keys named with `prefix`)."""
    _check_keys(update, schema, prefix=prefix, source=source)
    try:
        config.merge_with(update)
    except OmegaConfBaseException as error:
        raise ConfigError(f"{source}: {_describe_omegaconf_error(error, schema, source, prefix)}") from None


def _check_keys(update: dict, schema: type, prefix: str, source: str) -> None:
    """Raise ConfigError for the first key of `update` that `schema` does not define (keys named `prefix`key)."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key, value in update.items():
        full_key = f"{prefix}{key}"
        if key not in fields:
            candidates = [f"{prefix}{name}" for name in fields]
            close = difflib.get_close_matches(full_key, candidates, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys here: {sorted(fields)}"
            raise ConfigError(f"{source}: unknown config key {full_key!r}{hint}")
        value_schema = _mapping_value_type(fields[key], schema)
        if value_schema is not None and isinstance(value, dict):  # a mapping of sections, e.g. train.stages
            for name, section in value.items():
                if isinstance(section, dict):
                    _check_keys(section, value_schema, prefix=f"{full_key}.{name}.", source=source)
            continue
        sub_schema = _dataclass_type(fields[key], schema)
        if sub_schema is None:
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: config key {full_key!r} is a section ({sub_schema.__name__}), "
                              f"not a value; set its keys instead, e.g. {full_key}.{dataclasses.fields(sub_schema)[0].name}=...")
        _check_keys(value, sub_schema, prefix=f"{full_key}.", source=source)


def _dataclass_type(schema_field: dataclasses.Field, owner: type) -> type | None:
    """The dataclass type of a field, or None when the field is a plain value."""
    hint = typing.get_type_hints(owner).get(schema_field.name)
    return hint if dataclasses.is_dataclass(hint) else None


def _mapping_value_type(schema_field: dataclasses.Field, owner: type) -> type | None:
    """The value type of a `dict[str, Dataclass]` field, or None for any other field."""
    hint = typing.get_type_hints(owner).get(schema_field.name)
    arguments = typing.get_args(hint) if typing.get_origin(hint) is dict else ()
    return arguments[1] if len(arguments) == 2 and dataclasses.is_dataclass(arguments[1]) else None


def _expected_type(schema: type, dotted_key: str) -> str:
    """Human-readable annotation of `dotted_key` in `schema` (e.g. 'float', 'list[int]')."""
    owner = schema
    parts = re.sub(r"\[\d+\]", "", dotted_key).split(".")
    for part in parts[:-1]:
        hints = typing.get_type_hints(owner)
        if part not in hints or not dataclasses.is_dataclass(hints[part]):
            return "?"
        owner = hints[part]
    hint = typing.get_type_hints(owner).get(parts[-1])
    if hint is None:
        return "?"
    if typing.get_origin(hint) is not None:
        return str(hint).replace("typing.", "")
    return getattr(hint, "__name__", str(hint))


def _describe_omegaconf_error(error: OmegaConfBaseException, schema: type, source: str, prefix: str = "") -> str:
    """Rewrite an OmegaConf error as 'key: expected TYPE, got VALUE' (the key named with `prefix`)."""
    key = getattr(error, "full_key", None)
    value = getattr(error, "value", None) if hasattr(error, "value") else None
    message = str(error).splitlines()[0]
    if key:
        given = repr(value) if value is not None else message
        return f"config key {prefix + key!r}: expected {_expected_type(schema, key)}, got {given} ({message})"
    return message


# --------------------------------------------------------------------------- saving


def config_to_dict(config: Any) -> dict:
    """A plain dict of a config dataclass instance (for checkpoints and JSON)."""
    return OmegaConf.to_container(OmegaConf.structured(config), resolve=True)


def save_config(config: Any, run_dir: str | Path, filename: str = CONFIG_FILENAME) -> Path:
    """Write the resolved config as YAML beside a run's outputs; return the file path."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / filename
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    tmp.replace(path)
    return path


__all__ = [
    "ConfigError", "DataConfig", "RuntimeConfig", "ModelConfig", "check_choice", "check_positive", "load_config", "config_from_dict", "parse_override", "nest",
    "read_yaml_with_bases", "deep_merge", "config_to_dict", "save_config",
]
