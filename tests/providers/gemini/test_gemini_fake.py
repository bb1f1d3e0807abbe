"""The fake Gemini server is faithful: the official `google-genai` SDK, pointed at it, sends
requests it accepts and parses every answer it gives, errors and streams included; and the
fake rejects what the real API rejects."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from fakes.gemini_server import DEFAULT_KEY, FakeGemini
from google import genai
from google.genai import errors, types


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    server = FakeGemini()
    await server.start()
    yield server
    await server.stop()


def sdk(fake: FakeGemini, key: str = DEFAULT_KEY) -> genai.Client:
    options = types.HttpOptions(base_url=fake.url, retry_options=types.HttpRetryOptions(attempts=1))
    return genai.Client(api_key=key, http_options=options)


TWO_CALLS: dict[str, Any] = {
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [
                    {
                        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                        "thoughtSignature": base64.b64encode(b"sig-1").decode(),
                    },
                    {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
                ],
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 12, "totalTokenCount": 52},
    "modelVersion": "gemini-2.5-flash",
    "responseId": "resp-1",
}


async def test_sdk_request_with_every_field_passes_the_fake_and_parses_its_answer(
    fake: FakeGemini,
) -> None:
    fake.answer(TWO_CALLS)
    weather = types.FunctionDeclaration(
        name="get_weather",
        description="Weather for a city",
        parameters=types.Schema(
            type=types.Type.OBJECT,
            properties={"city": types.Schema(type=types.Type.STRING)},
            required=["city"],
        ),
    )
    config = types.GenerateContentConfig(
        system_instruction="Answer briefly.",
        tools=[types.Tool(function_declarations=[weather])],
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(
                mode=types.FunctionCallingConfigMode.ANY, allowed_function_names=["get_weather"]
            )
        ),
        temperature=0.2,
        top_p=0.9,
        max_output_tokens=64,
        stop_sequences=["END"],
        seed=7,
        candidate_count=1,
    )
    contents = [
        types.Content(
            role="user",
            parts=[
                types.Part(text="Weather in Paris and Rome? And what is this?"),
                types.Part.from_bytes(data=b"\x89PNG fake", mime_type="image/png"),
                types.Part.from_uri(file_uri="https://example.com/cat.jpg", mime_type="image/jpeg"),
            ],
        )
    ]
    response = await sdk(fake).aio.models.generate_content(
        model="gemini-2.5-flash", contents=contents, config=config
    )

    seen = fake.received[-1]
    assert seen.problems == []
    assert seen.model == "gemini-2.5-flash" and seen.action == "generateContent"
    assert seen.headers["x-goog-api-key"] == DEFAULT_KEY and "key" not in seen.query
    calls = response.function_calls or []
    assert [(c.name, c.args) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome"}),
    ]
    assert response.candidates and response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.candidates[0].content.parts[0].thought_signature == b"sig-1"  # type: ignore[union-attr,index]
    assert response.usage_metadata and response.usage_metadata.prompt_token_count == 40


async def test_sdk_reads_the_fakes_stream_as_gemini_streams(fake: FakeGemini) -> None:
    fake.answer(
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": "Bonjour tout le monde"}]},
                    "finishReason": "MAX_TOKENS",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 3,
                "candidatesTokenCount": 5,
                "cachedContentTokenCount": 2,
                "thoughtsTokenCount": 4,
                "totalTokenCount": 12,
            },
        }
    )
    chunks = [
        c
        async for c in await sdk(fake).aio.models.generate_content_stream(
            model="gemini-2.5-flash", contents="Say hello in French"
        )
    ]
    assert fake.received[-1].query == {"alt": "sse"} and fake.received[-1].problems == []
    assert len(chunks) == 2
    assert "".join(c.text or "" for c in chunks) == "Bonjour tout le monde"
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert last.usage_metadata and last.usage_metadata.cached_content_token_count == 2


async def test_sdk_raises_the_fakes_errors_with_their_code_and_status(fake: FakeGemini) -> None:
    fake.fail(status=429, status_name="RESOURCE_EXHAUSTED", retry_after="7")
    with pytest.raises(errors.ClientError) as caught:
        await sdk(fake).aio.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert caught.value.code == 429 and caught.value.status == "RESOURCE_EXHAUSTED"

    fake.fail(status=503, status_name="UNAVAILABLE")
    with pytest.raises(errors.ServerError) as server:
        await sdk(fake).aio.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert server.value.code == 503

    fake.reset()
    with pytest.raises(errors.ClientError) as bad_key:
        await sdk(fake, key="not-the-key").aio.models.generate_content(
            model="gemini-2.5-flash", contents="hi"
        )
    assert bad_key.value.code == 400 and "API key not valid" in (bad_key.value.message or "")


async def test_sdk_raises_on_the_fakes_mid_stream_error_event(fake: FakeGemini) -> None:
    fake.answer(
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": "abcdef"}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ]
        }
    )
    fake.fail(error_after_chunks=1)
    received: list[str] = []
    with pytest.raises(errors.APIError) as caught:
        async for chunk in await sdk(fake).aio.models.generate_content_stream(
            model="gemini-2.5-flash", contents="hi"
        ):
            received.append(chunk.text or "")
    assert received == ["abc"]
    assert caught.value.code == 503 and caught.value.status == "UNAVAILABLE"


async def raw_post(fake: FakeGemini, body: Any, key: str | None = DEFAULT_KEY) -> tuple[int, Any]:
    headers = {"x-goog-api-key": key} if key else {}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{fake.url}/v1beta/models/gemini-2.5-flash:generateContent", json=body, headers=headers
        ) as resp,
    ):
        return resp.status, await resp.json()


USER_HI = {"role": "user", "parts": [{"text": "hi"}]}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]},
            "role must be user or model",
        ),
        (
            {"contents": [USER_HI], "generationConfig": {"max_tokens": 5}},
            'Unknown name "maxTokens"',
        ),
        (
            {
                "contents": [USER_HI],
                "tools": [
                    {
                        "functionDeclarations": [
                            {
                                "name": "f",
                                "parameters": {
                                    "type": "OBJECT",
                                    "properties": {"a": {"type": "STRING"}},
                                    "additionalProperties": False,
                                },
                            }
                        ]
                    }
                ],
            },
            'Unknown name "additionalProperties"',
        ),
        (
            {
                "contents": [
                    USER_HI,
                    {
                        "role": "model",
                        "parts": [
                            {"functionCall": {"name": "f", "args": {}}},
                            {"functionCall": {"name": "f", "args": {}}},
                        ],
                    },
                    {
                        "role": "user",
                        "parts": [{"functionResponse": {"name": "f", "response": {}}}],
                    },
                ]
            },
            "number of function response parts",
        ),
        (
            {
                "contents": [
                    {
                        "role": "user",
                        "parts": [
                            {"text": "a", "inlineData": {"mimeType": "image/png", "data": "AA=="}}
                        ],
                    }
                ]
            },
            "exactly one of",
        ),
        (
            {"contents": [USER_HI], "generationConfig": {"responseJsonSchema": {"type": "object"}}},
            "needs responseMimeType application/json",
        ),
    ],
)
async def test_the_fake_rejects_what_gemini_rejects(
    fake: FakeGemini, body: dict[str, Any], expected: str
) -> None:
    status, answer = await raw_post(fake, body)
    assert status == 400
    assert answer["error"]["status"] == "INVALID_ARGUMENT"
    assert expected in answer["error"]["message"]


async def test_the_fake_wants_the_key_in_the_header(fake: FakeGemini) -> None:
    status, answer = await raw_post(fake, {"contents": [USER_HI]}, key=None)
    assert (status, answer["error"]["status"]) == (403, "PERMISSION_DENIED")
