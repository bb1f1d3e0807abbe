"""The official clients of the Responses and Messages APIs pointed at a gateway, and the two
error shapes those APIs answer in, checked exactly.

Shared by the gateway tests of the local path (test_dialects_local.py,
test_dialects_bad_input.py) and the real-engine test (test_real_dialects.py).
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai

#: Anthropic's error `type` for each status the gateway answers with (its SDK picks the
#: exception class by status, its users read the type).
ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


def openai_client(base_url: str, key: str = "unused") -> openai.OpenAI:
    """No retries: a test sees each answer the gateway gives."""
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)


def anthropic_client(
    base_url: str, key: str = "unused", bearer: bool = False
) -> anthropic.Anthropic:
    """The key as the SDK sends it by default (`x-api-key`), or as `Authorization: Bearer`
    (its `auth_token`, as for a gateway in front of Claude)."""
    if bearer:
        return anthropic.Anthropic(base_url=base_url, api_key=None, auth_token=key, max_retries=0)
    return anthropic.Anthropic(base_url=base_url, api_key=key, max_retries=0)


def anthropic_error(resp: httpx.Response, status: int) -> str:
    """Assert Anthropic's error shape, exactly: `{"type": "error", "error": {"type",
    "message"}}` with the type of `status`. Returns the message."""
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert set(body) == {"type", "error"} and body["type"] == "error", body
    error = body["error"]
    assert set(error) == {"type", "message"}, body
    assert error["type"] == ANTHROPIC_TYPES.get(status, "invalid_request_error"), body
    assert isinstance(error["message"], str) and error["message"], body
    message: str = error["message"]
    return message


def openai_error(resp: httpx.Response, status: int) -> dict[str, Any]:
    """Assert OpenAI's error shape, exactly: `{"error": {"message", "type", "param",
    "code"}}`. Returns the error object."""
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, body
    assert isinstance(error["message"], str) and error["message"], body
    assert isinstance(error["type"], str) and error["type"], body
    assert error["param"] is None or isinstance(error["param"], str), body
    assert error["code"] is None or isinstance(error["code"], str), body
    return error
