"""What the Gemini adapter refuses (a 400 that names the field and says what to change) and
how it maps Gemini's error answers, whole and mid-stream."""

from __future__ import annotations

import base64
from collections.abc import Collection
from typing import Any

import orjson
import pytest
from test_gemini_golden import KEY, adapter, upstream

from spillgate.errors import GatewayError, UpstreamError
from spillgate.fallback.gemini.ids import new_call_id, split_call_id
from spillgate.protocol import Endpoint

HI = [{"role": "user", "content": "hi"}]


def build(
    payload: dict[str, Any], drop_params: Collection[str] = (), **options: Any
) -> dict[str, Any]:
    call = adapter(options, drop_params).build(
        upstream({"model": "smart", **payload}, "gemini-2.5-flash", False)
    )
    return orjson.loads(call.body)


def refused(
    payload: dict[str, Any], drop_params: Collection[str] = (), **options: Any
) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        build(payload, drop_params, **options)
    assert caught.value.status == 400
    return caught.value


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.mark.parametrize(
    ("payload", "param", "says"),
    [
        ({"messages": HI, "logit_bias": {"1": 5}}, "logit_bias", "provider's drop_params"),
        ({"messages": HI, "logprobs": True}, "logprobs", "not supported by Gemini"),
        (
            {"messages": HI, "parallel_tool_calls": False},
            "parallel_tool_calls",
            "one tool at a time",
        ),
        ({"messages": HI, "functions": [{"name": "f"}]}, "functions", "not supported"),
        (
            {"messages": [{"role": "system", "content": "only a system prompt"}]},
            "messages",
            "at least one user",
        ),
        (
            {"messages": [{"role": "narrator", "content": "x"}]},
            "messages[0].role",
            "must be system",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": "https://example.com/render?id=7"},
                            }
                        ],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
            "base64 data URL instead",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": "http://example.com/cat.png"},
                            }
                        ],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
            "must be https",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
            "data:<type>;base64,",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "file", "file": {"file_id": "f-1"}}]}
                ]
            },
            "messages[0].content[0].file",
            "file_data",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "video", "video": {}}]}]},
            "messages[0].content[0]",
            "text, image_url, input_audio or file",
        ),
        (
            {
                "messages": [
                    {
                        "role": "system",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": "data:image/png;base64,AA=="},
                            }
                        ],
                    },
                    *HI,
                ]
            },
            "messages[0].content[0]",
            "only text",
        ),
        (
            {"messages": [*HI, {"role": "tool", "tool_call_id": "call_unknown", "content": "42"}]},
            "messages[1].tool_call_id",
            "keep the assistant turn",
        ),
        (
            {
                "messages": [
                    *HI,
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{not json"},
                            }
                        ],
                    },
                ]
            },
            "messages[1].tool_calls[0].function.arguments",
            "JSON object",
        ),
        (
            {
                "messages": HI,
                "tools": [WEATHER],
                "tool_choice": {"type": "function", "function": {"name": "get_time"}},
            },
            "tool_choice",
            "not among `tools`",
        ),
        ({"messages": HI, "tool_choice": "required"}, "tool_choice", "`tools` is empty"),
        (
            {"messages": HI, "tools": [{"type": "custom", "custom": {"name": "x"}}]},
            "tools[0]",
            "type `function`",
        ),
        (
            {
                "messages": HI,
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "walk",
                            "parameters": {
                                "type": "object",
                                "properties": {"node": {"$ref": "#/$defs/Node"}},
                                "$defs": {
                                    "Node": {
                                        "type": "object",
                                        "properties": {"next": {"$ref": "#/$defs/Node"}},
                                    }
                                },
                            },
                        },
                    }
                ],
            },
            "tools[0].function.parameters.properties.node.properties.next",
            "recursive",
        ),
        (
            {
                "messages": HI,
                "response_format": {"type": "json_schema", "json_schema": {"name": "x"}},
            },
            "response_format",
            "schema` is required",
        ),
        ({"messages": HI, "response_format": {"type": "yaml"}}, "response_format", "json_object"),
        ({"messages": HI, "stop": 5}, "stop", "array of strings"),
    ],
)
def test_what_gemini_cannot_take_is_a_400_naming_the_field(
    payload: dict[str, Any], param: str, says: str
) -> None:
    error = refused(payload)
    assert error.param == param
    assert says in error.message
    assert error.type == "invalid_request_error"
    body = orjson.loads(error.body())["error"]
    assert body["param"] == param and body["message"] == error.message


def test_drop_params_drops_only_what_it_lists() -> None:
    assert build({"messages": HI, "logit_bias": {"1": 5}}, drop_params=["logit_bias"]) == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}]
    }
    assert (
        refused(
            {"messages": HI, "logit_bias": {"1": 5}, "logprobs": True}, drop_params=["logit_bias"]
        ).param
        == "logprobs"
    )
    assert "generationConfig" not in build(
        {"messages": HI, "logprobs": True}, drop_params=["logprobs"]
    )


def test_a_prompt_never_appears_in_a_refusal() -> None:
    secret_prompt = "my bank PIN is 9911"
    error = refused({"messages": [{"role": "user", "content": secret_prompt}], "top_logprobs": 3})
    assert secret_prompt not in error.message


def test_only_chat_completions_goes_to_gemini() -> None:
    request = upstream({"model": "smart", "input": "x"}, "gemini-2.5-flash", False)
    request.endpoint = Endpoint.EMBEDDINGS
    with pytest.raises(GatewayError) as caught:
        adapter().build(request)
    assert caught.value.status == 400 and caught.value.code == "unsupported_endpoint"
    assert "/v1/embeddings" in caught.value.message and "gemini" in caught.value.message


def test_key_goes_in_the_header_and_model_in_the_path() -> None:
    gemini = adapter({"api_version": "v1"})
    call = gemini.build(upstream({"model": "smart", "messages": HI}, "models/gemini-2.5-pro", True))
    assert call.url == (
        "https://generativelanguage.googleapis.com/v1/models/gemini-2.5-pro"
        ":streamGenerateContent?alt=sse"
    )
    assert call.headers["x-goog-api-key"] == KEY and KEY not in call.url
    assert KEY not in repr(gemini.settings)


def test_a_thought_signature_survives_the_round_trip_through_the_client() -> None:
    signature = base64.b64encode(b"\x00\xffsig").decode()
    call_id = new_call_id(signature)
    assert split_call_id(call_id) == signature and split_call_id(new_call_id()) is None
    body = build(
        {
            "messages": [
                *HI,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": call_id, "content": "ok"},
            ]
        }
    )
    assert body["contents"][1]["parts"][0]["thoughtSignature"] == signature


# -- Gemini's error answers -------------------------------------------------------------------


def gemini_error(code: int, status: str, message: str = "boom", **extra: Any) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, "status": status, **extra}})


@pytest.mark.parametrize(
    ("http", "status", "expected", "kind", "retryable"),
    [
        (400, "INVALID_ARGUMENT", 400, "invalid_request_error", False),
        (400, "FAILED_PRECONDITION", 400, "invalid_request_error", False),
        # A refused key is the gateway's problem: 502, and the next target may serve.
        (401, "UNAUTHENTICATED", 502, "upstream_error", True),
        (403, "PERMISSION_DENIED", 502, "upstream_error", True),
        (404, "NOT_FOUND", 404, "not_found_error", False),
        (429, "RESOURCE_EXHAUSTED", 429, "rate_limit_error", True),
        (500, "INTERNAL", 500, "upstream_error", True),
        (503, "UNAVAILABLE", 503, "upstream_error", True),
        (504, "DEADLINE_EXCEEDED", 504, "upstream_error", True),
    ],
)
def test_gemini_statuses_map_to_openai_errors(
    http: int, status: str, expected: int, kind: str, retryable: bool
) -> None:
    error = adapter().error(http, gemini_error(http, status), {})
    assert (error.status, error.type, error.retryable) == (expected, kind, retryable)
    refused_key = status in ("UNAUTHENTICATED", "PERMISSION_DENIED")
    assert error.code == ("provider_auth_failed" if refused_key else status.lower())
    assert "boom" in error.message and status in error.message


def test_retry_after_comes_from_the_header_or_from_gemini_retry_info() -> None:
    body = gemini_error(
        429,
        "RESOURCE_EXHAUSTED",
        details=[{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}],
    )
    assert adapter().error(429, body, {"Retry-After": "12"}).retry_after_s == 12
    assert adapter().error(429, body, {}).retry_after_s == 37
    assert adapter().error(429, body, {}).headers() == {"retry-after": "37"}
    assert (
        adapter()
        .error(400, gemini_error(400, "INVALID_ARGUMENT"), {"retry-after": "5"})
        .retry_after_s
        is None
    )


def test_an_error_body_that_is_not_geminis_still_maps_by_http_status() -> None:
    error = adapter().error(502, b"<html>Bad Gateway</html>", {})
    assert (error.status, error.retryable) == (502, True)
    assert "<html>" not in error.message
    wrapped = orjson.dumps(
        [{"error": {"code": 429, "message": "slow", "status": "RESOURCE_EXHAUSTED"}}]
    )
    assert adapter().error(429, wrapped, {}).status == 429


def test_the_api_key_is_scrubbed_from_a_provider_message() -> None:
    error = adapter().error(
        400, gemini_error(400, "INVALID_ARGUMENT", f"API key {KEY} not valid"), {}
    )
    assert KEY not in error.message and "[redacted]" in error.message


def test_a_blocked_prompt_is_a_content_filter_400() -> None:
    request = upstream({"model": "smart", "messages": HI}, "gemini-2.5-flash", False)
    blocked = orjson.dumps({"promptFeedback": {"blockReason": "SAFETY"}})
    with pytest.raises(UpstreamError) as caught:
        adapter().translate(request, blocked)
    assert (caught.value.status, caught.value.code, caught.value.retryable) == (
        400,
        "content_filter",
        False,
    )


def stream_of(*events: bytes) -> tuple[Any, bytes]:
    request = upstream({"model": "smart", "messages": HI}, "gemini-2.5-flash", True)
    translator = adapter().stream(request)
    out = b""
    for raw in events:
        out += translator.feed(raw)
    return translator, out


FIRST = (
    b'data: {"candidates":[{"content":{"role":"model","parts":[{"text":"Hel"}]},"index":0}]}'
    b"\r\n\r\n"
)


def test_an_error_event_mid_stream_raises_the_mapped_error() -> None:
    error_event = (
        b"data: " + gemini_error(503, "UNAVAILABLE", "The model is overloaded.") + b"\r\n\r\n"
    )
    with pytest.raises(UpstreamError) as caught:
        stream_of(FIRST, error_event)
    assert caught.value.status == 503 and "overloaded" in caught.value.message


def test_an_error_as_bare_json_lines_mid_stream_raises_too() -> None:
    translator, _ = stream_of(
        FIRST, b'{\n  "error": {"code": 500, "message": "x", "status": "INTERNAL"}\n}\n'
    )
    with pytest.raises(UpstreamError) as caught:
        translator.finish()
    assert caught.value.status == 500


def test_a_malformed_event_raises() -> None:
    with pytest.raises(UpstreamError) as caught:
        stream_of(FIRST, b'data: {"candidates": [\r\n\r\n')
    assert caught.value.code == "provider_bad_stream"


def test_a_stream_that_ends_without_a_finish_reason_is_an_error_not_done() -> None:
    translator, out = stream_of(FIRST)
    assert b"Hel" in out
    with pytest.raises(UpstreamError) as caught:
        translator.finish()
    assert caught.value.code == "provider_stream_cut"


def test_chunks_read_together_with_an_error_still_reach_the_client_first() -> None:
    error_event = b"data: " + gemini_error(503, "UNAVAILABLE", "overloaded") + b"\r\n\r\n"
    translator, out = stream_of(FIRST + error_event)
    assert b'"content":"Hel"' in out
    with pytest.raises(UpstreamError) as caught:
        translator.finish()
    assert caught.value.status == 503
