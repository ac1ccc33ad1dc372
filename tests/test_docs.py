"""README.md and docs/: every relative link resolves (file and anchor), every config key the pages name exists in a
schema, the configuration reference is what experiments/config_reference.py writes from the schemas, and README
stays a front door (at most about 250 lines)."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
import experiments.config_reference as config_reference
from experiments.config import VARIANTS

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
FILE_SUFFIXES = (".py", ".yaml", ".yml", ".json", ".jsonl", ".pt", ".pt2", ".pth", ".md", ".png", ".jpg", ".txt",
                 ".onnx", ".csv", ".html", ".sh", ".cfg", ".toml", ".bmp")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {slug(match) for match in re.findall(r"^#+ (.*)$", text, flags=re.M)}


def test_every_relative_link_resolves_to_a_file_and_its_anchor():
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if re.match(r"^[a-z]+:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page.name}: {target} (no file {resolved})")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{page.name}: {target} (no heading #{anchor} in {resolved.name})")
    assert not broken, "\n".join(broken)


KEYS = [key.split(".") for key in config_reference.config_keys()]
SECTIONS = {key[0] for key in KEYS}


def is_config_key(token: str) -> bool:
    """A key of some schema, or a section holding keys (`train.stages`); `<name>` in a schema key matches any
    segment, and so does `<...>` in the token; `recipes.<strategy>.<key of the reid section>` too."""
    parts = re.sub(r"<[^>]+>", "<>", token).split(".")
    if parts[0] == "recipes":
        return len(parts) >= 2 and parts[1] in (*VARIANTS, "<>") and (
            len(parts) == 2 or is_config_key(".".join(["reid", *parts[2:]])))
    return any(len(parts) <= len(key) and all(ours in (theirs, "<>") or theirs == config_reference.ANY
                                              for ours, theirs in zip(parts, key)) for key in KEYS)


def is_code_path(token: str) -> bool:
    """An importable module, or an attribute path inside one (`reid.cluster.matching`, `reid.train.stages`...)."""
    parts = token.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def named_keys(page: Path) -> list[str]:
    """Dotted config keys in code spans (`train.lr=1e-4` -> train.lr) whose first part is a config section."""
    found = []
    for span in CODE_SPAN.findall(page.read_text()):
        for word in re.split(r"[\s,\[\]()\"']+", span):
            key = word.split("=")[0].rstrip(":;.")
            if re.fullmatch(r"[a-z_]+(\.[a-z_0-9<>]+)+", key) and key.split(".")[0] in SECTIONS \
                    and not key.endswith(FILE_SUFFIXES):
                found.append(key)
    return found


def test_every_config_key_the_docs_name_exists():
    unknown = sorted({f"{page.name}: {key}" for page in PAGES for key in named_keys(page)
                      if not is_config_key(key) and not is_code_path(key)})
    assert not unknown, "\n".join(unknown)


def test_the_key_check_catches_a_misspelt_key():
    assert is_config_key("train.memory_update") and is_config_key("train.stages.cross.lr")
    assert is_config_key("method.options.dynamic_loss") and is_config_key("recipes.pgm.train.momentum")
    assert is_config_key("train.stages") and is_config_key("reid.train.stages.intra.epochs")
    assert not is_config_key("train.memory_updte") and not is_config_key("method.options.dynamic_los")
    assert not is_config_key("recipes.pgm.train.momentun") and not is_code_path("reid.train.nothing_here")


def test_the_configuration_reference_is_current():
    assert (REPO / "docs" / "config-reference.md").read_text() == config_reference.render(), \
        "rerun: python -m experiments.config_reference"


def test_readme_is_a_front_door():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 260, len(lines)
    text = "\n".join(lines)
    for path in ("I have a dataset and a GPU", "I want to compare my method", "I want to use a trained model"):
        assert f"## {path}" in text
    assert "make demo" in text and "make test" in text and "| *chance*" in text


@pytest.mark.parametrize("page", [p.name for p in PAGES])
def test_each_page_has_one_title(page):
    text = re.sub(r"```.*?```", "", (PAGES[[p.name for p in PAGES].index(page)]).read_text(), flags=re.S)
    assert len(re.findall(r"^# ", text, flags=re.M)) == 1
