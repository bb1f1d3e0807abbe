"""Errors in the OpenAI wire format, shared by the server and every backend."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import orjson

from spillgate.protocol import Endpoint
from spillgate.scrub import message_of, safe_detail, scrub

#: Anthropic's error `type` for an HTTP status (its SDK picks the exception by status): how
#: the gateway writes errors on /v1/messages, and reads an Anthropic error without a type.
ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_error_type(status: int) -> str:
    if status in ANTHROPIC_ERROR_TYPES:
        return ANTHROPIC_ERROR_TYPES[status]
    return "invalid_request_error" if status < 500 else "api_error"


class ErrorCode(StrEnum):
    """The `code` of the gateway's own errors about a cloud provider, one name per fault.

    A member is its string, so it compares, logs and serialises as the code clients read.
    """

    #: The provider's answer is not the shape its API promises (not JSON, no choices...).
    PROVIDER_BAD_ANSWER = "provider_bad_answer"
    #: A stream event that is not JSON, or not the shape the provider's API sends.
    PROVIDER_BAD_STREAM = "provider_bad_stream"
    #: The provider sent an `error` event mid-stream (the OpenAI family).
    PROVIDER_STREAM_ERROR = "provider_stream_error"
    PROVIDER_STREAM_CUT = "provider_stream_cut"
    PROVIDER_NOT_STREAMING = "provider_not_streaming"
    PROVIDER_TIMEOUT = "provider_timeout"
    PROVIDER_UNREACHABLE = "provider_unreachable"
    PROVIDER_RATE_LIMITED = "provider_rate_limited"
    PROVIDER_AUTH_FAILED = "provider_auth_failed"
    PROVIDER_MODEL_NOT_FOUND = "provider_model_not_found"
    PROVIDER_SERVER_ERROR = "provider_server_error"
    #: An error answer in no shape the provider documents.
    PROVIDER_ERROR = "provider_error"
    #: A request field the provider's kind cannot honour (see `drop_params`).
    UNSUPPORTED_PARAMETER = "unsupported_parameter"
    #: An endpoint (embeddings, completions) the provider's kind does not offer.
    UNSUPPORTED_ENDPOINT = "unsupported_endpoint"
    #: The provider refused the prompt itself.
    CONTENT_FILTER = "content_filter"
    #: The egress guard kept the body home.
    PRIVATE_DATA = "private_data"


@dataclass
class GatewayError(Exception):
    """A failure answered to the client as an OpenAI error object.

    `status` is the HTTP status, `type` and `code` follow OpenAI's error object, and
    `message` tells the client what to change. It must never carry a prompt or a key.
    """

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    retry_after_s: float | None = None

    def __str__(self) -> str:
        return f"{self.status} {self.type}: {self.message}"

    def body(self, endpoint: Endpoint = Endpoint.CHAT) -> bytes:
        """The error object in the shape of the API the client called: Anthropic's for
        /v1/messages, OpenAI's for the rest."""
        if endpoint is Endpoint.MESSAGES:
            error = {"type": anthropic_error_type(self.status), "message": scrub(self.message)}
            return orjson.dumps({"type": "error", "error": error})
        return orjson.dumps(
            {
                "error": {
                    "message": scrub(self.message),
                    "type": self.type,
                    "param": self.param,
                    "code": self.code,
                }
            }
        )

    def headers(self) -> dict[str, str]:
        if self.retry_after_s is None:
            return {}
        return {"retry-after": str(max(1, round(self.retry_after_s)))}


class UpstreamError(GatewayError):
    """A backend failed before answering. `retryable` lets the executor try the next target."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "upstream_error",
        code: str | None = None,
        retryable: bool = True,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(
            status=status, message=message, type=type, code=code, retry_after_s=retry_after_s
        )
        self.retryable = retryable


class EgressRefused(UpstreamError):
    """The body built for a cloud target carries personal data or a secret: it was not sent.

    Raised by the egress guard before a byte leaves. Never retried at another cloud target:
    the server decides again with the request kept on the box. `kinds` names what was
    found (never the values).
    """

    def __init__(self, kinds: tuple[str, ...]) -> None:
        super().__init__(
            403,
            "the request carries personal data or a secret ("
            + ", ".join(kinds)
            + ") and may not leave the box",
            type="invalid_request_error",
            code=ErrorCode.PRIVATE_DATA,
            retryable=False,
        )
        self.kinds = kinds


def upstream_error_body(
    status: int, body: bytes, source: str, endpoint: Endpoint = Endpoint.CHAT
) -> bytes:
    """An upstream's error answer as OpenAI's error object, whatever shape it came in: vLLM's
    `{"object": "error", ...}`, FastAPI's `{"detail": ...}`, or plain text (an engine that
    lacks an endpoint answers `404 Not Found`). Its message, `param` and `code` are kept."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    message = message_of(parsed)
    if message is None:
        text = body.decode("utf-8", "replace").strip() if parsed is None else ""
        message = f"{source} answered {status}: {safe_detail(text) if text else 'no message'}"
    error = parsed.get("error") if isinstance(parsed, dict) else None
    fields = error if isinstance(error, dict) else parsed if isinstance(parsed, dict) else {}
    param, code = fields.get("param"), fields.get("code")
    return GatewayError(
        status,
        message,
        type="invalid_request_error" if status < 500 else "server_error",
        code=code if isinstance(code, str) else None,
        param=param if isinstance(param, str) else None,
    ).body(endpoint)


def bad_request(message: str, param: str | None = None, code: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code=code)
