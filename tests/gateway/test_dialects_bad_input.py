"""Bad input on /v1/responses and /v1/messages: each refusal in the called API's own error
shape, with the status its SDK maps to the right exception.

Every case is sent twice: with raw httpx, checking the exact shape (OpenAI's
`{"error": {message, type, param, code}}`, Anthropic's `{"type": "error", "error": {type,
message}}`), and through the official SDK, checking the exception it raises. Per-field
validation is the dialects' unit tests' business; these follow the HTTP path: parsing,
size, auth, model access, routing, methods, unsupported state, a dead engine.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest
from dialect_clients import anthropic_client, anthropic_error, openai_client, openai_error
from harness import STANDIN, GatewayProcess, free_port, standin_engine_config, wait_http
from services import ADMIN_TOKEN, create_key

from spillgate.server.validation import MAX_NESTING

MODEL, OTHER, DOOMED = "standin-model", "other-model", "doomed-model"
MAX_BODY = 16 * 1024


@pytest.fixture(scope="module")
def doomed() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A stand-in engine the gateway attaches to (so nothing restarts it), which a test
    kills; and its port."""
    port = free_port()
    command = [*STANDIN, "--port", str(port), "--served-model-name", DOOMED]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        yield proc, port
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, doomed: tuple[subprocess.Popen[bytes], int]
) -> Iterator[GatewayProcess]:
    attached = {"name": "doomed", "url": f"http://127.0.0.1:{doomed[1]}/v1",
                "served_model_names": [DOOMED], "health_interval_s": 0.2}  # fmt: skip
    config = {
        "engines": [standin_engine_config("standin", [MODEL, OTHER]), attached],
        "auth": {"enabled": True},
        "admin": {"token": ADMIN_TOKEN},
        "server": {"max_body_bytes": MAX_BODY, "ready_wait_s": 0.5},
    }
    with GatewayProcess(config, tmp_path_factory.mktemp("dialect-bad")) as running:
        running.wait_engine_ready("standin")
        running.wait_engine_ready("doomed")
        yield running


@pytest.fixture(scope="module")
def key(gateway: GatewayProcess) -> str:
    value: str = create_key(gateway.url, name="dialect-bad")["key"]
    return value


@pytest.fixture(scope="module")
def narrow(gateway: GatewayProcess) -> str:
    """A key that may use `MODEL` only."""
    value: str = create_key(gateway.url, name="dialect-narrow", allowed_models=[MODEL])["key"]
    return value


def _too_deep(head: bytes, tail: bytes) -> bytes:
    """A body with an array nested deeper than the gateway reads (written by hand: orjson
    will not write it)."""
    depth = MAX_NESTING + 2
    return head + b"[" * depth + b'"deep"' + b"]" * depth + tail


# (case, JSON body or raw bytes, status, the `param` OpenAI's shape names or None)
RESPONSES_CASES = [
    ("empty body", b"", 400, None),
    ("not JSON", b'{"model": ', 400, None),
    ("not an object", b'["model", "input"]', 400, None),
    ("no model", {"input": "hi"}, 400, "model"),
    ("model not a string", {"model": 7, "input": "hi"}, 400, "model"),
    ("unknown model", {"model": "no-such-model", "input": "hi"}, 404, "model"),
    ("no input", {"model": MODEL}, 400, "input"),
    ("input not text or items", {"model": MODEL, "input": 42}, 400, "input"),
    ("max_output_tokens not a number",
     {"model": MODEL, "input": "hi", "max_output_tokens": "lots"}, 400, "max_output_tokens"),
    ("previous_response_id", {"model": MODEL, "input": "hi", "previous_response_id": "resp_1"},
     400, "previous_response_id"),
    ("store true", {"model": MODEL, "input": "hi", "store": True}, 400, "store"),
    ("background true", {"model": MODEL, "input": "hi", "background": True}, 400, "background"),
    ("too deep", _too_deep(b'{"model": "standin-model", "input": "hi", "x": ', b"}"), 400, None),
]  # fmt: skip

ASK = [{"role": "user", "content": "hi"}]
MESSAGES_CASES = [
    ("empty body", b"", 400),
    ("not JSON", b'{"model": ', 400),
    ("not an object", b'"a message"', 400),
    ("no model", {"max_tokens": 16, "messages": ASK}, 400),
    ("model not a string", {"model": ["x"], "max_tokens": 16, "messages": ASK}, 400),
    ("unknown model", {"model": "no-such-model", "max_tokens": 16, "messages": ASK}, 404),
    ("no messages", {"model": MODEL, "max_tokens": 16}, 400),
    ("messages not a list", {"model": MODEL, "max_tokens": 16, "messages": "hi"}, 400),
    ("no max_tokens", {"model": MODEL, "messages": ASK}, 400),
    ("max_tokens not a number", {"model": MODEL, "max_tokens": "16", "messages": ASK}, 400),
    ("too deep", _too_deep(b'{"model": "standin-model", "max_tokens": 16, "messages": ', b"}"),
     400),
]  # fmt: skip

OPENAI_ERRORS = {400: openai.BadRequestError, 401: openai.AuthenticationError,
                 403: openai.PermissionDeniedError, 404: openai.NotFoundError,
                 413: openai.APIStatusError, 503: openai.InternalServerError}  # fmt: skip
ANTHROPIC_ERRORS = {400: anthropic.BadRequestError, 401: anthropic.AuthenticationError,
                    403: anthropic.PermissionDeniedError, 404: anthropic.NotFoundError,
                    413: anthropic.APIStatusError, 503: anthropic.InternalServerError}  # fmt: skip


def _raw(body: Any) -> bytes:
    return body if isinstance(body, bytes) else orjson.dumps(body)


def _post(gateway: GatewayProcess, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    content = _raw(body)
    return httpx.post(f"{gateway.url}{path}", content=content, headers=headers, timeout=30)


def _openai_raises(gateway: GatewayProcess, key: str, body: Any, status: int) -> None:
    """The openai SDK, sent `body` as it is, raises the exception class of `status`."""
    if isinstance(body, bytes):
        return  # the SDK sends only JSON
    with pytest.raises(OPENAI_ERRORS[status]) as raised:
        openai_client(gateway.url, key).post("/responses", body=body, cast_to=httpx.Response)
    assert raised.value.status_code == status


def _anthropic_raises(gateway: GatewayProcess, key: str, body: Any, status: int, path: str) -> None:
    if isinstance(body, bytes):
        return
    with pytest.raises(ANTHROPIC_ERRORS[status]) as raised:
        anthropic_client(gateway.url, key).post(path, body=body, cast_to=httpx.Response)
    assert raised.value.status_code == status
    assert raised.value.body["type"] == "error"  # type: ignore[index]


@pytest.mark.parametrize(("case", "body", "status", "param"), RESPONSES_CASES,
                         ids=[c[0] for c in RESPONSES_CASES])  # fmt: skip
def test_responses_refusals_in_openai_shape(
    gateway: GatewayProcess, key: str, case: str, body: Any, status: int, param: str | None
) -> None:
    resp = _post(gateway, "/v1/responses", body, {"authorization": f"Bearer {key}"})
    error = openai_error(resp, status)
    assert resp.headers["x-spillgate-route"] == "none" and resp.headers["x-request-id"]
    if param is not None:
        assert error["param"] == param, error
    _openai_raises(gateway, key, body, status)


@pytest.mark.parametrize(("case", "body", "status"), MESSAGES_CASES,
                         ids=[c[0] for c in MESSAGES_CASES])  # fmt: skip
def test_messages_refusals_in_anthropic_shape(
    gateway: GatewayProcess, key: str, case: str, body: Any, status: int
) -> None:
    resp = _post(gateway, "/v1/messages", body, {"x-api-key": key})
    anthropic_error(resp, status)
    assert resp.headers["x-spillgate-route"] == "none" and resp.headers["x-request-id"]
    _anthropic_raises(gateway, key, body, status, "/v1/messages")


def test_an_oversized_body_is_413_in_each_shape(gateway: GatewayProcess, key: str) -> None:
    big = "x" * (MAX_BODY + 1)
    resp = _post(gateway, "/v1/responses", {"model": MODEL, "input": big},
                 {"authorization": f"Bearer {key}"})  # fmt: skip
    openai_error(resp, 413)
    _openai_raises(gateway, key, {"model": MODEL, "input": big}, 413)
    body = {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": big}]}
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        anthropic_error(_post(gateway, path, body, {"x-api-key": key}), 413)
        _anthropic_raises(gateway, key, body, 413, path)


RESPONSES_OK = {"model": MODEL, "input": "hi"}
MESSAGES_OK = {"model": MODEL, "max_tokens": 16, "messages": ASK}


@pytest.mark.parametrize("sent", ["none", "wrong"])
def test_no_key_or_a_wrong_key_is_401_in_each_shape(gateway: GatewayProcess, sent: str) -> None:
    wrong = "sk-sg-not-a-key-0000000000000000"
    bearer = {} if sent == "none" else {"authorization": f"Bearer {wrong}"}
    openai_error(_post(gateway, "/v1/responses", RESPONSES_OK, bearer), 401)
    anthropic_headers = {} if sent == "none" else {"x-api-key": wrong}
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        anthropic_error(_post(gateway, path, MESSAGES_OK, anthropic_headers), 401)
    if sent == "wrong":
        _openai_raises(gateway, wrong, RESPONSES_OK, 401)
        _anthropic_raises(gateway, wrong, MESSAGES_OK, 401, "/v1/messages")


def test_a_model_the_key_may_not_use_is_403_in_each_shape(
    gateway: GatewayProcess, narrow: str
) -> None:
    key = narrow
    responses = {**RESPONSES_OK, "model": OTHER}
    openai_error(
        _post(gateway, "/v1/responses", responses, {"authorization": f"Bearer {key}"}), 403
    )
    _openai_raises(gateway, key, responses, 403)
    messages = {**MESSAGES_OK, "model": OTHER}
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        anthropic_error(_post(gateway, path, messages, {"x-api-key": key}), 403)
        _anthropic_raises(gateway, key, messages, 403, path)


def test_wrong_method_and_unknown_path_under_messages(gateway: GatewayProcess, key: str) -> None:
    wrong_method = httpx.get(f"{gateway.url}/v1/messages", headers={"x-api-key": key})
    anthropic_error(wrong_method, 405)
    openai_error(httpx.get(f"{gateway.url}/v1/responses", headers={"x-api-key": key}), 405)
    unknown = _post(gateway, "/v1/messages/batches", MESSAGES_OK, {"x-api-key": key})
    anthropic_error(unknown, 404)
    _anthropic_raises(gateway, key, MESSAGES_OK, 404, "/v1/messages/batches")


def test_a_dead_engine_is_503_in_each_shape(
    gateway: GatewayProcess, key: str, doomed: tuple[subprocess.Popen[bytes], int]
) -> None:
    alive = anthropic_client(gateway.url, key).messages.create(
        model=DOOMED, max_tokens=16, messages=[{"role": "user", "content": "still there?"}]
    )
    assert alive.content[0].type == "text" and alive.content[0].text == "You said: still there?"
    doomed[0].kill()
    doomed[0].wait()
    responses = {"model": DOOMED, "input": "hello?"}
    openai_error(
        _post(gateway, "/v1/responses", responses, {"authorization": f"Bearer {key}"}), 503
    )
    _openai_raises(gateway, key, responses, 503)
    messages = {**MESSAGES_OK, "model": DOOMED}
    anthropic_error(_post(gateway, "/v1/messages", messages, {"x-api-key": key}), 503)
    _anthropic_raises(gateway, key, messages, 503, "/v1/messages")


def test_the_gateway_log_never_holds_a_prompt(gateway: GatewayProcess) -> None:
    """Runs last in this module: every refusal above left the client's words out of the log."""
    log = Path(gateway.log_path).read_text(errors="replace")
    assert "still there?" not in log and "x" * 200 not in log
