"""docs/configuration.md is the complete configuration reference, and its examples are valid.

The key paths come from the pydantic models themselves, so a key added to the code without
a line in the docs fails here; so does a documented key or default the code no longer has,
and a YAML example that `spillgate config check` would refuse.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from spillgate.server.config import Config, load

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
DOC_TEXT = DOC.read_text()

#: The variables the examples reference without a default; the docs' placeholders.
EXAMPLE_ENV = {
    "OPENAI_API_KEY": "sk-docs-example-openai",
    "GROQ_API_KEY": "gsk-docs-example",
    "ANTHROPIC_API_KEY": "sk-ant-docs-example",
    "GEMINI_API_KEY": "docs-example-gemini",
    "SPILLGATE_ADMIN_TOKEN": "docs-example-admin-token",
}

#: How a map's key appears in a path: `providers[].prices.<model>.input`.
_MAP_KEY = "<key>"


def config_paths(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, FieldInfo]]:
    """Every key path the YAML accepts under `model`, with its field: `engines[].name`, ..."""
    for name, field in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        yield path, field
        yield from _nested_paths(field.annotation, path)


def _nested_paths(annotation: Any, path: str) -> Iterator[tuple[str, FieldInfo]]:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield from config_paths(annotation, path)
    elif origin is list:
        yield from _nested_paths(args[0], f"{path}[]")
    elif origin is dict:
        yield from _nested_paths(args[1], f"{path}.{_MAP_KEY}")
    elif origin in (typing.Union, types.UnionType):  # `X | None`
        for arg in args:
            yield from _nested_paths(arg, path)


CONFIG_KEYS = dict(config_paths(Config))


def _normalised(path: str) -> str:
    """The docs name a map's key for what it is (`<model>`); the models do not."""
    return re.sub(r"<[a-z_]+>", _MAP_KEY, path)


def test_the_walk_reaches_nested_sections_lists_and_maps() -> None:
    # Without this, a walk that found nothing would let every docs test pass.
    for path in (
        "engines[].scheduling.max_concurrency",
        "engines[].scheduling.capabilities.max_context",
        "engines[].discover.dns",
        "scheduler.prediction_margin",
        "privacy.policy",
        "privacy.custom[].pattern",
        "privacy.presidio.score_threshold",
        "providers[].prices.<key>.cached_input",
        "providers[].capabilities.images",
        "tracing.otlp_endpoint",
    ):
        assert path in CONFIG_KEYS


def _key_rows() -> Iterator[tuple[int, str, dict[str, str]]]:
    """(line, key path, cells by column name) of each reference table row naming a key."""
    columns: list[str] = []
    for number, line in enumerate(DOC_TEXT.splitlines(), start=1):
        if not line.startswith("|"):
            columns = []
            continue
        cells = re.split(r"\s*\|\s*", line.strip()[1:-1].strip())
        if not columns:
            columns = cells
            continue
        # A row about a key starts with a path under a top-level key; it should be one path.
        root = re.match(r"`([a-z_]+)", cells[0])
        if root and root.group(1) in Config.model_fields:
            one = re.fullmatch(r"`([^`]+)`", cells[0])
            path = _normalised(one.group(1)) if one else cells[0]
            # A short row leaves out columns: the column check below names it.
            yield number, path, dict(zip(columns, cells, strict=False))


KEY_ROWS = list(_key_rows())


def test_every_configuration_key_is_documented() -> None:
    """A top-level key has a section heading; every key below it has its own table row."""
    headings = {
        name
        for line in DOC_TEXT.splitlines()
        if line.startswith("#")
        for name in re.findall(r"`([a-z_]+)`", line)
    }
    rows = {path for _, path, _ in KEY_ROWS}
    missing = [
        path
        for path in CONFIG_KEYS
        if path not in (headings if path in Config.model_fields else rows)
    ]
    assert not missing, (
        f"keys the configuration accepts but {DOC.name} does not document: {missing}"
    )


def test_every_documented_key_exists() -> None:
    unknown = [f"line {n}: {path}" for n, path, _ in KEY_ROWS if path not in CONFIG_KEYS]
    assert not unknown, (
        f"{DOC.name} documents keys the configuration refuses (or several in one row; "
        f"write one full path a row): {unknown}"
    )


def test_each_key_has_one_row_with_type_default_and_meaning() -> None:
    problems, first_row = [], {}
    for number, path, cells in KEY_ROWS:
        if list(cells) != ["key", "type", "default", "meaning"]:
            problems.append(f"line {number}: {path} is not a row of key, type, default, meaning")
        if path in first_row:
            problems.append(f"line {number}: {path} again (first on line {first_row[path]})")
        first_row.setdefault(path, number)
    assert not problems, "\n".join(problems)


def _default_problem(path: str, documented: str) -> str | None:
    """What is wrong with a row's default cell, or None; prose cells are read by people."""
    field = CONFIG_KEYS[path]
    if field.is_required():
        return None if documented == "required" else "the key is required"
    actual = field.get_default(call_default_factory=True)
    literal = re.match(r"`([^`]+)`", documented)
    if literal:
        expected = yaml.safe_load(literal.group(1))
        return None if expected == actual else f"the default is {actual!r}"
    if documented == "unset":
        return None if actual is None else f"the default is {actual!r}, not unset"
    if documented == "required":
        return f"the key is optional (default {actual!r})"
    return None


def test_documented_defaults_are_the_real_ones() -> None:
    rows = [
        (n, path, cells["default"])
        for n, path, cells in KEY_ROWS
        if path in CONFIG_KEYS and "default" in cells
    ]
    checked = [r for r in rows if r[2].startswith("`") or r[2] in ("unset", "required")]
    assert len(checked) > len(rows) // 2  # most defaults are literals the test compares
    wrong = []
    for number, path, documented in rows:
        problem = _default_problem(path, documented)
        if problem:
            wrong.append(f"line {number}: {path} says {documented!r}, but {problem}")
    assert not wrong, "\n".join(wrong)


def _yaml_examples() -> list[tuple[int, str]]:
    return [
        (DOC_TEXT.count("\n", 0, m.start()) + 1, m.group(1))
        for m in re.finditer(r"^```yaml\n(.*?)^```", DOC_TEXT, re.DOTALL | re.MULTILINE)
    ]


YAML_EXAMPLES = _yaml_examples()


def test_every_section_of_keys_has_an_example() -> None:
    sections = re.split(r"^#{2,3} ", DOC_TEXT, flags=re.MULTILINE)[1:]
    of_keys = [
        s for s in sections if any(root in Config.model_fields for root in _roots(s.split("\n")[0]))
    ]
    assert len(of_keys) >= 10  # the headings were read
    without = [s.split("\n")[0] for s in of_keys if "```yaml\n" not in s]
    assert not without, f"sections of {DOC.name} without a YAML example: {without}"


def _roots(heading: str) -> list[str]:
    """The top-level keys a heading names: `engines[].discover` names `engines`."""
    return re.findall(r"`([a-z_]+)[^`]*`", heading)


@pytest.mark.parametrize(
    "example", [text for _, text in YAML_EXAMPLES], ids=[f"line-{n}" for n, _ in YAML_EXAMPLES]
)
def test_yaml_example_is_a_valid_configuration(example: str, tmp_path: Path) -> None:
    # The examples name mounted secrets (/run/secrets/...); here each is a real file.
    secret = tmp_path / "api-key"
    secret.write_text("sk-docs-example-from-file\n")
    text = re.sub(r"(api_key_file:\s*)\S+", lambda m: f"{m.group(1)}{secret}", example)
    path = tmp_path / "spillgate.yaml"
    path.write_text(text)
    config = load(path, env=EXAMPLE_ENV)
    # An example shows something: the keys it sets must have reached the configuration.
    assert config.model_dump(exclude_unset=True)
