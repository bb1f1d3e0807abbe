"""Recall and false positives of the privacy scan, on a labelled corpus.

Recall: every built-in kind, written in every form of tests/support/privacy_plants.py (the
forms of the privacy boundary: plain, no-break-space groups, full-width, zero-width characters,
JSON-escaped; and more: digits of other scripts, decomposed accents, percent-encoding, HTML
references, base64, JSON in JSON, groups joined by dots), put in every place of a request listed in
PLACES (the text, tool-call arguments, a tool's description and parameter schema, a JSON
response schema, `prediction`, `user`, `metadata`, a message `name`, `stop`, a completion
`suffix`), `--samples` values each, drawn with valid check digits. A value is found when
the scan reports any finding for the request that holds it.

False positives: findings per MB of text that holds none, by kind: the running
interpreter's standard library (`Lib/*.py`) as code, and its documentation (the
docstrings of those modules, and `pydoc_data/topics.py`, the language reference
`help()` shows) as prose. A few examples are listed by kind and place, with letters and
digits masked (`a`, `A`, `9`).

    python bench/privacy_recall.py [--samples 5] [--seed 1]

It prints markdown tables. The numbers describe the detector; they are not assertions.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
import sysconfig
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))
from privacy_plants import EXTRA_FORMS, FORMS, KINDS, Plant, kinds_for, plants

from spillgate.server.privacy import Findings, Scanner

_SCANNER = Scanner()


def scan(request: dict[str, Any]) -> Findings:
    """The function under test: what the gateway finds in a request before it may leave.

    Today the egress guard's reading (`spillgate.server.privacy.egress`: every string of
    the body, keys included, folded, JSON, percent and HTML decoded), which
    `Scanner.scan` is. Before the guard (76552b8) the same call read only the fields
    docs/privacy.md listed; run this file on that tree to compare.
    """
    return _SCANNER.scan(request)


# -- where a value goes ----------------------------------------------------------------------


def _chat(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "Hello"}], **extra}


def _schema(text: str) -> dict[str, Any]:
    return {"type": "object", "properties": {"to": {"type": "string", "description": text}}}


def _arguments(plant: Plant) -> str:
    return plant.text if plant.is_json else json.dumps({"note": plant.text})


def _tool_call(plant: Plant) -> dict[str, Any]:
    function = {"name": "lookup", "arguments": _arguments(plant)}
    call = {"id": "call_1", "type": "function", "function": function}
    turns = [
        {"role": "user", "content": "Look it up"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
    ]
    return _chat(messages=turns)


#: Each place: a request holding the planted text there.
PLACES: dict[str, Callable[[Plant], dict[str, Any]]] = {
    "content": lambda p: _chat(messages=[{"role": "user", "content": f"Note {p.text} for me"}]),
    "arguments": _tool_call,
    "tool description": lambda p: _chat(tools=[{"type": "function", "function": {
        "name": "lookup", "description": f"Sends to {p.text}"}}]),
    "tool schema": lambda p: _chat(tools=[{"type": "function", "function": {
        "name": "lookup", "parameters": _schema(p.text)}}]),
    "response schema": lambda p: _chat(response_format={"type": "json_schema", "json_schema": {
        "name": "r", "schema": _schema(p.text)}}),
    "prediction": lambda p: _chat(prediction={"type": "content", "content": p.text}),
    "user": lambda p: _chat(user=p.text),
    "metadata": lambda p: _chat(metadata={"owner": p.text}),
    "name": lambda p: _chat(messages=[{"role": "user", "name": p.text, "content": "Hi"}]),
    "stop": lambda p: _chat(stop=[p.text]),
    "suffix": lambda p: {"model": "m", "prompt": "Hello", "suffix": p.text},
}  # fmt: skip


# -- the corpus ------------------------------------------------------------------------------


def draw_many(strategy: st.SearchStrategy[Any], count: int, seed_value: int) -> list[Any]:
    """`count` different values of `strategy`, the same ones for the same seed."""
    found: list[Any] = []

    @seed(seed_value)
    @settings(max_examples=count * 5, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(strategy)
    def collect(value: Any) -> None:
        if len(found) < count and value not in found:
            found.append(value)

    collect()
    return found


def corpus(samples: int, seed_value: int) -> Iterator[tuple[str, str, str, Plant]]:
    """(kind, form, place, plant) for every kind x form x place, `samples` values each."""
    for form in (*FORMS, *EXTRA_FORMS):
        for kind in kinds_for(form):
            for plant in draw_many(plants((form,), (kind,)), samples, seed_value):
                for place in PLACES:
                    yield kind, form, place, plant


# -- false positives -------------------------------------------------------------------------


def _chunks(text: str, size: int = 8192) -> Iterator[tuple[int, str]]:
    """(first line number, chunk) of about `size` characters, cut at line ends."""
    line, start = 1, 0
    while start < len(text):
        end = text.find("\n", start + size)
        end = len(text) if end < 0 else end + 1
        yield line, text[start:end]
        line += text.count("\n", start, end)
        start = end


def _docstrings(source: str) -> str:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ""
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(
        n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef))]  # fmt: skip
    return "\n\n".join(doc for n in nodes if (doc := ast.get_docstring(n)))


def clean_texts() -> dict[str, list[tuple[str, str]]]:
    """`code` and `docs`: (name, text) of the standard library's modules and their docs."""
    lib = Path(sysconfig.get_paths()["stdlib"])
    code, docs = [], []
    for path in sorted(lib.glob("*.py")):
        source = path.read_text(encoding="utf-8", errors="replace")
        code.append((path.name, source))
        docs.append((f"{path.name} (docstrings)", _docstrings(source)))
    topics = lib / "pydoc_data" / "topics.py"
    if topics.exists():
        namespace: dict[str, Any] = {}
        exec(compile(topics.read_text(encoding="utf-8"), str(topics), "exec"), namespace)
        docs += [(f"pydoc topic {name}", text) for name, text in namespace["topics"].items()]
    return {"code": code, "docs": docs}


def _mask(text: str) -> str:
    shape = re.sub(r"[0-9]", "9", text)
    shape = re.sub(r"[a-z]", "a", shape)
    return re.sub(r"[A-Z]", "A", shape).replace("\n", "⏎")[:48]


def false_positives(texts: list[tuple[str, str]]) -> tuple[float, Counter[str], list[str]]:
    """(MB read, findings by kind, a few examples)."""
    size, found = 0, Counter[str]()
    examples: defaultdict[str, list[str]] = defaultdict(list)
    for name, text in texts:
        size += len(text.encode())
        for line, chunk in _chunks(text):
            findings = scan({"messages": [{"role": "user", "content": chunk}]})
            if not findings:
                continue
            found.update(findings.counts)
            for span in _SCANNER.spans(chunk):
                if len(examples[span.kind]) < 3:
                    at = line + chunk.count("\n", 0, span.start)
                    examples[span.kind].append(
                        f"`{span.kind}` in {name}:{at} `{_mask(chunk[span.start : span.end])}`"
                    )
    listed = [e for kind in sorted(examples) for e in examples[kind]]
    return size / 1e6, found, listed


# -- report ----------------------------------------------------------------------------------


def _percent(hits: int, total: int) -> str:
    return f"{100 * hits / total:.0f}%" if total else "—"


def recall_tables(samples: int, seed_value: int) -> str:
    by_cell: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    by_place: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    as_kind = [0, 0]
    for kind, form, place, plant in corpus(samples, seed_value):
        findings = scan(PLACES[place](plant))
        for cell in (by_cell[kind, form], by_place[place, form]):
            cell[0] += bool(findings)
            cell[1] += 1
        if findings:
            as_kind[0] += kind in findings.counts
            as_kind[1] += 1
    forms = [*FORMS, *EXTRA_FORMS]

    def table(rows: list[str], cells: dict[tuple[str, str], list[int]], head: str) -> list[str]:
        lines = [f"| {head} | all | " + " | ".join(forms) + " |",
                 "| --- | ---: | " + " | ".join("---:" for _ in forms) + " |"]  # fmt: skip
        for row in rows:
            hit = sum(cells[row, f][0] for f in forms)
            total = sum(cells[row, f][1] for f in forms)
            line = " | ".join(_percent(*cells[row, f]) for f in forms)
            lines.append(f"| {row} | {_percent(hit, total)} | {line} |")
        overall = [_percent(sum(cells[r, f][0] for r in rows), sum(cells[r, f][1] for r in rows))
                   for f in forms]  # fmt: skip
        hits = sum(c[0] for c in cells.values())
        lines.append(f"| **all** | {_percent(hits, sum(c[1] for c in cells.values()))} | "
                     + " | ".join(overall) + " |")  # fmt: skip
        return lines

    total = sum(c[1] for c in by_cell.values())
    out = [f"### Recall: a finding in the request ({total} requests, {samples} values a cell)",
           "", *table(list(KINDS), by_cell, "kind"), "",
           "### Recall by place in the request", "", *table(list(PLACES), by_place, "place"),
           "", f"Of the requests found, {_percent(*as_kind)} were reported as the kind "
           "planted (the others as another kind only)."]  # fmt: skip
    return "\n".join(out)


def fp_tables() -> str:
    texts = clean_texts()
    results = {name: false_positives(items) for name, items in texts.items()}
    kinds = sorted({k for _, found, _ in results.values() for k in found})
    head = " | ".join(f"{name} ({mb:.1f} MB)" for name, (mb, _, _) in results.items())
    rule = " | ".join("---:" for _ in results)
    lines = ["### False positives: findings per MB of clean text", "",
             f"| kind | {head} |", f"| --- | {rule} |"]  # fmt: skip
    for kind in [*kinds, "all"]:
        cells = []
        for mb, found, _ in results.values():
            count = sum(found.values()) if kind == "all" else found[kind]
            cells.append(f"{count / mb:.2f} ({count})")
        lines.append(f"| {'**all**' if kind == 'all' else kind} | " + " | ".join(cells) + " |")
    lines += ["", "Examples (letters and digits masked):", ""]
    lines += [f"- {name}: {e}" for name, (_, _, ex) in results.items() for e in ex]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5, help="values per kind and form")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    print(recall_tables(args.samples, args.seed))
    print()
    print(fp_tables())
    print(f"\n({time.perf_counter() - started:.0f} s, Python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
