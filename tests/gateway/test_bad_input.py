"""Malformed requests get an OpenAI error object, the right status and a useful message."""

from __future__ import annotations

import httpx
import pytest
from harness import GatewayProcess

HELLO = b'[{"role": "user", "content": "hello"}]'


def _post(gateway: GatewayProcess, content: bytes, path: str = "/v1/chat/completions"):
    return httpx.post(
        gateway.url + path, content=content, headers={"content-type": "application/json"}
    )


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        (b'{"model": "standin-model", "messages": [', None, "not valid JSON"),
        (b"", None, "empty"),
        (b"[1, 2]", None, "JSON object"),
        (b'{"messages": []}', "model", "`model` is required"),
        (b'{"model": 42, "messages": []}', "model", "non-empty string"),
        (b'{"model": "standin-model"}', "messages", "`messages` is required"),
        (b'{"model": "standin-model", "messages": "hi"}', "messages", "must be an array"),
        (b'{"model": "standin-model", "messages": [], "stream": "yes"}', "stream", "true or false"),
        (b'{"model": "standin-model", "messages": [], "max_tokens": "9"}', "max_tokens", "integer"),
        (
            b'{"model": "standin-model", "messages": [], "temperature": "hot"}',
            "temperature",
            "number",
        ),
    ],
)
def test_malformed_requests_get_400(
    standin_gateway: GatewayProcess, body: bytes, param: str | None, fragment: str
) -> None:
    resp = _post(standin_gateway, body)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert fragment in error["message"]
    assert resp.headers["x-request-id"]


def test_unknown_model_is_404_listing_available(standin_gateway: GatewayProcess) -> None:
    resp = _post(standin_gateway, b'{"model": "llama-9000", "messages": ' + HELLO + b"}")
    assert resp.status_code == 404
    error = resp.json()["error"]
    assert error["code"] == "model_not_found"
    assert "llama-9000" in error["message"]
    assert "gpt-4o-mini, standin-model" in error["message"]


def test_completions_requires_prompt(standin_gateway: GatewayProcess) -> None:
    resp = _post(standin_gateway, b'{"model": "standin-model"}', "/v1/completions")
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "prompt"


def test_body_over_limit_is_413(standin_gateway: GatewayProcess) -> None:
    big = b'{"model": "standin-model", "messages": [{"role": "user", "content": "'
    big += b"x" * (8 * 1024 * 1024) + b'"}]}'
    resp = _post(standin_gateway, big)
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "request_too_large"


def test_chunked_body_over_limit_is_413(standin_gateway: GatewayProcess) -> None:
    def body():  # no content-length: the limit must hold while reading
        yield b'{"model": "standin-model", "messages": [{"role": "user", "content": "'
        for _ in range(9):
            yield b"y" * (1024 * 1024)
        yield b'"}]}'

    resp = httpx.post(standin_gateway.url + "/v1/chat/completions", content=body())
    assert resp.status_code == 413


def test_engine_error_status_is_passed_through(
    standin_gateway: GatewayProcess, standin_url: str
) -> None:
    httpx.post(f"{standin_url}/_standin/mode", json={"status": 400})
    try:
        resp = _post(standin_gateway, b'{"model": "standin-model", "messages": ' + HELLO + b"}")
    finally:
        httpx.post(f"{standin_url}/_standin/mode", json={})
    assert resp.status_code == 400
    assert "stand-in told to fail" in resp.text


def test_unknown_path_and_wrong_method_answer_in_openai_shape(
    standin_gateway: GatewayProcess,
) -> None:
    missing = httpx.post(standin_gateway.url + "/v1/chat/complete", json={})
    assert missing.status_code == 404
    assert "/v1/chat/complete" in missing.json()["error"]["message"]
    wrong = httpx.get(standin_gateway.url + "/v1/chat/completions")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"
