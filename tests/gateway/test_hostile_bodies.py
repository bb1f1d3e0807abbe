"""Hand-made hostile bodies, to each route: never a 5xx, every refusal an OpenAI error object.

What a generator seldom makes: nesting past what the JSON encoder or Python's recursion takes
(255 to 1,100 levels), types where OpenAI's schema has none (`tool_calls` a number,
`function` a string, null or true, Anthropic's `tool_choice` spelling), `max_tokens` negative
or beyond any integer type, `stream` on embeddings, bytes that are not UTF-8, and 7 MiB
prompts (under the 8 MiB body limit). Each goes to the stand-in engine's model, the OpenAI
fake's route and the Anthropic fake's route (three_routes.py). A body OpenAI's schema
forbids must be refused with a 4xx; any other may be served (a 2xx conforming to OpenAI's
response schema) or refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from harness import GatewayProcess
from three_routes import ROUTES, check_answer, three_route_gateway

MIB = 1024 * 1024
USER = {"role": "user", "content": "What is the weather in Paris?"}
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


NEST = "__nested__"


def _nested(depth: int, objects: bool = False) -> bytes:
    """`depth` levels of arrays (or of `{"a": ...}` objects, around `{}`) around "x"."""
    if objects:
        return b'{"a": ' * depth + b"{}" + b"}" * depth
    return b"[" * depth + b'"x"' + b"]" * depth


def _chat(model: str, **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [USER], **fields}


def _calls(function: Any) -> dict[str, Any]:
    """An assistant turn whose one tool call carries `function`."""
    call = {"id": "call_1", "type": "function", "function": function}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


# A body: JSON, raw bytes, or JSON whose string NEST stands for the raw bytes given beside it.
Body = Callable[[str], dict[str, Any] | bytes | tuple[dict[str, Any], bytes]]
# (case id, endpoint, body for a model, whether OpenAI's schema forbids it)
HOSTILE: list[tuple[str, str, Body, bool]] = []


def hostile(name: str, endpoint: str, forbidden: bool, body: Body) -> None:
    HOSTILE.append((name, endpoint, body, forbidden))


for depth in (255, 256, 1000, 1020, 1100):
    # JSON nested deeper than 1,024 levels cannot be read: a 400 as for any broken JSON.
    # Tool parameters are free-form JSON Schema, unknown fields are passed on: deep, not wrong.
    unreadable = depth > 1020
    hostile(
        f"nested-tool-parameters-{depth}",
        "chat/completions",
        unreadable,
        lambda m, d=depth: (
            _chat(m, tools=[{"type": "function", "function": {"name": "f", "parameters": NEST}}]),
            _nested(d, objects=True),
        ),
    )
    hostile(
        f"nested-content-arrays-{depth}",
        "chat/completions",
        True,
        lambda m, d=depth: (
            {"model": m, "messages": [{"role": "user", "content": NEST}]},
            _nested(d),
        ),
    )
    hostile(
        f"nested-unknown-field-{depth}",
        "chat/completions",
        unreadable,
        lambda m, d=depth: (_chat(m, spillgate_extra=NEST), _nested(d)),
    )
    hostile(
        f"nested-embedding-input-{depth}",
        "embeddings",
        True,
        lambda m, d=depth: ({"model": m, "input": NEST}, _nested(d)),
    )

for name, value in [("number", 7), ("string", "call"), ("object", {"id": "x"})]:
    hostile(
        f"tool-calls-as-{name}",
        "chat/completions",
        True,
        lambda m, v=value: _chat(
            m, messages=[USER, {"role": "assistant", "content": None, "tool_calls": v}]
        ),
    )
for name, value in [("string", "f"), ("null", None), ("true", True), ("number", 1)]:
    hostile(
        f"tool-call-function-as-{name}",
        "chat/completions",
        True,
        lambda m, v=value: _chat(m, messages=[USER, _calls(v)]),
    )
    hostile(
        f"tool-function-as-{name}",
        "chat/completions",
        True,
        lambda m, v=value: _chat(m, tools=[{"type": "function", "function": v}]),
    )
hostile(
    "tool-call-arguments-as-object",
    "chat/completions",
    True,
    lambda m: _chat(m, messages=[USER, _calls({"name": "f", "arguments": {"city": "Paris"}})]),
)
for name, choice in [
    ("function-as-string", {"type": "function", "function": "f"}),
    ("function-missing", {"type": "function"}),
    ("function-name-number", {"type": "function", "function": {"name": 5}}),
    ("anthropic-any", {"type": "any"}),
    ("number", 3),
]:
    hostile(
        f"tool-choice-{name}",
        "chat/completions",
        True,
        lambda m, c=choice: _chat(m, tools=[TOOL], tool_choice=c),
    )

for field in ("max_tokens", "max_completion_tokens"):
    for name, raw in [("negative", b"-1"), ("beyond-int64", b"100000000000000000000000000000")]:
        hostile(
            f"{field}-{name}",
            "chat/completions",
            True,
            lambda m, f=field, r=raw: (
                b'{"model": "' + m.encode() + b'", "messages": [{"role": "user", "content": "hi"}],'
                b' "' + f.encode() + b'": ' + r + b"}"
            ),
        )
    for name, value in [("zero", 0), ("int32-max", 2**31 - 1), ("int64-max", 2**63 - 1)]:
        hostile(
            f"{field}-{name}",
            "chat/completions",
            False,
            lambda m, f=field, v=value: _chat(m, **{f: v}),
        )
hostile(
    "completions-max-tokens-negative",
    "completions",
    True,
    lambda m: {"model": m, "prompt": "Once upon a time", "max_tokens": -5},
)
hostile(
    "completions-max-tokens-int64-max",
    "completions",
    False,
    lambda m: {"model": m, "prompt": "Once upon a time", "max_tokens": 2**63 - 1},
)
hostile(
    "embeddings-stream-true",
    "embeddings",
    False,
    lambda m: {"model": m, "input": "hello", "stream": True},
)
hostile(
    "embeddings-stream-options",
    "embeddings",
    False,
    lambda m: {
        "model": m,
        "input": "hello",
        "stream": True,
        "stream_options": {"include_usage": True},
    },
)

for name, raw in [
    ("content", b'"caf\xe9 \xff\xfe"'),
    ("lone-surrogate", b'"\\ud800"'),
    ("overlong", b'"\xc0\xaf"'),
]:
    hostile(
        f"non-utf8-{name}",
        "chat/completions",
        True,
        lambda m, r=raw: (
            b'{"model": "'
            + m.encode()
            + b'", "messages": [{"role": "user", "content": '
            + r
            + b"}]}"
        ),
    )
hostile(
    "non-utf8-key",
    "chat/completions",
    True,
    lambda m: b'{"model": "' + m.encode() + b'", "\xff": 1, "messages": []}',
)
hostile(
    "non-utf8-model",
    "chat/completions",
    True,
    lambda m: (
        b'{"model": "' + m.encode() + b'\xff", "messages": [{"role": "user", "content": "hi"}]}'
    ),
)

SEVEN_MIB = ("lorem ipsum dolor sit amet " * (7 * MIB // 27))[: 7 * MIB]
hostile(
    "chat-7mib-prompt",
    "chat/completions",
    False,
    lambda m: {"model": m, "messages": [{"role": "user", "content": SEVEN_MIB}]},
)
hostile(
    "chat-7mib-of-messages",
    "chat/completions",
    False,
    lambda m: {"model": m, "messages": [{"role": "user", "content": "hi"}] * (7 * MIB // 33)},
)
hostile(
    "chat-7mib-stream",
    "chat/completions",
    False,
    lambda m: {"model": m, "messages": [{"role": "user", "content": SEVEN_MIB}], "stream": True},
)
hostile(
    "completions-7mib-prompt", "completions", False, lambda m: {"model": m, "prompt": SEVEN_MIB}
)
hostile("embeddings-7mib-input", "embeddings", False, lambda m: {"model": m, "input": SEVEN_MIB})


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with three_route_gateway(tmp_path_factory.mktemp("hostile")) as running:
        yield running


def _encode(body: dict[str, Any] | bytes | tuple[dict[str, Any], bytes]) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, tuple):
        outer, inner = body
        return orjson.dumps(outer).replace(orjson.dumps(NEST), inner, 1)
    return orjson.dumps(body)


@pytest.mark.parametrize("model", ROUTES)
@pytest.mark.parametrize(
    ("endpoint", "make", "forbidden"),
    [pytest.param(e, b, f, id=n) for n, e, b, f in HOSTILE],
)
def test_hostile_body(
    gateway: GatewayProcess, model: str, endpoint: str, make: Body, forbidden: bool
) -> None:
    content = _encode(make(model))
    response = httpx.post(
        f"{gateway.url}/v1/{endpoint}",
        content=content,
        headers={"content-type": "application/json"},
        timeout=120,
    )
    check_answer("POST", f"/{endpoint}", response)
    if forbidden:
        assert 400 <= response.status_code < 500, (
            f"served a body OpenAI's schema forbids: {content[:200]!r}"
        )
