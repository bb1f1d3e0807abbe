"""The fake Anthropic server is faithful: the official `anthropic` SDK, pointed at it,
sends requests it accepts and parses everything it answers, streams and errors included;
and it refuses what the documented schema forbids, in Anthropic's error shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import Message
from anthropic.types.shared import ErrorResponse
from fakes.anthropic_server import FakeAnthropic, Fault, Reply

PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5E"
    "rkJggg=="
)
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
TOOL_REPLY = Reply(
    content=[
        {"type": "text", "text": "Checking the weather in Paris for you."},
        {"type": "tool_use", "id": "toolu_01X", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    stop_reason="tool_use",
    usage={"input_tokens": 40, "output_tokens": 22, "cache_read_input_tokens": 10},
)
# A request the SDK builds with every block kind the adapter sends.
FULL_HISTORY: list[Any] = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in these, and the weather?"},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        ],
    },
    {
        "role": "assistant",
        "content": [
            {
                "type": "tool_use",
                "id": "toolu_01W",
                "name": "get_weather",
                "input": {"city": "Paris"},
            }
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01W", "content": "18C"},
            {"type": "text", "text": "Thanks."},
        ],
    },
]


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[FakeAnthropic]:
    fake = await FakeAnthropic().start()
    yield fake
    await fake.stop()


@pytest.fixture
def fake(server: FakeAnthropic) -> FakeAnthropic:
    server.reset()
    return server


def sdk_for(fake: FakeAnthropic, api_key: str) -> anthropic.AsyncAnthropic:
    """The SDK speaking the protocol version the adapter does, with its `x-api-key` header
    (a current SDK defaults to a newer version and a bearer token)."""
    return anthropic.AsyncAnthropic(
        api_key=None,
        base_url=fake.url,
        max_retries=0,
        default_headers={"x-api-key": api_key, "anthropic-version": "2023-06-01"},
    )


@pytest.fixture
def sdk(fake: FakeAnthropic) -> anthropic.AsyncAnthropic:
    return sdk_for(fake, fake.api_key)


async def test_the_sdk_request_passes_and_its_parser_reads_the_answer(
    fake: FakeAnthropic, sdk: anthropic.AsyncAnthropic
) -> None:
    fake.answer(TOOL_REPLY)
    raw = await sdk.messages.with_raw_response.create(
        model="claude-haiku-4-5",
        max_tokens=100,
        system="Be brief.",
        messages=FULL_HISTORY,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        stop_sequences=["END"],
        metadata={"user_id": "u1"},
        extra_body={"temperature": 0.5, "top_p": 0.9},  # 2023-06-01 has them; SDK 2.x does not
    )
    message = Message.model_validate(raw.http_response.json())  # strict, unlike the SDK's own
    parsed = await raw.parse()
    assert parsed.content[1].type == "tool_use"
    assert parsed.content[1].input == {"city": "Paris"}
    assert message.stop_reason == "tool_use"
    assert message.usage.cache_read_input_tokens == 10
    assert fake.received[-1].headers["anthropic-version"] == "2023-06-01"


async def test_the_sdk_stream_accumulates_the_scripted_answer(
    fake: FakeAnthropic, sdk: anthropic.AsyncAnthropic
) -> None:
    fake.answer(TOOL_REPLY)
    async with sdk.messages.stream(
        model="claude-haiku-4-5", max_tokens=100, messages=FULL_HISTORY, tools=[WEATHER_TOOL]
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert final.content[0].type == "text"
    assert final.content[0].text == TOOL_REPLY.content[0]["text"]
    assert final.content[1].type == "tool_use"
    assert final.content[1].input == {"city": "Paris"}  # rebuilt from input_json_delta pieces
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == 22
    assert kinds[0] == "message_start" and "message_stop" in kinds


async def test_the_stream_follows_the_documented_event_sequence(fake: FakeAnthropic) -> None:
    fake.answer(Reply())
    body = {
        "model": "m",
        "max_tokens": 5,
        "stream": True,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    headers = {"x-api-key": fake.api_key, "anthropic-version": "2023-06-01"}
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{fake.url}/v1/messages", json=body, headers=headers)
    assert resp.headers["content-type"].startswith("text/event-stream")
    names = [line[7:] for line in resp.text.splitlines() if line.startswith("event: ")]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]


async def test_an_error_event_mid_stream_is_raised_by_the_sdk(
    fake: FakeAnthropic, sdk: anthropic.AsyncAnthropic
) -> None:
    fake.fail(Fault(error_event_after=4, error_type="overloaded_error", message="Overloaded"))
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with sdk.messages.stream(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "Hi"}]
        ) as stream:
            async for _ in stream:
                pass
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "overloaded_error"


@pytest.mark.parametrize(
    ("fault", "sdk_error", "status"),
    [
        (
            Fault(status=429, error_type="rate_limit_error", retry_after="3"),
            anthropic.RateLimitError,
            429,
        ),
        (Fault(status=500, error_type="api_error"), anthropic.InternalServerError, 500),
        (Fault(status=529, error_type="overloaded_error"), anthropic.OverloadedError, 529),
    ],
)
async def test_scripted_errors_are_what_the_sdk_expects(
    fake: FakeAnthropic,
    sdk: anthropic.AsyncAnthropic,
    fault: Fault,
    sdk_error: type[anthropic.APIStatusError],
    status: int,
) -> None:
    fake.fail(fault)
    with pytest.raises(sdk_error) as caught:
        await sdk.messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.status_code == status
    ErrorResponse.model_validate(caught.value.body)
    if fault.retry_after:
        assert caught.value.response.headers["retry-after"] == fault.retry_after


async def test_a_wrong_key_is_an_authentication_error(fake: FakeAnthropic) -> None:
    sdk = sdk_for(fake, "sk-ant-wrong")
    with pytest.raises(anthropic.AuthenticationError):
        await sdk.messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "Hi"}]
        )


def _user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"max_tokens": None}, "max_tokens: Field required"),
        ({"seed": 1}, "seed: Extra inputs are not permitted"),
        ({"temperature": 1.5}, "temperature"),
        ({"messages": []}, "at least one message"),
        ({"messages": [_user("a"), _user("b")]}, "roles must alternate"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({"messages": [_user([{"type": "text", "text": ""}])]}, "must be non-empty"),
        ({"messages": [_user("")]}, "non-empty content"),
        (
            {
                "messages": [
                    _user(
                        [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/bmp",
                                    "data": PNG,
                                },
                            }
                        ]
                    )
                ]
            },
            "media_type",
        ),
        (
            {
                "messages": [
                    _user(
                        [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": "@@",
                                },
                            }
                        ]
                    )
                ]
            },
            "base64",
        ),
        ({"messages": [_user([{"type": "image_url", "image_url": {"url": "x"}}])]}, "not allowed"),
        (
            {
                "messages": [
                    _user([{"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"}])
                ],
                "tools": [WEATHER_TOOL],
            },
            "unexpected tool_use_id",
        ),
        (
            {"messages": [*FULL_HISTORY[:2], _user("no result")], "tools": [WEATHER_TOOL]},
            "without tool_result",
        ),
        ({"messages": FULL_HISTORY}, "must define tools"),
        (
            {
                "messages": [*FULL_HISTORY[:2], _user(list(reversed(FULL_HISTORY[2]["content"])))],
                "tools": [WEATHER_TOOL],
            },
            "must come first",
        ),
        ({"tools": [{"name": "bad name!", "input_schema": {"type": "object"}}]}, "tools.0.name"),
        ({"tools": [{"type": "web_search", "name": "web_search"}]}, "tools.0.type"),
        ({"thinking": {"type": "enabled", "budget_tokens": 100}}, "thinking.budget_tokens"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "greater than thinking"),
        (
            {
                "messages": [
                    _user(
                        [
                            {
                                "type": "document",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": "x",
                                },
                            }
                        ]
                    )
                ]
            },
            "source.media_type",
        ),
        (
            {"messages": [_user("Hi"), {"role": "assistant", "content": [{"type": "thinking"}]}]},
            "messages.1.content.0.thinking",
        ),
        ({"output_config": {"format": {"type": "json_object"}}}, "output_config.format"),
        ({"tools": [{"name": "f", "parameters": {"type": "object"}}]}, "Extra inputs"),
        (
            {"tools": [WEATHER_TOOL], "tool_choice": {"type": "tool", "name": "other"}},
            "tool_choice.name",
        ),
        ({"tools": [WEATHER_TOOL], "tool_choice": {"type": "required"}}, "tool_choice.type"),
        (
            {
                "tool_choice": {"type": "none", "disable_parallel_tool_use": True},
                "tools": [WEATHER_TOOL],
            },
            "Extra inputs",
        ),
    ],
)
async def test_the_fake_refuses_what_the_schema_forbids(
    fake: FakeAnthropic, change: dict[str, Any], words: str
) -> None:
    body: dict[str, Any] = {"model": "m", "max_tokens": 5, "messages": [_user("Hi")], **change}
    body = {k: v for k, v in body.items() if v is not None}
    headers = {"x-api-key": fake.api_key, "anthropic-version": "2023-06-01"}
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{fake.url}/v1/messages", json=body, headers=headers)
    assert resp.status_code == 400, resp.text
    error = ErrorResponse.model_validate(resp.json())
    assert error.error.type == "invalid_request_error"
    assert words in error.error.message


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"anthropic-version": "2023-06-01"}, 401),
        ({"x-api-key": "KEY"}, 400),
        ({"x-api-key": "KEY", "anthropic-version": "2020-01-01"}, 400),
    ],
)
async def test_the_fake_checks_the_required_headers(
    fake: FakeAnthropic, headers: dict[str, str], status: int
) -> None:
    headers = {k: v.replace("KEY", fake.api_key) for k, v in headers.items()}
    body = {"model": "m", "max_tokens": 5, "messages": [_user("Hi")]}
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{fake.url}/v1/messages", json=body, headers=headers)
    assert resp.status_code == status
    ErrorResponse.model_validate(resp.json())
