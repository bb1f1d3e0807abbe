"""One gateway with three routes, and OpenAI's spec to judge its answers by.

Shared by the fuzz run (test_fuzz_openapi.py) and the hostile bodies (test_hostile_bodies.py):
a launched stand-in engine serving `LOCAL` (chat, completions, embeddings, responses),
`OPENAI_ROUTE` to the fake OpenAI provider (Responses passed through) and `CLAUDE_ROUTE` to
the fake Anthropic one (Responses translated through chat), each fake a real server on
loopback. `SCHEMA` is ../shared/specs/openai-openapi.yaml loaded once by
schemathesis, narrowed to the operations the gateway serves.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import orjson
import schemathesis
from fakes.openai_server import FakeOpenAIServer
from harness import ROOT, FakeProviderProcess, GatewayProcess, standin_engine_config

SPEC = ROOT.parent / "shared" / "specs" / "openai-openapi.yaml"
OPENAI_KEY = "sk-fuzz-openai-0a1b2c3d4e5f"
ANTHROPIC_KEY = "sk-ant-fuzz-9f8e7d6c5b4a"
LOCAL, OPENAI_ROUTE, CLAUDE_ROUTE = "standin-model", "fuzz-openai", "fuzz-claude"
ROUTES = (LOCAL, OPENAI_ROUTE, CLAUDE_ROUTE)
SERVED = {
    ("POST", "/chat/completions"),
    ("POST", "/completions"),
    ("POST", "/embeddings"),
    ("POST", "/responses"),
    ("GET", "/models"),
    ("GET", "/models/{model}"),
}

SCHEMA = schemathesis.openapi.from_path(SPEC).include(
    lambda ctx: (ctx.operation.method.upper(), ctx.operation.path) in SERVED
)


#: The schema of each event of a stream, by path: the spec documents the chat one; a legacy
#: completion streams chunks of its whole answer's shape, as OpenAI's do, `finish_reason`
#: null until the last (see _components).
STREAM_EVENT = {
    "/chat/completions": "CreateChatCompletionStreamResponse",
    "/completions": "CompletionStreamChunk",
    "/responses": "ResponseStreamEvent",
}
#: The events a Responses stream may end with (it sends no `[DONE]`).
RESPONSES_LAST = {"response.completed", "response.incomplete", "response.failed", "error"}


def _null_where_nullable(schema: Any) -> Any:
    """OpenAPI 3.0's `nullable: true`, which the spec still uses in places, as JSON Schema."""
    if isinstance(schema, list):
        return [_null_where_nullable(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    plain = {
        k: _null_where_nullable(v)
        for k, v in schema.items()
        if not (k == "nullable" and isinstance(v, bool))
    }
    return {"anyOf": [plain, {"type": "null"}]} if schema.get("nullable") is True else plain


@functools.cache
def _components() -> dict[str, Any]:
    schemas = _null_where_nullable(SCHEMA.raw_schema["components"]["schemas"])
    chunk = copy.deepcopy(schemas["CreateCompletionResponse"])
    finish = chunk["properties"]["choices"]["items"]["properties"]["finish_reason"]
    chunk["properties"]["choices"]["items"]["properties"]["finish_reason"] = {
        "anyOf": [finish, {"type": "null"}]
    }
    return {"schemas": {**schemas, "CompletionStreamChunk": chunk}}


@functools.cache
def spec_validator(component: str) -> jsonschema.protocols.Validator:
    ref = {"$ref": f"#/components/schemas/{component}", "components": _components()}
    return jsonschema.Draft202012Validator(ref)


def check_answer(method: str, path: str, response: Any) -> None:
    """Not a 5xx; a refusal is OpenAI's error object; an answer conforms to the operation's
    response schema, a stream event by event. `response`: httpx's or schemathesis'."""
    status, body = response.status_code, response.content
    content_type = response.headers.get("content-type", "")
    if isinstance(content_type, list):  # schemathesis keeps every value of a header
        content_type = content_type[0] if content_type else ""
    assert status < 500, (status, body[:500])
    if status >= 400:
        assert content_type.startswith("application/json"), (status, content_type, body[:300])
        spec_validator("ErrorResponse").validate(orjson.loads(body))
    elif content_type.startswith("text/event-stream"):
        _check_stream(path, body)
    else:
        SCHEMA[path][method].validate_response(response)


def _check_stream(path: str, body: bytes) -> None:
    data = [
        line[len(b"data:") :].strip()
        for event in body.split(b"\n\n")
        for line in event.splitlines()
        if line.startswith(b"data:")
    ]
    assert data, f"a stream without events: {body[:300]!r}"
    if path == "/responses":
        _check_responses_stream(data)
        return
    done = data[-1] == b"[DONE]"
    events = data[:-1] if done else data
    for n, item in enumerate(events):
        event = orjson.loads(item)
        if isinstance(event, dict) and "error" in event:
            # A failure after the first byte: OpenAI's error object, and nothing after it.
            assert n == len(events) - 1, f"events after an error: {data[n:][:3]}"
            spec_validator("ErrorResponse").validate(event)
            return
        spec_validator(STREAM_EVENT[path]).validate(event)
    assert done, f"a stream that neither ends with [DONE] nor with an error: {data[-3:]}"


def _check_responses_stream(data: list[bytes]) -> None:
    """Each event of its own type's schema, numbered in order, ending with a final one (an
    `error` event is one, and nothing follows it)."""
    events = [orjson.loads(item) for item in data]
    numbers = [e["sequence_number"] for e in events if e.get("type") != "error"]
    assert numbers == sorted(set(numbers)), f"sequence numbers out of order: {numbers}"
    for n, event in enumerate(events):
        spec_validator(STREAM_EVENT["/responses"]).validate(event)
        if event["type"] == "error":
            assert n == len(events) - 1, f"events after an error: {events[n:][:3]}"
    assert events[-1]["type"] in RESPONSES_LAST, f"a stream cut short: {events[-3:]}"


@contextlib.contextmanager
def three_route_gateway(workdir: Path) -> Iterator[GatewayProcess]:
    """The gateway and both fakes; the gateway must still be alive and healthy at the end."""
    openai_fake = FakeOpenAIServer("openai", OPENAI_KEY).start()
    claude_fake = FakeProviderProcess("anthropic_server.py", ANTHROPIC_KEY, workdir)
    try:
        claude_fake.start()
        engine = standin_engine_config("standin", [LOCAL], args=["--embeddings"])
        config = {
            "engines": [engine],
            "providers": [
                {"name": "oai", "kind": "openai", "base_url": openai_fake.base_url,
                 "api_key": OPENAI_KEY},
                {"name": "claude", "kind": "anthropic", "base_url": claude_fake.url,
                 "api_key": ANTHROPIC_KEY},
            ],
            "routes": {
                OPENAI_ROUTE: ["oai/gpt-4o-mini"],
                CLAUDE_ROUTE: ["claude/claude-sonnet-4-5"],
            },
        }  # fmt: skip
        with GatewayProcess(config, workdir) as gateway:
            # What a request to the engine gets must not depend on how fast it started.
            gateway.wait_engine_ready("standin", timeout_s=60)
            yield gateway
            assert gateway.proc is not None and gateway.proc.poll() is None, gateway.logs()[-3000:]
            assert httpx.get(f"{gateway.url}/healthz").status_code == 200
    finally:
        claude_fake.stop()
        openai_fake.stop()
