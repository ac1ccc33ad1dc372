"""The field's methods, each one small module that composes shared parts (`reid.pseudo_labels`, `reid.memories`,
`reid.cluster.matching`, `parts.py`) into its rules per phase; `reid.train` runs any of them and names none.

Adding a method: a module with a `Method` subclass (its `name`, `Options` dataclass, `pseudo_labels` and `plan`),
then `register_method(TheClass)` below, or from your own code before training, or, for the command lines, an entry
point of your package in the group `vireid.methods` (`my_method = my_package.my_module:MyMethod`), which
`method_class` loads when a config names a method it does not know yet.
"""
from __future__ import annotations

import dataclasses
from importlib.metadata import entry_points

from ..config import ConfigError, config_from_dict
from .adca import ADCA
from .base import (PHASES, EpochContext, EpochPlan, Method, Objective, StepBatch, TrainingPass, phase_of)
from .cluster_contrast import ClusterContrast
from .joint import Joint
from .oracle import Oracle
from .pclhd import PCLHD
from .pgm import PGM

METHODS: dict[str, type[Method]] = {}
METHOD_GROUP = "vireid.methods"  # entry points of installed packages: name = module:MethodClass


def register_method(method: type[Method]) -> type[Method]:
    """Make `method` selectable by its name (method.name=...); returns it (usable as a class decorator)."""
    if not (isinstance(method, type) and issubclass(method, Method)) or not getattr(method, "name", None):
        raise TypeError(f"a method must be a Method subclass with a name, got {method!r}")
    METHODS[method.name] = method
    return method


for _method in (ClusterContrast, ADCA, PGM, PCLHD, Joint, Oracle):
    register_method(_method)


def known_method(name: str) -> bool:
    """Whether a method of that name is registered, loading the installed packages' methods (entry points of group
    `vireid.methods`) when it is not yet."""
    if name not in METHODS:
        for entry in entry_points(group=METHOD_GROUP):
            if entry.name == name:
                register_method(entry.load())
    return name in METHODS


def method_class(name: str) -> type[Method]:
    if not known_method(name):
        raise ConfigError(f"method.name: expected one of {sorted(METHODS)}, got {name!r}")
    return METHODS[name]


def resolve_options(name: str, options: dict) -> dict:
    """`options` of method `name` checked against its Options dataclass and filled with its defaults (a plain dict);
    an unknown key or a wrong value is a ConfigError naming method.options.<key>."""
    schema = method_class(name).Options
    return dataclasses.asdict(config_from_dict(schema, dict(options), source=f"method {name!r}",
                                               prefix="method.options."))


def build_method(name: str, options: dict) -> Method:
    """The method `name` with its options (a dict as `resolve_options` returns)."""
    cls = method_class(name)
    return cls(config_from_dict(cls.Options, dict(options), source=f"method {name!r}", prefix="method.options."))


__all__ = ["METHODS", "register_method", "known_method", "method_class", "resolve_options", "build_method", "Method",
           "EpochContext",
           "EpochPlan", "TrainingPass", "Objective", "StepBatch", "PHASES", "phase_of"]
