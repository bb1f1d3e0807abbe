"""OpenAI's own API, Azure OpenAI, and every OpenAI-compatible provider.

The client already speaks this format, so the request goes out as sent with three changes:
the provider's model name, the parameters config says to drop, and
`stream_options.include_usage` (Spillgate needs the usage to price the call; the usage
chunk is removed again when the client did not ask for it). Answers pass through as the
provider's bytes; streams are cut into events and checked, so a malformed or error event
becomes an error the executor can act on instead of garbage at the client.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import quote

import orjson

from spillgate.errors import ErrorCode, UpstreamError
from spillgate.fallback.adapter import ProviderCall, ProviderSettings, Translated
from spillgate.fallback.resilience import retry_after_seconds
from spillgate.fallback.wire import bad_answer, stream_cut
from spillgate.protocol import Endpoint, UpstreamRequest, Usage
from spillgate.scrub import message_of
from spillgate.sse import DONE, EventSplitter, client_wants_usage, event_data, with_usage_requested

_JSON = "application/json"


class OpenAIAdapter:
    """Kinds `openai` and `openai-compatible` (Groq, Together, OpenRouter, DeepSeek, vLLM...)."""

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")

    # -- out --------------------------------------------------------------------------------

    def build(self, request: UpstreamRequest) -> ProviderCall:
        payload = self.payload(request)
        return ProviderCall(self.url(request), self.headers(), orjson.dumps(payload))

    def payload(self, request: UpstreamRequest) -> dict[str, Any]:
        payload = {**request.payload, "model": request.target_model}
        for name in self.settings.drop_params:
            payload.pop(name, None)
        if (
            request.stream
            and request.endpoint is not Endpoint.EMBEDDINGS
            and "stream_options" not in self.settings.drop_params
        ):
            payload = with_usage_requested(payload)
        return payload

    def url(self, request: UpstreamRequest) -> str:
        return f"{self.base_url}/{request.endpoint.value}"

    def headers(self) -> dict[str, str]:
        headers = {"content-type": _JSON, "accept": _JSON, **self.settings.headers}
        if self.settings.api_key:
            headers["authorization"] = f"Bearer {self.settings.api_key}"
        return headers

    # -- back -------------------------------------------------------------------------------

    def translate(self, request: UpstreamRequest, body: bytes) -> Translated:
        answer = parse_answer(self.settings.name, request.endpoint, body)
        return Translated(body, Usage.from_openai(answer.get("usage")))

    def stream(self, request: UpstreamRequest) -> OpenAIStream:
        return OpenAIStream(self.settings.name, client_wants_usage(request.payload))

    def error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
        return provider_error(self.settings.name, status, body, headers)


class AzureOpenAIAdapter(OpenAIAdapter):
    """Azure OpenAI: the model is a deployment in the URL, `api-version` a query parameter,
    the key goes in `api-key`. Its streams open with a choiceless `prompt_filter_results`
    chunk, which OpenAI never sends; OpenAIStream leaves it out."""

    def url(self, request: UpstreamRequest) -> str:
        deployment = quote(request.target_model, safe="")
        version = quote(str(self.settings.options["api_version"]), safe="")
        return (
            f"{self.base_url}/openai/deployments/{deployment}/{request.endpoint.value}"
            f"?api-version={version}"
        )

    def headers(self) -> dict[str, str]:
        headers = {"content-type": _JSON, "accept": _JSON, **self.settings.headers}
        if self.settings.api_key:
            headers["api-key"] = self.settings.api_key
        return headers


def parse_answer(provider: str, endpoint: Endpoint, body: bytes) -> dict[str, Any]:
    """A whole answer, checked for the one field a client cannot do without."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        answer = None
    needed = "data" if endpoint is Endpoint.EMBEDDINGS else "choices"
    if not isinstance(answer, dict) or not isinstance(answer.get(needed), list):
        raise bad_answer(provider, f"not a valid {endpoint.value} response")
    return answer


class OpenAIStream:
    """Checks each event of an OpenAI-format stream and passes it on as the provider's bytes."""

    def __init__(self, provider: str, wants_usage: bool) -> None:
        self.provider = provider
        self.wants_usage = wants_usage
        self.usage: Usage | None = None
        self._events = EventSplitter()
        self.done = False
        self.failure: UpstreamError | None = None

    def feed(self, data: bytes) -> bytes:
        return feed_events(self, self._events.feed(data))

    def finish(self) -> bytes:
        return finish_events(self)

    def event(self, event: bytes) -> bytes:
        data = event_data(event)
        if data is None:
            return b""  # a comment (keep-alive) is not the client's business
        if data == b"[DONE]":
            self.done = True
            return DONE
        chunk = parse_chunk(self.provider, data)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = Usage.from_openai(usage)
        if not chunk.get("choices"):
            # The usage chunk, or Azure's prompt_filter_results chunk: the client sees the
            # first only if it asked for it, the second never.
            return event + b"\n\n" if usage and self.wants_usage else b""
        return event + b"\n\n"


class _EventStream(Protocol):
    provider: str
    done: bool
    failure: UpstreamError | None

    def event(self, event: bytes) -> bytes: ...


def feed_events(stream: _EventStream, events: list[bytes]) -> bytes:
    """Translate whole events. A bad one ends the stream, but only after the good ones
    before it in the same read have been passed on: the failure is raised on the next call.
    """
    if stream.failure is not None:
        raise stream.failure
    out = []
    for event in events:
        if stream.done:
            break
        try:
            out.append(stream.event(event))
        except UpstreamError as err:
            stream.failure = err
            break
    if stream.failure is not None and not any(out):
        raise stream.failure
    return b"".join(out)


def finish_events(stream: _EventStream) -> bytes:
    if stream.failure is not None:
        raise stream.failure
    if not stream.done:
        raise stream_cut(stream.provider)
    return b""


def parse_chunk(provider: str, data: bytes) -> dict[str, Any]:
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        chunk = None
    if not isinstance(chunk, dict):
        raise UpstreamError(
            502,
            f"provider {provider!r} sent a malformed stream event",
            code=ErrorCode.PROVIDER_STREAM_MALFORMED,
        )
    if chunk.get("error"):
        message = message_of(chunk) or "no details given"
        raise UpstreamError(
            502,
            f"provider {provider!r} reported an error mid-stream: {message}",
            code=ErrorCode.PROVIDER_STREAM_ERROR,
        )
    return chunk


def provider_error(
    provider: str, status: int, body: bytes, headers: dict[str, str]
) -> UpstreamError:
    """An OpenAI-family error answer as the client should see it.

    Only a request the provider judged invalid carries the provider's own words (they are
    about the client's request); rate-limit, auth and server errors get ours, since theirs
    can name Spillgate's account or echo part of its key.
    """
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
    message = message_of(parsed) if parsed is not None else None
    err = UpstreamError(
        413 if status == 413 else 400,
        f"provider {provider!r} rejected the request: {message or f'HTTP {status}'}",
        type="invalid_request_error",
        code=_field_of(parsed, "code"),
        retryable=False,
    )
    err.param = _field_of(parsed, "param")
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
