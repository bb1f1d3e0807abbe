"""What the Anthropic adapter refuses, how it maps provider errors, and stream edge cases."""

from __future__ import annotations

from collections.abc import Collection
from email.utils import formatdate
from typing import Any

import orjson
import pytest
from fakes.anthropic_server import Reply, check_body, encode_event, message_events

from spillgate.errors import GatewayError, UpstreamError
from spillgate.fallback.adapter import ProviderSettings
from spillgate.fallback.anthropic.adapter import AnthropicAdapter
from spillgate.protocol import Endpoint, UpstreamRequest

KEY = "sk-ant-unit-secret-key"
NOW = 1_760_000_000.0
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5E"
    "rkJggg=="
)
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


def adapter(drop_params: Collection[str] = (), **options: Any) -> AnthropicAdapter:
    settings = ProviderSettings(
        name="claude",
        kind="anthropic",
        base_url="https://api.anthropic.com/v1",
        api_key=KEY,
        options=options,
        drop_params=frozenset(drop_params),
    )
    return AnthropicAdapter(settings, clock=lambda: NOW)


def request(
    stream: bool = False, endpoint: Endpoint = Endpoint.CHAT, **fields: Any
) -> UpstreamRequest:
    payload = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}], **fields}
    return UpstreamRequest(
        endpoint=endpoint,
        model="gpt-4o",
        target_model="claude-haiku-4-5",
        body=orjson.dumps(payload),
        payload=payload,
        stream=stream,
        request_id="unit1",
    )


def sent(**fields: Any) -> dict[str, Any]:
    body = orjson.loads(adapter().build(request(**fields)).body)
    check_body(body)
    return body


def refused(adapter_: AnthropicAdapter | None = None, **fields: Any) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        (adapter_ or adapter()).build(request(**fields))
    assert caught.value.status == 400
    return caught.value


# --- requests ------------------------------------------------------------------------------


def test_base_url_with_or_without_v1_reaches_the_messages_path() -> None:
    settings = ProviderSettings(name="c", kind="anthropic", base_url="http://127.0.0.1:9/")
    assert AnthropicAdapter(settings).build(request()).url == "http://127.0.0.1:9/v1/messages"
    assert adapter().build(request()).url == "https://api.anthropic.com/v1/messages"


def test_configured_headers_are_sent_beside_the_required_ones() -> None:
    settings = ProviderSettings(
        name="c",
        kind="anthropic",
        base_url="http://x",
        api_key=KEY,
        headers={"anthropic-beta": "prompt-caching-2024-07-31"},
    )
    headers = AnthropicAdapter(settings).build(request()).headers
    assert headers == {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "x-api-key": KEY,
        "anthropic-beta": "prompt-caching-2024-07-31",
    }


def test_the_key_stays_out_of_the_settings_repr() -> None:
    assert KEY not in repr(adapter().settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("seed", 7),
        ("n", 2),
        ("logprobs", True),
        ("top_logprobs", 3),
        ("logit_bias", {"50256": -100}),
        ("presence_penalty", 0.5),
        ("frequency_penalty", 1.0),
        ("reasoning_effort", "high"),
    ],
)
def test_parameters_anthropic_lacks_are_refused_by_name(name: str, value: Any) -> None:
    err = refused(**{name: value})
    assert err.param == name
    assert err.code == "unsupported_parameter"
    assert f"`{name}`" in err.message and "drop_params" in err.message


@pytest.mark.parametrize(
    ("name", "value"), [("n", 1), ("logprobs", False), ("presence_penalty", 0), ("seed", None)]
)
def test_neutral_values_of_missing_parameters_pass(name: str, value: Any) -> None:
    assert name not in sent(**{name: value})


def test_drop_params_leaves_listed_parameters_out() -> None:
    body = orjson.loads(adapter(drop_params=["seed", "n"]).build(request(seed=1, n=3)).body)
    assert "seed" not in body and "n" not in body
    refused(adapter(drop_params=["seed"]), n=3)  # only what is listed


def test_temperature_above_anthropics_range_is_refused_unless_dropped() -> None:
    err = refused(temperature=1.5)
    assert err.param == "temperature" and "between 0 and 1" in err.message
    assert sent(temperature=0.7)["temperature"] == 0.7
    dropping = adapter(drop_params=["temperature", "top_p"])
    body = orjson.loads(dropping.build(request(temperature=1.5, top_p=0.5)).body)
    assert "temperature" not in body and "top_p" not in body


def test_drop_params_cannot_remove_the_messages() -> None:
    body = orjson.loads(adapter(drop_params=["messages", "model"]).build(request()).body)
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]


def test_max_tokens_zero_is_refused() -> None:
    assert refused(max_tokens=0).param == "max_tokens"


def test_default_max_tokens_comes_from_the_options() -> None:
    assert sent()["max_tokens"] == 4096
    body = orjson.loads(adapter(default_max_tokens=777).build(request()).body)
    assert body["max_tokens"] == 777


def test_only_chat_completions_can_go_to_anthropic() -> None:
    with pytest.raises(GatewayError) as caught:
        adapter().build(request(endpoint=Endpoint.EMBEDDINGS))
    err = caught.value
    assert (err.status, err.code) == (400, "unsupported_endpoint")
    assert "/v1/embeddings" in err.message and "chat/completions" in err.message
    assert "anthropic" in err.message


@pytest.mark.parametrize(
    ("messages", "param", "words"),
    [
        ([{"role": "function", "name": "f", "content": "x"}], "messages[0].role", "tool"),
        (
            [{"role": "user", "content": [{"type": "input_audio"}]}],
            "messages[0].content[0]",
            "image_url",
        ),
        (
            [{"role": "user", "content": [{"type": "file", "file": {}}]}],
            "messages[0].content[0]",
            "text",
        ),
        ([{"role": "user", "content": 5}], "messages[0].content", "string"),
        (["hello"], "messages[0]", "object"),
        ([{"role": "system", "content": "only a system prompt"}], "messages", "at least one"),
        ([{"role": "user", "content": ""}], "messages", "at least one"),
        ([{"role": "tool", "content": "42"}], "messages[0].tool_call_id", "tool_call_id"),
        (
            [{"role": "system", "content": [{"type": "image_url"}]}],
            "messages[0].content[0]",
            "text",
        ),
    ],
)
def test_messages_anthropic_cannot_take_are_refused(messages: Any, param: str, words: str) -> None:
    err = refused(messages=messages)
    assert err.param == param
    assert words in err.message


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://example.com/cat.png", "https URL"),
        ("ftp://example.com/cat.png", "https URL"),
        ("data:image/png,notbase64", "base64 data URL"),
        ("data:image/tiff;base64,AAAA", "image/tiff"),
        ("data:image/svg+xml;base64,AAAA", "image/svg+xml"),
    ],
)
def test_images_anthropic_cannot_take_are_refused(url: str, words: str) -> None:
    content = [{"type": "image_url", "image_url": {"url": url}}]
    err = refused(messages=[{"role": "user", "content": content}])
    assert err.param == "messages[0].content[0].image_url"
    assert words in err.message


def test_data_url_media_type_and_extra_parameters_are_read() -> None:
    url = f"data:image/JPEG;name=cat.jpg;base64,{PNG}"
    body = sent(
        messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]
    )
    source = body["messages"][0]["content"][0]["source"]
    assert source == {"type": "base64", "media_type": "image/jpeg", "data": PNG}


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]", '"text"'])
def test_tool_call_arguments_must_be_a_json_object(arguments: str) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "lookup", "arguments": arguments},
    }
    messages = [
        {"role": "user", "content": "Go"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "done"},
    ]
    err = refused(messages=messages, tools=[TOOL])
    assert err.param == "messages[1].tool_calls[0].function.arguments"


def test_empty_tool_call_arguments_mean_no_arguments() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": ""}}
    messages = [
        {"role": "user", "content": "Go"},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": ""},
    ]
    body = sent(messages=messages, tools=[TOOL])
    assert body["messages"][1]["content"][0]["input"] == {}
    assert body["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "call_1"}]


def test_tool_results_lead_their_user_turn_even_after_user_text() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "Go"},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "user", "content": "(a note)"},
        {"role": "tool", "tool_call_id": "call_1", "content": "done"},
    ]
    turn = sent(messages=messages, tools=[TOOL])["messages"][2]["content"]
    assert [block["type"] for block in turn] == ["tool_result", "text"]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [{"type": "code_interpreter"}]}, "tools[0]"),
        ({"tools": [{"type": "function", "function": {}}]}, "tools[0].function"),
        (
            {
                "tools": [
                    {"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}
                ]
            },
            "tools[0].function.parameters",
        ),
        ({"tools": "lookup"}, "tools"),
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"tools": [TOOL], "tool_choice": "sometimes"}, "tool_choice"),
        (
            {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "other"}}},
            "tool_choice",
        ),
        ({"response_format": {"type": "yaml"}}, "response_format"),
        ({"response_format": {"type": "json_schema"}}, "response_format"),
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "array"}},
                }
            },
            "response_format",
        ),
        (
            {
                "tools": [{"type": "function", "function": {"name": "json_response"}}],
                "response_format": {"type": "json_object"},
            },
            "tools",
        ),
        ({"stop": [1, 2]}, "stop"),
    ],
)
def test_tool_and_format_settings_anthropic_cannot_take_are_refused(
    fields: dict[str, Any], param: str
) -> None:
    assert refused(**fields).param == param


def test_parallel_tool_calls_false_without_tool_choice_still_disables_them() -> None:
    body = sent(tools=[TOOL], parallel_tool_calls=False)
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


def test_json_mode_gives_way_to_a_required_tool_call() -> None:
    body = sent(tools=[TOOL], tool_choice="required", response_format={"type": "json_object"})
    assert [t["name"] for t in body["tools"]] == ["lookup"]
    assert body["tool_choice"] == {"type": "any"}


def test_json_mode_with_tool_choice_none_forces_the_json_tool() -> None:
    body = sent(tools=[TOOL], tool_choice="none", response_format={"type": "json_object"})
    assert body["tool_choice"] == {"type": "tool", "name": "json_response"}


def test_response_format_text_changes_nothing() -> None:
    assert sent(response_format={"type": "text"}) == sent()


# --- answers -------------------------------------------------------------------------------


def test_text_then_json_tool_and_unknown_blocks_translate_to_content() -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "Here: "},
        ],
        "stop_reason": "refusal",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }
    completion = orjson.loads(adapter().translate(request(), orjson.dumps(message)).body)
    choice = completion["choices"][0]
    assert choice["message"]["content"] == "Here: "
    assert choice["finish_reason"] == "content_filter"
    assert completion["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"type": "error"}'])
def test_an_answer_that_is_not_a_message_is_a_502(body: bytes) -> None:
    with pytest.raises(UpstreamError) as caught:
        adapter().translate(request(), body)
    assert caught.value.status == 502


# --- errors --------------------------------------------------------------------------------


def anthropic_error(error_type: str, message: str = "details") -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": error_type, "message": message}})


@pytest.mark.parametrize(
    ("status", "error_type", "expected_status", "retryable"),
    [
        (400, "invalid_request_error", 400, False),
        # A refused key is the gateway's problem: 502, and the next target may serve.
        (401, "authentication_error", 502, True),
        (402, "billing_error", 402, False),
        (403, "permission_error", 502, True),
        (404, "not_found_error", 404, False),
        (413, "request_too_large", 413, False),
        (429, "rate_limit_error", 429, True),
        (500, "api_error", 500, True),
        (504, "timeout_error", 504, True),
        (529, "overloaded_error", 503, True),
    ],
)
def test_anthropic_error_types_map_to_statuses(
    status: int, error_type: str, expected_status: int, retryable: bool
) -> None:
    err = adapter().error(status, anthropic_error(error_type), {})
    refused_key = error_type in ("authentication_error", "permission_error")
    code = "provider_auth_failed" if refused_key else error_type
    assert (err.status, err.retryable, err.code) == (expected_status, retryable, code)
    assert "claude" in err.message


@pytest.mark.parametrize(
    ("status", "expected_status", "retryable"),
    [(429, 429, True), (529, 503, True), (502, 502, True), (503, 503, True), (418, 418, False)],
)
def test_errors_without_a_readable_body_map_by_status(
    status: int, expected_status: int, retryable: bool
) -> None:
    err = adapter().error(status, b"<html>bad gateway</html>", {})
    assert (err.status, err.retryable) == (expected_status, retryable)


def test_retry_after_in_seconds_is_honoured() -> None:
    err = adapter().error(429, anthropic_error("rate_limit_error"), {"Retry-After": "17"})
    assert err.retry_after_s == 17
    assert err.headers() == {"retry-after": "17"}


def test_retry_after_as_an_http_date_is_honoured() -> None:
    when = formatdate(NOW + 30, usegmt=True)
    err = adapter().error(529, anthropic_error("overloaded_error"), {"retry-after": when})
    assert err.retry_after_s == pytest.approx(30, abs=1)


def test_unreadable_retry_after_is_ignored() -> None:
    err = adapter().error(429, anthropic_error("rate_limit_error"), {"retry-after": "soon"})
    assert err.retry_after_s is None


def test_a_request_error_says_what_anthropic_objected_to() -> None:
    body = anthropic_error("invalid_request_error", "messages.0.content.0.text: Field required")
    err = adapter().error(400, body, {})
    assert "messages.0.content.0.text: Field required" in err.message


def test_the_key_never_reaches_an_error_message() -> None:
    for error_type in ("invalid_request_error", "authentication_error", "not_found_error"):
        body = anthropic_error(error_type, f"invalid x-api-key {KEY} for this workspace")
        err = adapter().error(400, body, {})
        assert KEY not in err.message and KEY not in err.body().decode()


def test_a_long_provider_message_is_cut_short() -> None:
    err = adapter().error(400, anthropic_error("invalid_request_error", "x" * 5000), {})
    assert len(err.message) < 400


# --- streams -------------------------------------------------------------------------------


def stream_bytes(reply: Reply | None = None) -> list[bytes]:
    return [encode_event(e) for e in message_events(reply or Reply(), "claude", "msg_1")]


def chunks_of(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line[6:]) for line in data.split(b"\n\n") if line.startswith(b"data: {")]


def test_an_error_event_mid_stream_raises_the_mapped_error() -> None:
    translator = adapter().stream(request(stream=True))
    translator.feed(b"".join(stream_bytes()[:4]))
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with pytest.raises(UpstreamError) as caught:
        translator.feed(encode_event(overloaded))
    assert (caught.value.status, caught.value.code) == (503, "overloaded_error")


def test_a_malformed_event_raises_after_relaying_what_came_before_it() -> None:
    events = stream_bytes()
    translator = adapter().stream(request(stream=True))
    out = translator.feed(b"".join(events[:4]) + b'event: content_block_delta\ndata: {"type": \n\n')
    assert (
        "".join(c["choices"][0]["delta"].get("content", "") for c in chunks_of(out)) == "Hello fro"
    )
    with pytest.raises(UpstreamError) as caught:
        translator.feed(b"".join(events[4:]))
    assert caught.value.code == "provider_bad_stream"


@pytest.mark.parametrize("bad", [b'data: ["a list"]\n\n', b'data: {"no": "type"}\n\n'])
def test_events_without_a_type_are_malformed(bad: bytes) -> None:
    with pytest.raises(UpstreamError):
        adapter().stream(request(stream=True)).feed(bad)


def test_a_stream_that_ends_before_message_stop_raises_on_finish() -> None:
    translator = adapter().stream(request(stream=True))
    translator.feed(b"".join(stream_bytes()[:-1]))
    with pytest.raises(UpstreamError) as caught:
        translator.finish()
    assert caught.value.code == "provider_stream_cut"


def test_unknown_events_comments_and_thinking_blocks_are_skipped() -> None:
    events = stream_bytes()
    thinking = {"type": "thinking", "thinking": ""}
    extra = (
        b": a comment line\n\n"
        + encode_event({"type": "future_event", "x": 1})
        + encode_event({"type": "content_block_start", "index": 5, "content_block": thinking})
        + encode_event(
            {"type": "content_block_delta", "index": 5, "delta": {"type": "thinking_delta"}}
        )
    )
    translator = adapter().stream(request(stream=True))
    plain = chunks_of(adapter().stream(request(stream=True)).feed(b"".join(events)))
    out = translator.feed(events[0] + extra + b"".join(events[1:])) + translator.finish()
    assert chunks_of(out) == plain
    assert out.endswith(b"data: [DONE]\n\n")


def test_usage_is_known_after_a_stream_without_include_usage() -> None:
    reply = Reply(usage={"input_tokens": 5, "output_tokens": 9, "cache_read_input_tokens": 40})
    translator = adapter().stream(request(stream=True))
    out = translator.feed(b"".join(stream_bytes(reply))) + translator.finish()
    assert b'"usage"' not in out  # the client did not ask for it
    assert translator.usage is not None
    assert (translator.usage.prompt_tokens, translator.usage.completion_tokens) == (45, 9)
    assert translator.usage.cached_tokens == 40
