"""What every provider kind says the same way, whatever its wire format.

A kind's request, response and stream modules call these so that a client reads the same
error for the same fault from every provider: a parameter the kind cannot honour, an
answer that cannot be read, a stream that ends early. Retry-After is read by
`resilience.retry_after_seconds`, SSE bytes are cut by `spillgate.sse.EventSplitter`, and
"did the client ask for usage" is `spillgate.sse.client_wants_usage`.
"""

from __future__ import annotations

from typing import Any

import orjson

from spillgate.errors import ErrorCode, GatewayError, UpstreamError


def unsupported_parameter(
    provider: str, kind: str, param: str, *, what: str | None = None, why: str = ""
) -> GatewayError:
    """A request field this provider cannot honour: a 400 that says how to get past it.

    `kind` is the provider family as people write it ("Anthropic"); `what` names the field
    when it is not simply `param` (a message role, a content part); `why` says why not.
    """
    subject = what or f"`{param}`"
    reason = f" ({why})" if why else ""
    return GatewayError(
        400,
        f"{subject} is not supported by {kind} provider {provider!r}{reason}; remove it, "
        f"or list `{param}` in that provider's drop_params to have Spillgate drop it",
        code=ErrorCode.UNSUPPORTED_PARAMETER,
        param=param,
    )


def bad_answer(provider: str, problem: str) -> UpstreamError:
    """A whole answer the provider's API never sends (`problem` says how it is wrong)."""
    return UpstreamError(
        502,
        f"provider {provider!r} sent an answer it cannot have meant: {problem}",
        code=ErrorCode.PROVIDER_BAD_ANSWER,
    )


def stream_cut(provider: str, before: str = "it was complete") -> UpstreamError:
    """The provider's stream ended before its last event (`before` names that event)."""
    return UpstreamError(
        502,
        f"provider {provider!r} ended its stream before {before}",
        code=ErrorCode.PROVIDER_STREAM_CUT,
    )


def event_object(
    provider: str, data: bytes, code: ErrorCode = ErrorCode.PROVIDER_BAD_STREAM
) -> dict[str, Any]:
    """The JSON object one stream event carries; anything else is a malformed event."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise malformed_event(provider, code)
    return parsed


def malformed_event(
    provider: str, code: ErrorCode = ErrorCode.PROVIDER_BAD_STREAM
) -> UpstreamError:
    return UpstreamError(502, f"provider {provider!r} sent a malformed stream event", code=code)
