"""What every provider kind says the same way, whatever its wire format.

A kind's request, response and stream modules call these so that a client reads the same
error for the same fault from every provider: a parameter the kind cannot honour, an
answer that cannot be read, a stream that ends early. A provider's own words reach a
client only through `provider_words`, which takes out every secret of its settings.
Retry-After is read by `resilience.retry_after_seconds`, SSE bytes are cut by
`spillgate.sse.EventSplitter`, and "did the client ask for usage" is
`spillgate.sse.client_wants_usage`.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Collection
from typing import Any

import orjson

from spillgate.errors import ErrorCode, GatewayError, UpstreamError, bad_request
from spillgate.fallback.adapter import ProviderSettings
from spillgate.protocol import Endpoint, Usage
from spillgate.scrub import MIN_SECRET_CHARS, REDACTED, safe_detail
from spillgate.sse import EventSplitter

#: How much of a provider's own message a client reads.
WORDS_LIMIT = 300
#: Header names whose values are credentials (`Authorization`, `X-Api-Key`, `Cookie`...).
_CREDENTIAL_HEADER = re.compile(r"auth|key|token|secret|password|cookie|credential|signature", re.I)
_SPACE = re.compile(r"\s+")


def provider_words(text: Any, settings: ProviderSettings) -> str | None:
    """A provider's own message, fit for a client; None when it gave none.

    Every kind's error mapping passes provider-supplied text through here: a provider may
    echo the key it was sent. Taken out: the API key and every credential header value of
    `settings` (whatever the gateway's global scrub knows, too), quoted request input; white
    space is folded and the rest cut to `WORDS_LIMIT`.
    """
    if not isinstance(text, str):
        return None
    for secret in _secrets_of(settings):
        text = text.replace(secret, REDACTED)
    text = _SPACE.sub(" ", safe_detail(text)).strip()
    if not text:
        return None
    return text if len(text) <= WORDS_LIMIT else text[: WORDS_LIMIT - 3] + "..."


def _secrets_of(settings: ProviderSettings) -> list[str]:
    """The key and credential header values (also the token after a scheme like `Bearer`),
    longest first so that a secret containing another is replaced whole."""
    found = {settings.api_key} if settings.api_key else set()
    for name, value in settings.headers.items():
        if _CREDENTIAL_HEADER.search(name):
            parts = (value.strip(), *value.split()[1:])
            found.update(part for part in parts if len(part) >= MIN_SECRET_CHARS)
    return sorted(found, key=len, reverse=True)


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


def require_endpoint(
    settings: ProviderSettings, endpoint: Endpoint, serves: Collection[Endpoint] = (Endpoint.CHAT,)
) -> None:
    """Refuse an endpoint this kind does not offer: a 400 `unsupported_endpoint` that names
    the endpoint, the provider and its kind (the route's next target may offer it)."""
    if endpoint in serves:
        return
    offered = ", ".join(f"/v1/{e.value}" for e in serves)
    raise GatewayError(
        400,
        f"/v1/{endpoint.value} is not offered by provider {settings.name!r} (kind "
        f"{settings.kind}), which serves {offered} only; route {endpoint.value} requests to "
        "a provider that offers them",
        code=ErrorCode.UNSUPPORTED_ENDPOINT,
    )


def tool_arguments(raw: Any, where: str) -> dict[str, Any]:
    """A tool call's `function.arguments` (a JSON object encoded as a string, as OpenAI sends
    it; already an object is taken too) for a kind that wants the object; `where` is the
    call's path in the request (`messages[1].tool_calls[0]`). Missing or empty is `{}`."""
    if raw is None or raw == "":
        return {}
    try:
        parsed = orjson.loads(raw) if isinstance(raw, str) else raw
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise bad_request(
            f"`{where}.function.arguments` must be a JSON object encoded as a string",
            param=f"{where}.function.arguments",
        )
    return parsed


def openai_usage(usage: Usage) -> dict[str, Any]:
    """Usage as an OpenAI `usage` object, for a kind that translates its own."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


def answer_object(provider: str, body: bytes) -> dict[str, Any]:
    """The JSON object a whole answer is; anything else is a `provider_bad_answer`."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise bad_answer(provider, "not a JSON object")
    return parsed


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


def event_object(provider: str, data: bytes) -> dict[str, Any]:
    """The JSON object one stream event carries; anything else is a malformed event."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise malformed_event(provider)
    return parsed


def malformed_event(provider: str) -> UpstreamError:
    """A stream event the provider's API never sends: one code, `provider_bad_stream`, for
    every kind."""
    return UpstreamError(
        502,
        f"provider {provider!r} sent a malformed stream event",
        code=ErrorCode.PROVIDER_BAD_STREAM,
    )


class EventStream(ABC):
    """What every kind's `StreamTranslator` does the same way: the provider's bytes cut into
    events, each translated by `event`, and the rule for a bad one.

    A bad event ends the stream, but the good events before it in the same read still reach
    the client: the failure is raised on the next call (`feed` or `finish`), and on every
    call after. A subclass sets `done` at the provider's last event; later events are
    ignored. `finish` ends with the subclass's `close` (a stream cut short, or the closing
    bytes).
    """

    #: One event never legitimately comes near this; a provider that never ends one is cut off.
    MAX_PENDING = 8 << 20

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.done = False
        self.failure: UpstreamError | None = None
        self.splitter = EventSplitter()

    def feed(self, data: bytes) -> bytes:
        if self.failure is not None:
            raise self.failure
        out = []
        for raw in self.splitter.feed(data):
            if self.done:
                break
            try:
                out.append(self.event(raw))
            except UpstreamError as err:
                self.failure = err
                break
        if self.failure is None and len(self.splitter.pending) > self.MAX_PENDING:
            self.failure = malformed_event(self.provider)
        if self.failure is not None and not any(out):
            raise self.failure
        return b"".join(out)

    def finish(self) -> bytes:
        if self.failure is not None:
            raise self.failure
        return self.close()

    @abstractmethod
    def event(self, raw: bytes) -> bytes:
        """One whole event as sent (without its blank line) -> OpenAI SSE bytes, maybe none."""

    @abstractmethod
    def close(self) -> bytes:
        """The provider's stream ended: the closing bytes, or `stream_cut` when it was early."""
