"""The configuration reference: docs/config-reference.md written from the config schemas themselves (their fields,
defaults and comments), and every config key the docs may name. `python -m experiments.config_reference` rewrites
the page (from a checkout); tests/test_docs.py fails when the page is not what this writes, or when a page names a
key no schema has. It lives here because only `experiments` may import both `reid` and `vi_translate`.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from pathlib import Path

from reid.methods import METHODS
from reid.pretrain_config import PretrainConfig
from reid.train_config import ReIDConfig
from vi_translate.config import TranslatorConfig

from .config import ExperimentConfig

PAGE = Path(__file__).resolve().parents[1] / "docs" / "config-reference.md"  # in a checkout
SCHEMAS = {  # file read by -> its schema
    "`vireid train CONFIG`": ReIDConfig,
    "`vi-translate train CONFIG`": TranslatorConfig,
    "`vireid experiment run CONFIG` (`python -m experiments run CONFIG`)": ExperimentConfig,
    "`vireid pretrain CONFIG`": PretrainConfig,
}
ANY = "<name>"  # a dict key a user chooses (a stage's name, a strategy's name)


def field_comments(schema: type) -> dict[str, str]:
    """{field: its comment} from the class source. A field's own comment is the `# ...` after it, continued by the
    comment lines below it when the next field has a comment of its own; a comment block followed by fields
    without one describes those fields (`mixed_k1`, `mixed_k2`, `balanced` under one note)."""
    entries = []  # ("field", name, comment) | ("comment", text) | ("other",)
    for line in inspect.getsource(schema).splitlines():
        field = re.match(r"^    (\w+): [^#]*?(?:#\s?(.*))?$", line)
        note = re.match(r"^    #\s?(.*)$", line)
        if field and not line.lstrip().startswith(("def ", "@")):
            entries.append(("field", field.group(1), (field.group(2) or "").strip()))
        elif note:
            entries.append(("comment", note.group(1).strip()))
        else:
            entries.append(("other",))
    comments: dict[str, str] = {}
    index = 0
    while index < len(entries):
        entry = entries[index]
        if entry[0] == "field":
            comments[entry[1]] = entry[2]
        if entry[0] == "comment":
            block = []
            while index < len(entries) and entries[index][0] == "comment":
                block.append(entries[index][1])
                index += 1
            text = " ".join(block)
            following = entries[index] if index < len(entries) else ("other",)
            previous = entries[index - len(block) - 1] if index - len(block) >= 1 else ("other",)
            if following[0] == "field" and not following[2]:  # a note over the fields without their own comment
                while index < len(entries) and entries[index][0] == "field" and not entries[index][2]:
                    comments[entries[index][1]] = text
                    index += 1
                continue
            if previous[0] == "field":
                comments[previous[1]] = f"{comments[previous[1]]} {text}".strip()
            continue
        index += 1
    return comments


def nested_schema(annotation) -> tuple[type | None, bool]:
    """(the dataclass a field holds, whether it sits under a dict of user-chosen names), or (None, False)."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is dict and arguments and dataclasses.is_dataclass(arguments[-1]):
        return arguments[-1], True
    if origin is typing.Union:
        inner = [argument for argument in arguments if argument is not type(None)]
        return nested_schema(inner[0]) if len(inner) == 1 else (None, False)
    return (annotation, False) if dataclasses.is_dataclass(annotation) else (None, False)


def rows(schema: type, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(dotted key, type, default, comment) of every leaf key of `schema`."""
    hints, comments, found = typing.get_type_hints(schema), field_comments(schema), []
    for field in dataclasses.fields(schema):
        key = f"{prefix}{field.name}"
        inner, under_names = nested_schema(hints[field.name])
        if inner is not None:
            found += rows(inner, f"{key}.{ANY}." if under_names else f"{key}.")
            continue
        if field.default is not dataclasses.MISSING:
            default = repr(field.default)
        elif field.default_factory is not dataclasses.MISSING:
            default = repr(field.default_factory())
        else:
            default = "(required)"
        type_name = re.sub(r"typing\.|<class '(\w+)'>", r"\1", str(hints[field.name]))
        found.append((key, type_name, default, comments.get(field.name, "")))
    return found


def method_rows() -> list[tuple[str, str, str, str]]:
    """`method.options.<key>` of every registered method, named per method."""
    found = []
    for name, method in sorted(METHODS.items()):
        for key, type_name, default, comment in rows(method.Options):
            found.append((f"method.options.{key}", type_name, default, f"({name}) {comment}".strip()))
    return found


def config_keys() -> set[str]:
    """Every dotted key of every schema (dict keys users choose as `<name>`), the method options included."""
    keys = {key for schema in SCHEMAS.values() for key, *_ in rows(schema)}
    keys |= {key for key, *_ in method_rows()}
    keys |= {f"reid.{key}" for key in keys if key.startswith("method.options.")}
    return keys


def render() -> str:
    def table(entries) -> list[str]:
        lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
        for key, type_name, default, comment in entries:
            lines.append(f"| `{key}` | {type_name} | `{default}` | {comment.replace('|', '/')} |")
        return lines

    out = ["# Configuration reference", "",
           "Every key of every config file, with its type, default and meaning, written from the schemas by "
           "`python -m experiments.config_reference` (a test checks this page is current). A config is a YAML file "
           "(it may start with `_base_: other.yaml`), and any key may be overridden on the command line as "
           "`dotted.key=value`; an unknown key or a wrong type is an error naming the key. `<name>` stands for a "
           "name you choose (a stage, a strategy). How configs, overrides and checkpoints work: "
           "[Configuration](configuration.md).", ""]
    for reader, schema in SCHEMAS.items():
        out += [f"## {reader}", ""] + table(rows(schema)) + [""]
    out += ["## `method.options` of each method", "",
            "In `vireid train` configs under `method.options`, in experiment configs under `recipes.<strategy>` as "
            "`method.options.<key>`.", ""] + table(method_rows()) + [""]
    return "\n".join(out)


if __name__ == "__main__":
    PAGE.write_text(render())
    print(f"written: {PAGE}")
