"""/v1/messages to an `anthropic` provider passes through natively: `CloudTarget` with the
Anthropic adapter against the fake Anthropic server, over loopback HTTP.

The client's request reaches Anthropic as sent but for the model (the route's), the answer
reaches the client byte for byte, whole or streamed, its usage read on the way; provider
errors are mapped as on the chat path and render in Anthropic's error shape.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from anthropic.types import Message
from anthropic.types.shared import ErrorResponse
from fakes.anthropic_server import FakeAnthropic, Fault, Reply, encode_event, message_events
from guard import egress_guard

from spillgate.errors import UpstreamError
from spillgate.fallback.adapter import CloudTarget, ProviderSettings
from spillgate.fallback.anthropic.adapter import AnthropicAdapter
from spillgate.fallback.dialects import dialect_for
from spillgate.fallback.resilience import RetryPolicy
from spillgate.protocol import Endpoint, UpstreamRequest, Usage

PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5E"
    "rkJggg=="
)
TARGET_MODEL = "claude-sonnet-4-5"
ONE_TRY = RetryPolicy(max_attempts=1)
BASH = {
    "name": "bash",
    "description": "Run a shell command.",
    "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
    "cache_control": {"type": "ephemeral"},
}
# What a Claude-Code-style client sends: every field and block kind Messages clients use.
CLAUDE_CODE_REQUEST: dict[str, Any] = {
    "model": "claude-code-alias",
    "max_tokens": 4096,
    "system": [
        {"type": "text", "text": "You are a coding agent."},
        {"type": "text", "text": "Work in /repo.", "cache_control": {"type": "ephemeral"}},
    ],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "What is in the screenshot?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Look first.", "signature": "c2ln"},
                {"type": "text", "text": "Taking a look."},
                {"type": "tool_use", "id": "toolu_01A", "name": "bash", "input": {"command": "ls"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01A",
                    "is_error": True,
                    "content": [
                        {"type": "text", "text": "permission denied"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                        },
                    ],
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "notes"},
                },
            ],
        },
    ],
    "tools": [BASH],
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    "stop_sequences": ["END"],
    "metadata": {"user_id": "user-7"},
    "temperature": 1,
    "top_k": 40,
    "thinking": {"type": "enabled", "budget_tokens": 2048},
}
REPLY = Reply(
    content=[
        {"type": "text", "text": "The screenshot shows a terminal."},
        {"type": "tool_use", "id": "toolu_01B", "name": "bash", "input": {"command": "pwd"}},
    ],
    stop_reason="tool_use",
    usage={
        "input_tokens": 900,
        "output_tokens": 31,
        "cache_creation_input_tokens": 50,
        "cache_read_input_tokens": 200,
    },
)
# Anthropic counts cached input apart; the gateway's usage counts it inside the prompt.
REPLY_USAGE = Usage(prompt_tokens=900 + 50 + 200, completion_tokens=31, cached_tokens=200)


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[FakeAnthropic]:
    fake = await FakeAnthropic().start()
    yield fake
    await fake.stop()


@pytest.fixture
def fake(server: FakeAnthropic) -> FakeAnthropic:
    server.reset()
    return server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def target_for(
    fake: FakeAnthropic, session: aiohttp.ClientSession, drop_params: frozenset[str] = frozenset()
) -> CloudTarget:
    settings = ProviderSettings(
        name="claude",
        kind="anthropic",
        base_url=fake.url,
        api_key=fake.api_key,
        drop_params=drop_params,
    )
    adapter = AnthropicAdapter(settings)
    return CloudTarget(TARGET_MODEL, adapter, session, egress=egress_guard(), retry=ONE_TRY)


def messages_request(stream: bool, payload: dict[str, Any] | None = None) -> UpstreamRequest:
    payload = {**(payload or CLAUDE_CODE_REQUEST), "stream": stream}
    dialect_for(Endpoint.MESSAGES).to_chat(payload)  # the gateway checks it before routing
    return UpstreamRequest(
        endpoint=Endpoint.MESSAGES,
        model=payload["model"],
        target_model=TARGET_MODEL,
        body=orjson.dumps(payload),
        payload=payload,
        stream=stream,
        request_id="native1",
    )


async def read_all(target: CloudTarget, request: UpstreamRequest) -> tuple[bytes, Usage | None]:
    reply = await target.open(request)
    assert reply.chunks is not None and reply.content_type == "text/event-stream"
    data = b"".join([part async for part in reply.chunks])
    return data, reply.usage


def sent(fake: FakeAnthropic) -> dict[str, Any]:
    assert len(fake.received) == 1
    received = fake.received[0]
    assert received.headers["x-api-key"] == fake.api_key
    assert received.headers["anthropic-version"] == "2023-06-01"
    body: dict[str, Any] = received.body
    return body


def message_id_of(data: bytes) -> str:
    start = orjson.loads(data.split(b"\n", 2)[1].removeprefix(b"data: "))
    assert start["type"] == "message_start"
    message_id: str = start["message"]["id"]
    return message_id


async def test_a_whole_message_passes_through_with_the_routes_model(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    fake.answer(REPLY)
    reply = await target_for(fake, session).open(messages_request(stream=False))
    assert sent(fake) == {**CLAUDE_CODE_REQUEST, "stream": False, "model": TARGET_MODEL}
    answer = Message.model_validate(orjson.loads(reply.body or b""))
    assert answer.model == TARGET_MODEL  # Anthropic's own answer, unchanged
    assert [block.type for block in answer.content] == ["text", "tool_use"]
    assert answer.usage.cache_read_input_tokens == 200
    assert reply.usage == REPLY_USAGE


async def test_a_streamed_message_passes_through_byte_for_byte(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    fake.answer(REPLY)
    data, usage = await read_all(target_for(fake, session), messages_request(stream=True))
    assert sent(fake)["model"] == TARGET_MODEL and sent(fake)["stream"] is True
    events = message_events(REPLY, TARGET_MODEL, message_id_of(data))
    assert data == b"".join(encode_event(e) for e in events)
    assert usage == REPLY_USAGE  # input from message_start, output from message_delta


async def test_drop_params_are_left_out_of_what_is_sent(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    target = target_for(fake, session, drop_params=frozenset({"top_k", "thinking", "max_tokens"}))
    await target.open(messages_request(stream=False))
    kept = {k: v for k, v in CLAUDE_CODE_REQUEST.items() if k not in ("top_k", "thinking")}
    # `max_tokens` stays: Anthropic requires it.
    assert sent(fake) == {**kept, "stream": False, "model": TARGET_MODEL}


@pytest.mark.parametrize(
    ("fault", "status", "anthropic_type", "retry_after_s"),
    [
        (
            Fault(status=429, error_type="rate_limit_error", retry_after="7"),
            429,
            "rate_limit_error",
            7,
        ),
        (
            Fault(status=529, error_type="overloaded_error", message="Overloaded"),
            503,
            "overloaded_error",
            None,
        ),
        (
            Fault(status=400, error_type="invalid_request_error", message="messages.1: bad"),
            400,
            "invalid_request_error",
            None,
        ),
    ],
    ids=["429", "529", "400"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_provider_errors_are_mapped_and_render_in_anthropics_shape(
    fake: FakeAnthropic,
    session: aiohttp.ClientSession,
    fault: Fault,
    status: int,
    anthropic_type: str,
    retry_after_s: float | None,
    stream: bool,
) -> None:
    fake.fail(fault)
    with pytest.raises(UpstreamError) as caught:
        await target_for(fake, session).open(messages_request(stream))
    err = caught.value
    assert (err.status, err.retry_after_s) == (status, retry_after_s)
    body = ErrorResponse.model_validate(orjson.loads(err.body(Endpoint.MESSAGES)))
    assert body.error.type == anthropic_type
    assert fake.api_key not in body.error.message


async def test_an_error_event_mid_stream_reaches_the_client_as_anthropic_sent_it(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    fake.fail(Fault(error_event_after=4, error_type="overloaded_error", message="Overloaded"))
    data, _ = await read_all(target_for(fake, session), messages_request(stream=True))
    events = message_events(Reply(), TARGET_MODEL, message_id_of(data))
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert data == b"".join(encode_event(e) for e in events[:4]) + encode_event(error)


async def test_a_stream_that_ends_early_ends_with_an_anthropic_error_event(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    fake.fail(Fault(end_after=5))
    data, _ = await read_all(target_for(fake, session), messages_request(stream=True))
    last = data.rstrip(b"\n").rsplit(b"\n\n", 1)[-1]
    name, payload = last.split(b"\n")
    assert name == b"event: error"
    error = ErrorResponse.model_validate(orjson.loads(payload.removeprefix(b"data: ")))
    assert "message_stop" in error.error.message


async def test_an_answer_that_is_not_a_message_is_a_bad_answer(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    fake.fail(Fault(raw_body=b'{"type": "completion", "completion": "hi"}'))
    with pytest.raises(UpstreamError) as caught:
        await target_for(fake, session).open(messages_request(stream=False))
    assert caught.value.status == 502
    assert caught.value.code == "provider_bad_answer"
