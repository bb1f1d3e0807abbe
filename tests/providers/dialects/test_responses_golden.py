"""The golden corpus of the Responses dialect (tests/providers/dialects/golden/responses/).

Each file is a Responses request and the chat request it must become, then either a chat
answer and the Response it must become, or a chat stream and the Responses events it must
become (ids and timestamps normalised: `resp_1`, `msg_1`, `fc_1`, "<time>"). Beyond
equality: the chat request passes the OpenAI fake's check of chat requests (the SDK's
request types); every Response and event validates against OpenAI's spec and the `openai`
SDK's types, sequence numbers count from 0, and the SDK's own stream accumulator (the one
behind `client.responses.stream(...)`) rebuilds the answer from the events.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from fakes.openai_schema import check_openai, spec_problems, spec_validator
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from spillgate.fallback.dialects.responses import DIALECT
from spillgate.sse import EventSplitter, event_data

GOLDEN = sorted((Path(__file__).parent / "golden" / "responses").glob("*.json"))
EVENT = TypeAdapter(ResponseStreamEvent)
_GENERATED_ID = re.compile(r"^(resp|msg|fc|call)_[0-9a-f]{32}$")


def _load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text())
    return case


def normalised(value: Any) -> Any:
    """Generated ids numbered by first appearance per prefix; timestamps as "<time>"."""
    seen: dict[str, str] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: "<time>" if k in ("created_at", "completed_at") and node[k] else walk(v)
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(item) for item in node]
        if isinstance(node, str) and _GENERATED_ID.match(node):
            prefix = node.split("_", 1)[0]
            count = sum(1 for v in seen.values() if v.startswith(prefix + "_"))
            return seen.setdefault(node, f"{prefix}_{count + 1}")
        return node

    return walk(value)


def _chat_sse(items: list[Any]) -> bytes:
    return b"".join(
        b"data: " + (item.encode() if isinstance(item, str) else orjson.dumps(item)) + b"\n\n"
        for item in items
    )


def run_stream(request: dict[str, Any], chat_stream: list[Any]) -> list[dict[str, Any]]:
    """The dialect's events for a chat stream read 7 bytes at a time (events cut anywhere)."""
    stream = DIALECT.stream_from_chat(request)
    raw = _chat_sse(chat_stream)
    out = b"".join(stream.feed(raw[i : i + 7]) for i in range(0, len(raw), 7))
    out += stream.finish()
    splitter = EventSplitter()
    events = []
    for event in splitter.feed(out):
        kind = event.split(b"\n", 1)[0]
        data = event_data(event)
        assert data is not None
        parsed = orjson.loads(data)
        assert kind == b"event: " + parsed["type"].encode(), "the event line names the type"
        events.append(parsed)
    assert splitter.pending == b""
    return events


@functools.cache
def _event_components() -> dict[str, str]:
    """Each event type's own schema in the spec (a readable error, not anyOf's)."""
    schemas = spec_validator("Response").schema["components"]["schemas"]
    found = {}
    for name, schema in schemas.items():
        enum = (schema.get("properties") or {}).get("type", {}).get("enum")
        if name.startswith("Response") and name.endswith("Event") and enum and len(enum) == 1:
            found[enum[0]] = name
    return found


def _check_event(event: dict[str, Any]) -> None:
    EVENT.validate_python(event)
    assert spec_problems("ResponseStreamEvent", event) == [], event["type"]
    component = _event_components()[event["type"]]
    assert spec_problems(component, event) == []


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_the_request_becomes_the_chat_request(path: Path) -> None:
    case = _load(path)
    sent = copy.deepcopy(case["request"])
    chat = DIALECT.to_chat(sent)
    assert chat == case["chat_request"]
    assert sent == case["request"], "the client's request is left as it was"
    assert check_openai(chat) is None, "OpenAI's chat API would refuse this request"


@pytest.mark.parametrize(
    "path", [p for p in GOLDEN if "chat_answer" in _load(p)], ids=lambda p: p.stem
)
def test_a_chat_answer_becomes_the_response(path: Path) -> None:
    case = _load(path)
    response = DIALECT.from_chat(case["request"], case["chat_answer"])
    assert normalised(response) == case["response"]
    assert spec_problems("Response", response) == []
    parsed = Response.model_validate(response)
    assert parsed.output_text == (case["chat_answer"]["choices"][0]["message"]["content"] or "")
    assert response["model"] == case["request"]["model"], "the client's model, not the provider's"


@pytest.mark.parametrize(
    "path", [p for p in GOLDEN if "chat_stream" in _load(p)], ids=lambda p: p.stem
)
def test_a_chat_stream_becomes_the_events(path: Path) -> None:
    case = _load(path)
    events = run_stream(case["request"], case["chat_stream"])
    assert normalised(events) == case["events"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    for event in events:
        _check_event(event)
    if events[-1]["type"] == "error":
        assert not any(e["type"].startswith("response.complete") for e in events)
        return
    state = ResponseStreamState(input_tools=case["request"].get("tools", omit), text_format=omit)
    for event in events:
        state.handle_event(EVENT.validate_python(event))
    final = state._completed_response if events[-1]["type"] == "response.completed" else None
    texts = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    last = Response.model_validate(events[-1]["response"])
    assert last.output_text == texts
    if final is not None:
        assert final.output_text == texts


def test_the_corpus_covers_what_the_dialect_must_do() -> None:
    names = {p.stem for p in GOLDEN}
    assert {
        "string_input_instructions_usage",
        "items_system_developer_assistant_turns",
        "images_url_and_data_url",
        "function_tools_named_tool_choice",
        "function_call_round_trip",
        "json_schema_text_format",
        "max_output_tokens_incomplete",
        "content_filter_incomplete",
        "stream_text_with_usage",
        "stream_tool_calls_in_pieces",
        "stream_cut_without_finish",
        "stream_chat_error_event",
    } <= names
