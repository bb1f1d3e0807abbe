"""The Messages dialect against its golden corpus: tests/providers/dialects/golden/messages/.

`request_*.json`: a Messages request and the chat request it becomes. `answer_*.json`: a
chat completion and the Message it becomes (ids normalised: `msg_ID`, `toolu_ID` for the
ones the gateway makes up). `stream_*.json`: chat SSE events and the Anthropic events they
become, fed whole and cut every few bytes; a complete stream also gives the message the
anthropic SDK's own accumulator builds from the events (`final_message`). Every Message
and event must validate with the anthropic SDK's types.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse
from pydantic import TypeAdapter

from spillgate.fallback.dialects import dialect_for
from spillgate.protocol import Endpoint

GOLDEN = Path(__file__).resolve().parent / "golden" / "messages"
DIALECT = dialect_for(Endpoint.MESSAGES)
EVENT = TypeAdapter(RawMessageStreamEvent)


def cases(prefix: str) -> list[Any]:
    files = sorted(GOLDEN.glob(f"{prefix}_*.json"))
    assert files, f"no {prefix} cases in {GOLDEN}"
    return [pytest.param(json.loads(f.read_text()), id=f.stem) for f in files]


def normalised(obj: Any) -> Any:
    """Ids the gateway makes up (`msg_...`, `toolu_...`) as fixed placeholders."""
    if isinstance(obj, list):
        return [normalised(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    out = {k: normalised(v) for k, v in obj.items()}
    made_up = out.get("id")
    if isinstance(made_up, str):
        for prefix in ("msg_", "toolu_"):
            if made_up.startswith(prefix) and len(made_up) == len(prefix) + 24:
                out["id"] = f"{prefix}ID"
    return out


def chat_sse(items: list[Any]) -> bytes:
    return b"".join(
        b"data: [DONE]\n\n" if item == "[DONE]" else b"data: " + orjson.dumps(item) + b"\n\n"
        for item in items
    )


def anthropic_events(data: bytes) -> list[dict[str, Any]]:
    """The events of an Anthropic stream; each `event:` line must name its data's type."""
    events = []
    for block in data.decode().split("\n\n"):
        if not block:
            continue
        name, payload = block.split("\n")
        assert name.startswith("event: ") and payload.startswith("data: "), block
        event = json.loads(payload[len("data: ") :])
        assert event["type"] == name[len("event: ") :]
        events.append(event)
    return events


@pytest.mark.parametrize("case", cases("request"))
def test_a_messages_request_becomes_the_golden_chat_request(case: dict[str, Any]) -> None:
    assert DIALECT.to_chat(case["request"]) == case["chat"]


@pytest.mark.parametrize("case", cases("answer"))
def test_a_chat_answer_becomes_the_golden_message(case: dict[str, Any]) -> None:
    message = DIALECT.from_chat(case["request"], case["chat_answer"])
    Message.model_validate(message)
    assert set(message) <= set(Message.model_fields)
    assert message["id"].startswith("msg_")
    assert normalised(message) == case["message"]


@pytest.mark.parametrize("case", cases("stream"))
@pytest.mark.parametrize("cut", [None, 7], ids=["whole", "cut-every-7-bytes"])
def test_a_chat_stream_becomes_the_golden_events(case: dict[str, Any], cut: int | None) -> None:
    sent = chat_sse(case["chat_stream"])
    reads = [sent] if cut is None else [sent[i : i + cut] for i in range(0, len(sent), cut)]
    stream = DIALECT.stream_from_chat(case["request"])
    data = b"".join(stream.feed(read) for read in reads) + stream.finish()
    events = anthropic_events(data)
    assert normalised(events) == case["events"]
    for event in events[:-1]:
        EVENT.validate_python(event)
    last = events[-1]
    if last["type"] == "error":  # the SDK raises on it; it is not one of the message events
        ErrorResponse.model_validate(last)
        assert "final_message" not in case
        return
    EVENT.validate_python(last)
    snapshot = None
    json_buffers: dict[int, bytes] = {}
    for event in events:
        snapshot = accumulate_event(
            event=EVENT.validate_python(event), current_snapshot=snapshot, json_bufs=json_buffers
        )
    assert snapshot is not None
    final = snapshot.model_dump(mode="json", exclude_none=True)
    assert normalised(final) == case["final_message"]


def test_a_stream_with_a_usage_chunk_before_the_first_delta_starts_with_that_usage() -> None:
    usage = {
        "prompt_tokens": 40,
        "completion_tokens": 0,
        "prompt_tokens_details": {"cached_tokens": 10},
    }
    first = {"choices": [], "usage": usage}
    stream = DIALECT.stream_from_chat({"model": "m", "max_tokens": 5, "messages": []})
    start = anthropic_events(stream.feed(chat_sse([first])))[0]
    assert start["message"]["usage"]["input_tokens"] == 30
    assert start["message"]["usage"]["cache_read_input_tokens"] == 10


def test_nothing_follows_the_end_of_a_stream() -> None:
    stream = DIALECT.stream_from_chat({"model": "m", "max_tokens": 5, "messages": []})
    done = chat_sse(
        [{"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": "stop"}]}, "[DONE]"]
    )
    assert anthropic_events(stream.feed(done))[-1]["type"] == "message_stop"
    assert stream.feed(chat_sse([{"choices": [{"index": 0, "delta": {"content": "y"}}]}])) == b""
    assert stream.finish() == b""
