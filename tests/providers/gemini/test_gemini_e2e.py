"""`CloudTarget` + `GeminiAdapter` over real HTTP against the fake Gemini server: a chat with
tools and an image, whole and streamed, read back with the `openai` SDK's types; and each
injected fault ending in the right `UpstreamError` or a terminating SSE error event.

The shared `target` tries once, so a test sees the fake's fault as the provider gave it;
`CloudTarget` retries 429 and 5xx itself, which the retry tests check with their own target."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from fakes.gemini_server import FakeGemini
from guard import egress_guard
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from test_gemini_golden import parse_sse, upstream

from spillgate.errors import UpstreamError
from spillgate.fallback.adapter import CloudTarget, ProviderSettings
from spillgate.fallback.gemini.adapter import GeminiAdapter
from spillgate.fallback.resilience import RetryPolicy, Timeouts
from spillgate.protocol import UpstreamReply

KEY = "e2e-gemini-key-7c1d"
ONE_TRY = RetryPolicy(max_attempts=1)
# Two tries with a backoff short enough not to slow the suite.
QUICK_RETRY = RetryPolicy(max_attempts=2, backoff_base_s=0.01, backoff_max_s=0.02)
SIGNATURE = base64.b64encode(b"thought-signature-from-gemini").decode()
PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n pixels").decode()
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
CHAT = {
    "model": "smart",
    "messages": [
        {"role": "system", "content": "You are a weather bot."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather where this photo was taken, and in Rome?"},
                {"type": "image_url", "image_url": {"url": PNG}},
                {"type": "image_url", "image_url": {"url": "https://example.com/paris.webp"}},
            ],
        },
    ],
    "tools": [WEATHER],
    "tool_choice": "auto",
}
TWO_CALLS = {
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [
                    {"text": "Checking both."},
                    {
                        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                        "thoughtSignature": SIGNATURE,
                    },
                    {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
                ],
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 300,
        "cachedContentTokenCount": 100,
        "candidatesTokenCount": 20,
        "thoughtsTokenCount": 10,
        "totalTokenCount": 330,
    },
    "modelVersion": "gemini-2.5-flash",
    "responseId": "e2e-1",
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    server = FakeGemini(api_key=KEY)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def target_for(
    fake: FakeGemini, session: aiohttp.ClientSession, api_key: str = KEY, **resilience: Any
) -> CloudTarget:
    settings = ProviderSettings(
        name="gemini-e2e", kind="gemini", base_url=fake.url, api_key=api_key
    )
    return CloudTarget(
        "gemini-e2e", GeminiAdapter(settings), session, egress=egress_guard(), **resilience
    )


@pytest.fixture
def target(fake: FakeGemini, session: aiohttp.ClientSession) -> CloudTarget:
    return target_for(fake, session, timeouts=Timeouts(first_byte_s=5), retry=ONE_TRY)


async def read_stream(reply: UpstreamReply) -> list[Any]:
    assert reply.chunks is not None
    return parse_sse(b"".join([chunk async for chunk in reply.chunks]))


async def test_chat_with_tools_and_an_image_then_the_tool_results(
    fake: FakeGemini, target: CloudTarget
) -> None:
    fake.answer(TWO_CALLS)
    reply = await target.open(upstream(CHAT, "gemini-2.5-flash", stream=False))
    assert reply.body is not None
    completion = ChatCompletion.model_validate_json(reply.body)

    sent = fake.received[-1]
    assert sent.problems == [] and sent.model == "gemini-2.5-flash"
    assert sent.headers["x-goog-api-key"] == KEY and "key" not in sent.query
    parts = sent.body["contents"][0]["parts"]
    assert parts[1]["inlineData"]["mimeType"] == "image/png"
    assert parts[2]["fileData"] == {
        "mimeType": "image/webp",
        "fileUri": "https://example.com/paris.webp",
    }

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking both."
    calls = choice.message.tool_calls or []
    assert [(c.function.name, orjson.loads(c.function.arguments)) for c in calls] == [  # type: ignore[union-attr]
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome"}),
    ]
    assert len({c.id for c in calls}) == 2
    assert completion.usage is not None and completion.usage.completion_tokens == 30
    assert reply.usage is not None and reply.usage.cached_tokens == 100

    # The client sends the tool results back as OpenAI clients do: the assistant message as it
    # came, then one tool message per call id. Gemini must get the signature back on the call.
    follow_up = {
        **CHAT,
        "messages": [
            *CHAT["messages"],
            choice.message.model_dump(exclude_none=True),
            *[{"role": "tool", "tool_call_id": c.id, "content": '{"temp_c": 20}'} for c in calls],
        ],
    }
    fake.answer(
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": "Both 20C."}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ]
        }
    )
    final = await target.open(upstream(follow_up, "gemini-2.5-flash", stream=False))
    assert final.body is not None
    assert ChatCompletion.model_validate_json(final.body).choices[0].message.content == "Both 20C."
    contents = fake.received[-1].body["contents"]
    assert fake.received[-1].problems == []
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"][1]["thoughtSignature"] == SIGNATURE
    assert [p["functionResponse"]["name"] for p in contents[2]["parts"]] == ["get_weather"] * 2


async def test_streamed_chat_with_tools_and_an_image(fake: FakeGemini, target: CloudTarget) -> None:
    fake.answer(TWO_CALLS)
    request = upstream(
        {**CHAT, "stream_options": {"include_usage": True}}, "gemini-2.5-flash", True
    )
    reply = await target.open(request)
    assert reply.content_type == "text/event-stream"
    events = await read_stream(reply)

    assert fake.received[-1].action == "streamGenerateContent"
    assert fake.received[-1].query == {"alt": "sse"}
    assert events[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(e) for e in events[:-1]]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    calls = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or []]
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert text == "Checking both."
    assert [(t.index, t.function.name) for t in calls] == [(0, "get_weather"), (1, "get_weather")]  # type: ignore[union-attr]
    assert finishes == ["tool_calls"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 300
    assert reply.usage is not None and reply.usage.completion_tokens == 30


@pytest.mark.parametrize(
    ("fault", "status", "retryable", "retry_after"),
    [
        ({"status": 429, "status_name": "RESOURCE_EXHAUSTED", "retry_after": "7"}, 429, True, 7.0),
        ({"status": 500, "status_name": "INTERNAL"}, 500, True, None),
        ({"status": 503, "status_name": "UNAVAILABLE"}, 503, True, None),
        ({"status": 400, "status_name": "INVALID_ARGUMENT"}, 400, False, None),
    ],
)
async def test_an_error_answer_becomes_the_right_upstream_error(
    fake: FakeGemini,
    target: CloudTarget,
    fault: dict[str, Any],
    status: int,
    retryable: bool,
    retry_after: float | None,
) -> None:
    fake.fail(**fault)
    for stream in (False, True):
        with pytest.raises(UpstreamError) as caught:
            await target.open(upstream(CHAT, "gemini-2.5-flash", stream=stream))
        error = caught.value
        assert (error.status, error.retryable, error.retry_after_s) == (
            status,
            retryable,
            retry_after,
        )
        assert KEY not in error.message
    assert len(fake.received) == 2, "one call each, whole and streamed"


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 429, "status_name": "RESOURCE_EXHAUSTED", "retry_after": "0.1"},
        {"status": 503, "status_name": "UNAVAILABLE"},
        {"status": 500, "status_name": "INTERNAL"},
    ],
    ids=["429-short-retry-after", "503", "500"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_a_passing_rate_limit_or_overload_is_retried_unseen_by_the_client(
    fake: FakeGemini, session: aiohttp.ClientSession, fault: dict[str, Any], stream: bool
) -> None:
    fake.fail(**fault, times=1)
    fake.answer(TWO_CALLS)
    target = target_for(fake, session, retry=QUICK_RETRY)
    reply = await target.open(upstream(CHAT, "gemini-2.5-flash", stream=stream))
    if stream:
        events = await read_stream(reply)
        assert events[-1] == "[DONE]"
        chunks = [ChatCompletionChunk.model_validate(e) for e in events[:-1]]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        assert reply.body is not None
        text = ChatCompletion.model_validate_json(reply.body).choices[0].message.content or ""
    assert text == "Checking both."
    assert len(fake.received) == 2, "the fault, then the retry that answered"
    assert fake.received[0].body == fake.received[1].body, "the same request sent again"


async def test_gemini_s_own_retry_delay_beyond_the_policy_is_not_waited_out(
    fake: FakeGemini, session: aiohttp.ClientSession
) -> None:
    # No Retry-After header: the fake's 429 carries only Gemini's RetryInfo ("7s").
    fake.fail(status=429, status_name="RESOURCE_EXHAUSTED")
    target = target_for(fake, session, retry=RetryPolicy(max_attempts=2, max_retry_after_s=2))
    with pytest.raises(UpstreamError) as caught:
        await target.open(upstream(CHAT, "gemini-2.5-flash", stream=False))
    assert (caught.value.status, caught.value.retry_after_s) == (429, 7.0)
    assert len(fake.received) == 1
    assert not target.ready, "the target sits out what Gemini asked"


async def test_a_wrong_key_is_a_clear_error_without_the_key(
    fake: FakeGemini, session: aiohttp.ClientSession
) -> None:
    target = target_for(fake, session, api_key="bad")
    with pytest.raises(UpstreamError) as caught:
        await target.open(upstream(CHAT, "gemini-2.5-flash", stream=False))
    assert caught.value.status == 502 and caught.value.code == "provider_auth_failed"
    assert "API key not valid" in caught.value.message
    assert "bad" not in caught.value.message.replace("API key not valid", "")
    assert len(fake.received) == 1, "a refused key is not retried"


async def test_no_first_byte_in_time_is_a_retryable_504(
    fake: FakeGemini, session: aiohttp.ClientSession
) -> None:
    fake.fail(first_byte_delay_s=1.0)
    target = target_for(fake, session, timeouts=Timeouts(first_byte_s=0.2), retry=ONE_TRY)
    with pytest.raises(UpstreamError) as caught:
        await target.open(upstream(CHAT, "gemini-2.5-flash", stream=True))
    assert (caught.value.status, caught.value.retryable) == (504, True)
    assert caught.value.code == "provider_timeout" and "first_byte_s 0.2" in caught.value.message


@pytest.mark.parametrize(
    ("fault", "code", "says"),
    [
        ({"cut_after_chunks": 2}, "provider_stream_cut", "gemini-e2e"),
        ({"malformed_after_chunks": 2}, "provider_bad_stream", "malformed"),
        ({"error_after_chunks": 2}, "unavailable", "overloaded"),
    ],
)
async def test_a_stream_broken_midway_ends_with_an_error_event(
    fake: FakeGemini, target: CloudTarget, fault: dict[str, Any], code: str, says: str
) -> None:
    fake.answer(TWO_CALLS)
    fake.fail(**fault)
    reply = await target.open(upstream(CHAT, "gemini-2.5-flash", stream=True))
    events = await read_stream(reply)

    assert "[DONE]" not in events
    # The two events sent before the break (the text, in halves) reach the client first.
    before = [ChatCompletionChunk.model_validate(e) for e in events[:-1]]
    assert "".join(c.choices[0].delta.content or "" for c in before) == "Checking both."
    error = events[-1]["error"]
    assert error["code"] == code and says in error["message"]
    assert KEY not in error["message"]
