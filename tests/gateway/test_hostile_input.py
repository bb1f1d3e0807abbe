"""Hostile and malformed requests, through the gateway: each wrong field is a 400 that names
it (`param`) and says what is wrong (`code`); a capability gap nothing on the route can fill
is a 400 with the gap as its code, never a 503 to retry forever; an engine's own error
reaches the client as an OpenAI error object whatever shape the engine gave it."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest
from harness import GatewayProcess

HELLO = [{"role": "user", "content": "hello"}]


def _post(gateway: GatewayProcess, body: Any, path: str = "chat/completions") -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(
        f"{gateway.url}/v1/{path}",
        content=content,
        headers={"content-type": "application/json"},
        timeout=30,
    )


def _error(resp: httpx.Response, status: int) -> dict[str, Any]:
    """The answer is `status` with an OpenAI error object, and nothing else."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return error


def _chat(**fields: Any) -> dict[str, Any]:
    return {"model": "standin-model", "messages": HELLO, **fields}


def _nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


def _call(function: Any) -> dict[str, Any]:
    return {
        "role": "assistant",
        "tool_calls": [{"id": "c1", "type": "function", "function": function}],
    }


# -- 1. shapes a translator or the gateway assumed ----------------------------------------------

MALFORMED = [
    # tool_calls that are no array, or whose function is no object
    (
        _chat(messages=[{"role": "assistant", "tool_calls": 7}, *HELLO]),
        "messages[0].tool_calls",
        "invalid_type",
    ),
    (_chat(messages=[_call("f"), *HELLO]), "messages[0].tool_calls[0].function", "invalid_type"),
    (
        _chat(messages=[_call(None), *HELLO]),
        "messages[0].tool_calls[0].function",
        "missing_required_parameter",
    ),
    (_chat(messages=[_call(True), *HELLO]), "messages[0].tool_calls[0].function", "invalid_type"),
    (
        _chat(messages=[_call({"name": "f", "arguments": {"q": 1}}), *HELLO]),
        "messages[0].tool_calls[0].function.arguments",
        "invalid_type",
    ),
    (
        _chat(messages=[_call({"name": 5, "arguments": "{}"}), *HELLO]),
        "messages[0].tool_calls[0].function.name",
        "invalid_type",
    ),
    # tool_choice and names in the shapes the Anthropic and Gemini translators read
    (
        _chat(
            tools=[{"type": "function", "function": {"name": "f"}}],
            tool_choice={"type": "function", "function": "f"},
        ),
        "tool_choice.function",
        "invalid_type",
    ),
    (
        _chat(
            tools=[{"type": "function", "function": {"name": "f"}}],
            tool_choice={"type": "function", "function": {"name": ["f"]}},
        ),
        "tool_choice.function",
        "invalid_type",
    ),
    (
        _chat(tool_choice={"type": "allowed_tools", "allowed_tools": "f"}),
        "tool_choice.allowed_tools",
        "invalid_type",
    ),
    (_chat(tool_choice="sometimes"), "tool_choice", "invalid_value"),
    (
        _chat(tools=[{"type": "function", "function": {"name": {}}}]),
        "tools[0].function.name",
        "invalid_type",
    ),
    (_chat(tools={"f": {}}), "tools", "invalid_type"),
    (
        _chat(messages=[{"role": "user", "content": "hi", "name": 5}]),
        "messages[0].name",
        "invalid_type",
    ),
    # messages themselves
    (_chat(messages=[]), "messages", "empty_array"),
    (_chat(messages=["hi"]), "messages[0]", "invalid_type"),
    (_chat(messages=[{"role": ["user"], "content": "hi"}]), "messages[0].role", "invalid_value"),
    (_chat(messages=[{"role": "user"}]), "messages[0].content", "missing_required_parameter"),
    (
        _chat(messages=[{"role": "user", "content": [{"type": "text", "text": 5}]}]),
        "messages[0].content[0].text",
        "invalid_type",
    ),
    (
        _chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": 5}]}]),
        "messages[0].content[0].image_url",
        "invalid_type",
    ),
    (
        _chat(messages=[{"role": "tool", "content": "42"}]),
        "messages[0].tool_call_id",
        "missing_required_parameter",
    ),
    (
        _chat(response_format={"type": "json_schema", "json_schema": "x"}),
        "response_format.json_schema",
        "invalid_type",
    ),
    (_chat(stream_options="usage"), "stream_options", "invalid_type"),
    (_chat(stop=[1, 2]), "stop", "invalid_type"),
]


@pytest.mark.parametrize(("body", "param", "code"), MALFORMED)
def test_a_malformed_field_is_a_400_naming_it(
    standin_gateway: GatewayProcess, body: dict[str, Any], param: str, code: str
) -> None:
    error = _error(_post(standin_gateway, body), 400)
    assert error["type"] == "invalid_request_error"
    assert (error["param"], error["code"]) == (param, code)
    assert f"`{param}`" in error["message"]


def _nested_body(depth: int) -> bytes:
    """Objects and arrays `depth` levels deep, built by hand: no JSON encoder writes past 254.
    The alias makes the gateway write the body again for the engine, as for any cloud."""
    inner = depth - 2  # the body and `metadata` are two levels
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], '
    return body + b'"metadata": {"x": ' + b"[" * inner + b'"deep"' + b"]" * inner + b"}}"


@pytest.mark.parametrize("depth", [255, 300, 1024])
def test_json_nested_past_the_limit_is_refused_at_parse_time(
    standin_gateway: GatewayProcess, depth: int
) -> None:
    error = _error(_post(standin_gateway, _nested_body(depth)), 400)
    assert error["code"] == "nesting_too_deep"
    assert "254 levels" in error["message"]


def test_json_nested_to_the_limit_is_served(standin_gateway: GatewayProcess) -> None:
    resp = _post(standin_gateway, _nested_body(254))
    assert resp.status_code == 200, resp.text


# -- 3. numbers a gateway must trust, against OpenAI's documented ranges -----------------------

OUT_OF_RANGE = [
    ("chat/completions", {"max_tokens": -1}, "max_tokens", "integer_below_min_value"),
    ("chat/completions", {"max_tokens": 0}, "max_tokens", "integer_below_min_value"),
    ("chat/completions", {"max_tokens": 1.5}, "max_tokens", "invalid_type"),
    ("chat/completions", {"max_tokens": True}, "max_tokens", "invalid_type"),
    (
        "chat/completions",
        {"max_completion_tokens": -5},
        "max_completion_tokens",
        "integer_below_min_value",
    ),
    ("chat/completions", {"n": 0}, "n", "integer_below_min_value"),
    ("chat/completions", {"n": 129}, "n", "integer_above_max_value"),
    ("chat/completions", {"top_logprobs": 21}, "top_logprobs", "integer_above_max_value"),
    ("chat/completions", {"top_logprobs": -1}, "top_logprobs", "integer_below_min_value"),
    ("chat/completions", {"logprobs": 3}, "logprobs", "invalid_type"),
    ("chat/completions", {"seed": 2**63}, "seed", "integer_above_max_value"),
    ("chat/completions", {"temperature": 2.5}, "temperature", "decimal_above_max_value"),
    ("chat/completions", {"top_p": -0.1}, "top_p", "decimal_below_min_value"),
    ("chat/completions", {"presence_penalty": 3}, "presence_penalty", "decimal_above_max_value"),
    ("chat/completions", {"logit_bias": {"50256": 500}}, "logit_bias", "invalid_value"),
    ("completions", {"max_tokens": -1}, "max_tokens", "integer_below_min_value"),
    ("completions", {"logprobs": 6}, "logprobs", "integer_above_max_value"),
    ("completions", {"logprobs": True}, "logprobs", "invalid_type"),
    ("completions", {"best_of": 21}, "best_of", "integer_above_max_value"),
    ("completions", {"best_of": 2, "n": 3}, "best_of", "invalid_value"),
    ("completions", {"echo": "yes"}, "echo", "invalid_type"),
    ("embeddings", {"dimensions": 0}, "dimensions", "integer_below_min_value"),
    ("embeddings", {"encoding_format": "hex"}, "encoding_format", "invalid_value"),
]
_BASE = {
    "chat/completions": {"model": "standin-model", "messages": HELLO},
    "completions": {"model": "standin-model", "prompt": "once upon"},
    "embeddings": {"model": "standin-model", "input": "hello"},
}


@pytest.mark.parametrize(("path", "fields", "param", "code"), OUT_OF_RANGE)
def test_a_number_out_of_its_documented_range_is_a_400(
    standin_gateway: GatewayProcess, path: str, fields: dict[str, Any], param: str, code: str
) -> None:
    error = _error(_post(standin_gateway, {**_BASE[path], **fields}, path), 400)
    assert (error["param"], error["code"]) == (param, code)


def test_the_edges_of_each_range_are_served(standin_gateway: GatewayProcess) -> None:
    edges = {"max_tokens": 1, "n": 128, "top_logprobs": 20, "temperature": 2, "seed": -(2**63)}
    assert _post(standin_gateway, _chat(**edges)).status_code == 200
    prompt = {**_BASE["completions"], "max_tokens": 0, "logprobs": 5, "best_of": 20, "n": 2}
    assert _post(standin_gateway, prompt, "completions").status_code == 200


# -- 2. a capability gap with nowhere else to go -----------------------------------------------


def _until_gap(gateway: GatewayProcess, body: dict[str, Any]) -> httpx.Response:
    """The gateway reads the engine's context window from its /v1/models once it is up."""
    deadline = time.monotonic() + 15
    while True:
        resp = _post(gateway, body)
        if resp.status_code != 200 or time.monotonic() > deadline:
            return resp
        time.sleep(0.2)


def test_an_image_for_a_text_only_local_model_is_a_400_not_a_503(
    standin_gateway: GatewayProcess,
) -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    body = _chat(messages=[{"role": "user", "content": [{"type": "text", "text": "?"}, image]}])
    resp = _post(standin_gateway, body)
    error = _error(resp, 400)
    assert (error["code"], error["param"]) == ("images_unsupported", "messages")
    assert "retry-after" not in resp.headers


def test_max_tokens_past_the_context_is_a_400_naming_max_tokens(
    standin_gateway: GatewayProcess,
) -> None:
    resp = _until_gap(standin_gateway, _chat(max_tokens=5000))
    error = _error(resp, 400)
    assert (error["code"], error["param"]) == ("context_too_long", "max_tokens")
    assert "2048-token context window" in error["message"]
    assert "retry-after" not in resp.headers


def test_a_7_mib_prompt_for_a_small_local_model_is_a_400_naming_the_messages(
    standin_gateway: GatewayProcess,
) -> None:
    words = "lorem ipsum " * (7 * 1024 * 1024 // 12)
    resp = _until_gap(standin_gateway, _chat(messages=[{"role": "user", "content": words}]))
    error = _error(resp, 400)
    assert (error["code"], error["param"]) == ("context_too_long", "messages")


# -- 5. an engine's error, whatever its shape ---------------------------------------------------


@pytest.fixture
def standin_mode(standin_url: str):
    def set_mode(**mode: Any) -> None:
        httpx.post(f"{standin_url}/_standin/mode", json=mode).raise_for_status()

    yield set_mode
    set_mode()


def test_an_engines_plain_text_404_reaches_the_client_as_an_openai_error(
    standin_gateway: GatewayProcess, standin_mode: Any
) -> None:
    standin_mode(status=404, plain_errors=True)
    error = _error(_post(standin_gateway, _chat()), 404)
    assert error["type"] == "invalid_request_error"
    assert error["message"] == "standin (local) answered 404: Not Found"


def test_an_engines_vllm_shaped_error_keeps_its_words_in_openai_shape(
    standin_gateway: GatewayProcess, standin_mode: Any
) -> None:
    standin_mode(status=400)  # vLLM's {"object": "error", "message": ..., "code": 400}
    error = _error(_post(standin_gateway, _chat()), 400)
    assert error["message"] == "stand-in told to fail"
    assert error["code"] is None  # vLLM's is the status as a number; OpenAI's is a string
