"""Gemini's error answers (`{"error": {"code", "message", "status"}}`) → `UpstreamError`."""

from __future__ import annotations

import re
from typing import Any

import orjson

from spillgate.errors import ErrorCode, UpstreamError
from spillgate.fallback.adapter import ProviderSettings
from spillgate.fallback.resilience import retry_after_seconds
from spillgate.fallback.wire import provider_words

# google.rpc canonical status → (HTTP status, OpenAI error type, worth trying another target).
_STATUSES: dict[str, tuple[int, str, bool]] = {
    "INVALID_ARGUMENT": (400, "invalid_request_error", False),
    "FAILED_PRECONDITION": (400, "invalid_request_error", False),
    "OUT_OF_RANGE": (400, "invalid_request_error", False),
    # A key the provider refuses is the gateway's problem, not the client's: a 502 (a 401
    # would tell an OpenAI client its own key is wrong), and the route's next target may work.
    "UNAUTHENTICATED": (502, "upstream_error", True),
    "PERMISSION_DENIED": (502, "upstream_error", True),
    "NOT_FOUND": (404, "not_found_error", False),
    "RESOURCE_EXHAUSTED": (429, "rate_limit_error", True),
    "CANCELLED": (502, "upstream_error", True),
    "INTERNAL": (500, "upstream_error", True),
    "UNAVAILABLE": (503, "upstream_error", True),
    "DEADLINE_EXCEEDED": (504, "upstream_error", True),
}
_DELAY = re.compile(r"([0-9]+(?:\.[0-9]+)?)s")


def upstream_error(
    settings: ProviderSettings, http_status: int, body: bytes, headers: dict[str, str]
) -> UpstreamError:
    """Map one Gemini error answer; its message passes through `provider_words`."""
    provider = settings.name
    error = _error_object(body)
    status_name = str(error.get("status") or "") if error else ""
    if status_name == "INVALID_ARGUMENT" and _names_a_bad_key(error):
        status_name = "UNAUTHENTICATED"  # Gemini answers a wrong key with 400 API_KEY_INVALID
    known = _STATUSES.get(status_name)
    if known:
        status, kind, retryable = known
    else:
        status = http_status if 400 <= http_status < 600 else 502
        retryable = status in (408, 429) or status >= 500
        kind = "invalid_request_error" if status < 500 and not retryable else "upstream_error"
    detail = provider_words(error.get("message"), settings) if error else None
    if detail:
        message = f"provider {provider} answered {status_name or http_status}: {detail}"
    else:
        message = f"provider {provider} answered HTTP {http_status} without a Gemini error body"
    return UpstreamError(
        status,
        message,
        type=kind,
        code=(
            ErrorCode.PROVIDER_AUTH_FAILED  # as every provider kind names a refused key
            if status_name in ("UNAUTHENTICATED", "PERMISSION_DENIED")
            else (provider_words(status_name, settings) or "").lower() or None
        ),
        retryable=retryable,
        retry_after_s=_retry_after(headers, error) if retryable else None,
    )


def _error_object(body: bytes) -> dict[str, Any] | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, list) and data:  # the non-SSE stream endpoint wraps it in an array
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else None


def _retry_after(headers: dict[str, str], error: dict[str, Any] | None) -> float | None:
    from_header = retry_after_seconds(headers)
    if from_header is not None:
        return from_header
    # Gemini itself says how long to wait in a google.rpc.RetryInfo detail ("37s").
    for detail in (error or {}).get("details") or []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            match = _DELAY.fullmatch(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _names_a_bad_key(error: dict[str, Any] | None) -> bool:
    if not error:
        return False
    details = error.get("details") or []
    reasons = {d.get("reason") for d in details if isinstance(d, dict)}
    return "API_KEY_INVALID" in reasons or "API key not valid" in str(error.get("message", ""))
