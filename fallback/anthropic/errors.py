"""Anthropic's error answers and `error` stream events -> OpenAI-style `UpstreamError`s."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from spillgate.errors import ANTHROPIC_ERROR_TYPES, ErrorCode, UpstreamError
from spillgate.fallback.adapter import ProviderSettings
from spillgate.fallback.resilience import retry_after_seconds
from spillgate.fallback.wire import provider_words


@dataclass(frozen=True)
class _Mapped:
    status: int
    type: str
    retryable: bool
    #: What the client reads; `{provider}` and `{detail}` are filled in.
    message: str


_ERRORS = {
    "invalid_request_error": _Mapped(
        400, "invalid_request_error", False, "provider {provider} refused the request: {detail}"
    ),
    # A key the provider refuses is the gateway's problem, not the client's: a 502 (a 401
    # would tell an OpenAI client its own key is wrong), and the route's next target may work.
    "authentication_error": _Mapped(
        502,
        "upstream_error",
        True,
        "provider {provider} refused the gateway's API key; check its api_key in the config",
    ),
    "billing_error": _Mapped(
        402, "billing_error", False, "provider {provider} refused the request over billing"
    ),
    "permission_error": _Mapped(
        502,
        "upstream_error",
        True,
        "provider {provider} does not let the gateway's API key do this: {detail}",
    ),
    "not_found_error": _Mapped(
        404, "not_found_error", False, "provider {provider} does not know it: {detail}"
    ),
    "request_too_large": _Mapped(
        413, "invalid_request_error", False, "the request is too large for provider {provider}"
    ),
    "rate_limit_error": _Mapped(
        429, "rate_limit_error", True, "provider {provider} is rate-limiting the gateway"
    ),
    "api_error": _Mapped(500, "server_error", True, "provider {provider} had an internal error"),
    "timeout_error": _Mapped(504, "server_error", True, "provider {provider} timed out"),
    # Anthropic's 529: an OpenAI client knows 503 as "overloaded, try again".
    "overloaded_error": _Mapped(503, "server_error", True, "provider {provider} is overloaded"),
}

#: Error types that mean the provider refused the gateway's key, not the client's request.
_REFUSED_KEY = ("authentication_error", "permission_error")


def error_of(
    status: int | None,
    error: Any,
    settings: ProviderSettings,
    retry_after_s: float | None = None,
) -> UpstreamError:
    """Map an Anthropic error object (`{"type": ..., "message": ...}`) to an UpstreamError.

    The provider's own words (they name the field to fix) pass through `provider_words`,
    which takes out the secrets of `settings`.
    """
    provider = settings.name
    kind = error.get("type") if isinstance(error, dict) else None
    if kind not in _ERRORS:
        kind = ANTHROPIC_ERROR_TYPES.get(status or 0)
    if kind is None:
        status = status or 502
        return UpstreamError(
            status,
            f"provider {provider} answered {status}",
            type="server_error" if status >= 500 else "upstream_error",
            code=ErrorCode.PROVIDER_ERROR,
            retryable=status >= 500,
        )
    mapped = _ERRORS[kind]
    detail = provider_words(error.get("message") if isinstance(error, dict) else None, settings)
    message = mapped.message.format(provider=provider, detail=detail or "no details given")
    return UpstreamError(
        mapped.status,
        message,
        type=mapped.type,
        code=ErrorCode.PROVIDER_AUTH_FAILED if kind in _REFUSED_KEY else kind,
        retryable=mapped.retryable,
        retry_after_s=retry_after_s if mapped.retryable else None,
    )


def error_from_body(
    status: int, body: bytes, headers: dict[str, str], settings: ProviderSettings, now: float
) -> UpstreamError:
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return error_of(status, error, settings, retry_after_seconds(headers, now))
