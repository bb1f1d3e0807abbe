"""End to end over HTTP: `CloudTarget` with the Anthropic adapter against the fake server.

The answers must read as OpenAI's (checked with the `openai` SDK's own types), and every
injected fault must end in the right `UpstreamError` or a terminating SSE error event.
Where a test reads one fault's mapping, its target tries once (`ONE_TRY`): `CloudTarget`
retries 429 and 5xx itself, which the retry tests check.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from fakes.anthropic_server import FakeAnthropic, Fault, Reply
from guard import egress_guard
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from spillgate.errors import UpstreamError
from spillgate.fallback.adapter import CloudTarget, ProviderSettings
from spillgate.fallback.anthropic.adapter import AnthropicAdapter
from spillgate.fallback.resilience import RetryPolicy, Timeouts
from spillgate.protocol import Endpoint, UpstreamRequest

PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5E"
    "rkJggg=="
)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
QUESTION = {
    "role": "user",
    "content": [
        {"type": "text", "text": "Where is this, and what is the weather there?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/street.jpg"}},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ],
}
ONE_TRY = RetryPolicy(max_attempts=1)
# Two tries with a backoff short enough not to slow the suite.
QUICK_RETRY = RetryPolicy(max_attempts=2, backoff_base_s=0.01, backoff_max_s=0.02)
TOOL_CALL_REPLY = Reply(
    content=[
        {"type": "text", "text": "That looks like Paris; let me check."},
        {"type": "tool_use", "id": "toolu_01P", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    stop_reason="tool_use",
    usage={
        "input_tokens": 900,
        "output_tokens": 31,
        "cache_creation_input_tokens": 50,
        "cache_read_input_tokens": 200,
    },
)


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
    fake: FakeAnthropic, session: aiohttp.ClientSession, api_key: str | None = None, **kw: Any
) -> CloudTarget:
    settings = ProviderSettings(
        name="claude", kind="anthropic", base_url=fake.url, api_key=api_key or fake.api_key
    )
    return CloudTarget("claude", AnthropicAdapter(settings), session, egress=egress_guard(), **kw)


def chat(stream: bool, **fields: Any) -> UpstreamRequest:
    payload: dict[str, Any] = {
        "model": "gpt-4o",
        "messages": [{"role": "system", "content": "You are a travel guide."}, QUESTION],
        "tools": [WEATHER],
        **fields,
    }
    if stream:
        payload |= {"stream": True, "stream_options": {"include_usage": True}}
    return UpstreamRequest(
        endpoint=Endpoint.CHAT,
        model="gpt-4o",
        target_model="claude-sonnet-4-5",
        body=orjson.dumps(payload),
        payload=payload,
        stream=stream,
        request_id="e2e1",
    )


async def read_stream(target: CloudTarget, request: UpstreamRequest) -> list[Any]:
    reply = await target.open(request)
    assert reply.chunks is not None and reply.content_type == "text/event-stream"
    data = b"".join([part async for part in reply.chunks])
    # The stream's end closed the reply: the provider's connection is given back.
    assert reply.close is None
    events = [e for e in data.decode().split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    return [e[6:] if e == "data: [DONE]" else orjson.loads(e[6:]) for e in events]


def sent_to_anthropic(fake: FakeAnthropic) -> dict[str, Any]:
    assert len(fake.received) == 1
    received = fake.received[0]
    assert received.headers["x-api-key"] == fake.api_key
    assert received.headers["anthropic-version"] == "2023-06-01"
    body: dict[str, Any] = received.body
    return body


def assert_question_sent(body: dict[str, Any]) -> None:
    assert body["system"] == "You are a travel guide."
    blocks = body["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/street.jpg"},
    }
    assert blocks[2]["source"] == {"type": "base64", "media_type": "image/png", "data": PNG}
    assert body["tools"][0]["input_schema"]["required"] == ["city"]


async def test_a_chat_with_tools_and_images_comes_back_as_an_openai_completion(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    fake.answer(TOOL_CALL_REPLY)
    reply = await target_for(fake, session).open(chat(stream=False))
    assert reply.status == 200 and reply.body is not None
    completion = ChatCompletion.model_validate_json(reply.body)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "That looks like Paris; let me check."
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert (call.id, call.function.name) == ("toolu_01P", "get_weather")
    assert orjson.loads(call.function.arguments) == {"city": "Paris"}
    assert completion.model == "gpt-4o"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 1150  # input + cache read + cache write
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 200
    assert reply.usage is not None and reply.usage.completion_tokens == 31
    body = sent_to_anthropic(fake)
    assert_question_sent(body)
    assert "stream" not in body


async def test_the_same_chat_streamed_comes_back_as_openai_chunks(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    fake.answer(TOOL_CALL_REPLY)
    target = target_for(fake, session)
    events = await read_stream(target, chat(stream=True))
    assert events[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(e) for e in events[:-1]]
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == "That looks like Paris; let me check."
    arguments = "".join(
        call.function.arguments or ""
        for c in chunks
        if c.choices
        for call in c.choices[0].delta.tool_calls or []
        if call.function is not None
    )
    assert orjson.loads(arguments) == {"city": "Paris"}
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["tool_calls"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 1150
    body = sent_to_anthropic(fake)
    assert_question_sent(body)
    assert body["stream"] is True


async def test_a_tool_loop_sends_the_results_back_in_a_shape_anthropic_accepts(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    fake.answer(TOOL_CALL_REPLY, Reply([{"type": "text", "text": "Sunny, 24C, in Paris."}]))
    target = target_for(fake, session)
    first = await target.open(chat(stream=False))
    assert first.body is not None
    assistant = orjson.loads(first.body)["choices"][0]["message"]
    call_id = assistant["tool_calls"][0]["id"]
    follow_up = [
        {"role": "system", "content": "You are a travel guide."},
        QUESTION,
        assistant,
        {"role": "tool", "tool_call_id": call_id, "content": "sunny, 24C"},
    ]
    second = await target.open(chat(stream=False, messages=follow_up))
    assert second.body is not None
    answer = ChatCompletion.model_validate_json(second.body).choices[0].message.content
    assert answer == "Sunny, 24C, in Paris."
    turns = fake.received[1].body["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[2]["content"] == [
        {"type": "tool_result", "tool_use_id": call_id, "content": "sunny, 24C"}
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_json_schema_answers_arrive_as_json_content(
    fake: FakeAnthropic, session: aiohttp.ClientSession, stream: bool
) -> None:
    plan = {"city": "Paris", "weather": "sunny"}
    fake.answer(
        Reply(
            [{"type": "tool_use", "id": "toolu_01J", "name": "json_response", "input": plan}],
            "tool_use",
        )
    )
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "place", "schema": {"type": "object", "properties": {}}},
    }
    request = chat(stream, response_format=response_format)
    target = target_for(fake, session)
    if stream:
        chunks = [
            ChatCompletionChunk.model_validate(e) for e in (await read_stream(target, request))[:-1]
        ]
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = [
            c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
        ]
    else:
        reply = await target.open(request)
        assert reply.body is not None
        choice = ChatCompletion.model_validate_json(reply.body).choices[0]
        content, finish = choice.message.content or "", [choice.finish_reason]
        assert choice.message.tool_calls is None
    assert orjson.loads(content) == plan
    assert finish == ["stop"]
    assert sent_to_anthropic(fake)["tool_choice"] == {"type": "any"}


# --- faults before the first byte ----------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "retryable", "retry_after_s"),
    [
        (Fault(status=429, error_type="rate_limit_error", retry_after="7"), 429, True, 7),
        (Fault(status=500, error_type="api_error"), 500, True, None),
        (Fault(status=529, error_type="overloaded_error", message="Overloaded"), 503, True, None),
        (Fault(status=529, error_type="overloaded_error", retry_after="2"), 503, True, 2),
    ],
    ids=["429-retry-after", "500", "529", "529-retry-after"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_provider_errors_become_upstream_errors(
    fake: FakeAnthropic,
    session: aiohttp.ClientSession,
    fault: Fault,
    status: int,
    retryable: bool,
    retry_after_s: float | None,
    stream: bool,
) -> None:
    fake.fail(fault)
    with pytest.raises(UpstreamError) as caught:
        await target_for(fake, session, retry=ONE_TRY).open(chat(stream))
    err = caught.value
    assert (err.status, err.retryable, err.retry_after_s) == (status, retryable, retry_after_s)
    assert err.code == fault.error_type
    assert len(fake.received) == 1


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=429, error_type="rate_limit_error", retry_after="0.1"),
        Fault(status=529, error_type="overloaded_error", message="Overloaded"),
        Fault(status=500, error_type="api_error"),
    ],
    ids=["429-short-retry-after", "529", "500"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_a_passing_rate_limit_or_overload_is_retried_unseen_by_the_client(
    fake: FakeAnthropic, session: aiohttp.ClientSession, fault: Fault, stream: bool
) -> None:
    fake.fail(fault)
    fake.answer(TOOL_CALL_REPLY)
    target = target_for(fake, session, retry=QUICK_RETRY)
    if stream:
        events = await read_stream(target, chat(stream=True))
        assert events[-1] == "[DONE]"
        content = "".join(
            e["choices"][0]["delta"].get("content") or "" for e in events[:-1] if e["choices"]
        )
    else:
        reply = await target.open(chat(stream=False))
        assert reply.body is not None
        content = ChatCompletion.model_validate_json(reply.body).choices[0].message.content or ""
    assert content == "That looks like Paris; let me check."
    assert len(fake.received) == 2, "the fault, then the retry that answered"
    assert fake.received[0].body == fake.received[1].body, "the same request sent again"


async def test_a_retry_after_longer_than_the_policy_waits_is_not_waited_out(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    fake.fail(Fault(status=429, error_type="rate_limit_error", retry_after="30"))
    target = target_for(fake, session, retry=QUICK_RETRY)
    with pytest.raises(UpstreamError) as caught:
        await target.open(chat(stream=False))
    assert (caught.value.status, caught.value.retry_after_s) == (429, 30)
    assert len(fake.received) == 1
    assert not target.ready, "the target sits out what the provider asked"


async def test_a_request_anthropic_refuses_is_a_400_that_says_why(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    call = {
        "id": "toolu_9",
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{}"},
    }
    history = [
        QUESTION,
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "toolu_9", "content": "rain"},
    ]
    request = chat(stream=False, messages=history, tools=None)
    with pytest.raises(UpstreamError) as caught:
        await target_for(fake, session).open(request)
    err = caught.value
    assert (err.status, err.retryable, err.type) == (400, False, "invalid_request_error")
    assert "must define tools" in err.message


async def test_a_rejected_key_is_a_401_that_never_shows_the_key(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    wrong_key = "sk-ant-wrong-key-0000"
    with pytest.raises(UpstreamError) as caught:
        await target_for(fake, session, api_key=wrong_key).open(chat(stream=False))
    err = caught.value
    # The gateway's key, not the client's: a 502 the route may fail over from, never a 401.
    assert (err.status, err.retryable, err.code) == (502, True, "provider_auth_failed")
    assert len(fake.received) == 1, "a refused key is not retried at the same target"
    assert wrong_key not in err.message and wrong_key not in err.body().decode()
    assert "api_key" in err.message


async def test_a_provider_silent_past_the_first_byte_timeout_is_a_retryable_504(
    fake: FakeAnthropic, session: aiohttp.ClientSession
) -> None:
    fake.fail(Fault(delay_s=5.0))
    target = target_for(fake, session, timeouts=Timeouts(first_byte_s=0.3), retry=ONE_TRY)
    with pytest.raises(UpstreamError) as caught:
        await target.open(chat(stream=True))
    assert caught.value.retryable
    assert (caught.value.status, caught.value.code) == (504, "provider_timeout")
    assert "first_byte_s 0.3" in caught.value.message


# --- faults after the first byte: the stream ends with an OpenAI error event ----------------


@pytest.mark.parametrize(
    ("fault", "code", "error_type"),
    [
        (Fault(cut_after=6), "provider_stream_cut", "upstream_error"),
        (Fault(end_after=6), "provider_stream_cut", "upstream_error"),
        (Fault(malformed_after=5), "provider_bad_stream", "upstream_error"),
        (
            Fault(error_event_after=5, error_type="overloaded_error", message="Overloaded"),
            "overloaded_error",
            "server_error",
        ),
        (
            Fault(error_event_after=5, error_type="api_error", message="Internal server error"),
            "api_error",
            "server_error",
        ),
    ],
    ids=["connection-cut", "ended-early", "malformed-event", "overloaded-event", "api-error-event"],
)
async def test_a_stream_broken_mid_way_ends_with_an_error_event(
    fake: FakeAnthropic, session: aiohttp.ClientSession, fault: Fault, code: str, error_type: str
) -> None:
    fault.reply = TOOL_CALL_REPLY
    fake.fail(fault)
    target = target_for(fake, session)
    events = await read_stream(target, chat(stream=True))
    assert "[DONE]" not in events
    *chunks, last = events
    assert chunks, "what came before the fault still reaches the client"
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    assert set(last) == {"error"}
    assert last["error"]["code"] == code
    assert last["error"]["type"] == error_type
    assert "claude" in last["error"]["message"]
    assert fake.api_key not in last["error"]["message"]
