"""The experiment configs the toolkit ships (experiments/configs/*.yaml, installed with the package), by name."""
from __future__ import annotations

import os
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
CONFIG_HELP = ("experiment YAML file, or the name of a config the toolkit ships (demo, demo_methods, demo_views, "
               "sysu, regdb, llcm: `list` describes them)")


def shipped_configs() -> dict[str, Path]:
    """{name: path} of every shipped experiment config (the YAML files directly under experiments/configs)."""
    return {path.stem: path for path in sorted(CONFIG_DIR.glob("*.yaml"))}


def resolve_config(config: str | os.PathLike) -> Path:
    """A config file: `config` itself when it is a file, else the shipped config of that name (`demo` or
    `demo.yaml`); FileNotFoundError naming both places otherwise."""
    path = Path(config)
    if path.is_file():
        return path
    shipped = shipped_configs()
    name = path.name[:-len(".yaml")] if path.name.endswith(".yaml") and path.parent == Path(".") else str(path)
    if name in shipped:
        return shipped[name]
    raise FileNotFoundError(f"config {config}: no such file, and the toolkit ships no experiment config of that "
                            f"name (shipped: {', '.join(shipped)})")


def describe_shipped_configs() -> str:
    """One line per shipped config: its name and the first line of its leading comment."""
    lines = []
    for name, path in shipped_configs().items():
        first = next((line.lstrip("# ").strip() for line in path.read_text().splitlines() if line.startswith("#")),
                     "")
        lines.append(f"{name:14s} {first}")
    return "\n".join(lines) + f"\n(files in {CONFIG_DIR})"
