"""OpenAI-family error answers -> the UpstreamError the client sees (also Mistral's)."""

from __future__ import annotations

from typing import Any

import orjson

from spillgate.errors import ErrorCode, UpstreamError
from spillgate.fallback.adapter import ProviderSettings
from spillgate.fallback.resilience import retry_after_seconds
from spillgate.fallback.wire import provider_words
from spillgate.scrub import message_of


def provider_error(
    settings: ProviderSettings, status: int, body: bytes, headers: dict[str, str]
) -> UpstreamError:
    """An OpenAI-family error answer as the client should see it.

    Only a request the provider judged invalid carries the provider's own words (they are
    about the client's request), without the secrets of `settings`; rate-limit, auth and
    server errors get ours, since theirs can name Spillgate's account or echo its key.
    """
    provider = settings.name
    retry_after = retry_after_seconds(headers)
    if status == 429:
        return UpstreamError(
            429,
            f"provider {provider!r} is rate-limiting requests; retry later",
            type="rate_limit_error",
            code=ErrorCode.PROVIDER_RATE_LIMITED,
            retry_after_s=retry_after,
        )
    if status in (401, 403):
        return UpstreamError(
            502,
            f"provider {provider!r} refused Spillgate's credentials (HTTP {status}); "
            "check that provider's api_key in the configuration",
            code=ErrorCode.PROVIDER_AUTH_FAILED,
        )
    if status == 404:
        return UpstreamError(
            502,
            f"provider {provider!r} answered 404: the model or the base_url in the "
            "configuration is wrong",
            code=ErrorCode.PROVIDER_MODEL_NOT_FOUND,
        )
    if status == 408 or status == 504:
        return UpstreamError(
            504, f"provider {provider!r} timed out (HTTP {status})", code=ErrorCode.PROVIDER_TIMEOUT
        )
    if status >= 500:
        return UpstreamError(
            503 if status in (503, 529) else 502,
            f"provider {provider!r} failed (HTTP {status})",
            code=ErrorCode.PROVIDER_SERVER_ERROR,
            retry_after_s=retry_after,
        )
    parsed = _json_or_none(body)
    message = provider_words(message_of(parsed), settings)
    err = UpstreamError(
        413 if status == 413 else 400,
        f"provider {provider!r} rejected the request: {message or f'HTTP {status}'}",
        type="invalid_request_error",
        code=provider_words(_field_of(parsed, "code"), settings),
        retryable=False,
    )
    err.param = provider_words(_field_of(parsed, "param"), settings)
    return err


def _json_or_none(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _field_of(parsed: Any, name: str) -> str | None:
    if not isinstance(parsed, dict):
        return None
    error = parsed.get("error")
    source = error if isinstance(error, dict) else parsed
    value = source.get(name)
    return value if isinstance(value, str) else None
