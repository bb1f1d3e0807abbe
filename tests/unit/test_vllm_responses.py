"""vLLM's Responses output held to OpenAI's schema on its way through (models/vllm_responses)."""

from __future__ import annotations

import orjson
from three_routes import spec_validator

from spillgate.models.vllm_responses import ResponsesConformer, conform_body
from spillgate.protocol import Endpoint
from spillgate.sse import UsageTap, next_sequence_number

# What vLLM 0.32 writes: no `error`; `user`, `text` (and `usage` until the end) null;
# `logprobs: null` on an output_text part.
PART = {"annotations": [], "text": "Paris.", "type": "output_text", "logprobs": None}
ITEM = {
    "id": "msg_1",
    "content": [PART],
    "role": "assistant",
    "status": "completed",
    "type": "message",
}
RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1,
    "model": "smollm2",
    "status": "completed",
    "output": [ITEM],
    "parallel_tool_calls": True,
    "tool_choice": "none",
    "tools": [],
    "temperature": 1.0,
    "top_p": 1.0,
    "metadata": None,
    "instructions": None,
    "incomplete_details": None,
    "user": None,
    "usage": {
        "input_tokens": 3,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 2,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 5,
    },
}


def sse(*events: dict) -> bytes:
    return b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events
    )


def test_a_whole_answer_gets_error_null_no_null_user_and_logprobs_arrays() -> None:
    assert spec_validator("Response").is_valid(RESPONSE) is False
    fixed = orjson.loads(conform_body(orjson.dumps(RESPONSE)))
    spec_validator("Response").validate(fixed)
    assert fixed["error"] is None and "user" not in fixed and "text" not in fixed
    assert fixed["output"][0]["content"][0]["logprobs"] == []
    assert fixed["output"][0]["content"][0]["text"] == "Paris."


def test_what_is_not_a_response_object_passes_unchanged() -> None:
    for body in (b"not json", b"[1, 2]", b'{"object": "error", "message": "bad"}'):
        assert conform_body(body) == body


def test_in_a_stream_only_the_events_that_need_it_are_rewritten() -> None:
    created = {
        "type": "response.created",
        "sequence_number": 0,
        "response": {**RESPONSE, "status": "in_progress", "output": [], "usage": None},
    }
    delta = {
        "type": "response.output_text.delta",
        "sequence_number": 1,
        "item_id": "msg_1",
        "output_index": 0,
        "content_index": 0,
        "delta": "Paris.",
        "logprobs": [],
    }
    done = {
        "type": "response.output_text.done",
        "sequence_number": 2,
        "item_id": "msg_1",
        "output_index": 0,
        "content_index": 0,
        "text": "Paris.",
        "logprobs": None,
    }
    completed = {"type": "response.completed", "sequence_number": 3, "response": RESPONSE}
    stream = sse(created, delta, done, completed)
    conformer = ResponsesConformer(UsageTap(endpoint=Endpoint.RESPONSES))
    # Cut anywhere: whole events come out, an unfinished one waits for its end.
    out = b"".join(conformer.feed(stream[i : i + 7]) for i in range(0, len(stream), 7))
    out += conformer.rest()
    assert sse(delta) in out  # a delta passes as the engine's bytes
    events = [orjson.loads(line[5:]) for line in out.split(b"\n") if line.startswith(b"data:")]
    assert [e["type"] for e in events] == [e["type"] for e in (created, delta, done, completed)]
    for event in events:
        spec_validator("ResponseStreamEvent").validate(event)
    assert conformer.next_sequence == 4
    assert conformer.usage is not None and conformer.usage.completion_tokens == 2


def test_the_next_sequence_number_follows_the_last_event_seen() -> None:
    assert next_sequence_number(b'data: {"sequence_number": 7, "type": "x"}\n\n', 0) == 8
    assert next_sequence_number(b'data: {"type":"x","sequence_number":12}\n\n', 3) == 13
    assert next_sequence_number(b"data: {}\n\n", 5) == 5
