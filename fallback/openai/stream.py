"""An OpenAI-format stream: each event checked, then passed on as the provider's bytes."""

from __future__ import annotations

from typing import Any, Protocol

from spillgate.errors import ErrorCode, UpstreamError
from spillgate.fallback.adapter import ProviderSettings
from spillgate.fallback.wire import event_object, provider_words, stream_cut
from spillgate.protocol import Usage
from spillgate.scrub import message_of
from spillgate.sse import DONE, EventSplitter, event_data


class OpenAIStream:
    """Checks each event of an OpenAI-format stream and passes it on as the provider's bytes."""

    def __init__(self, settings: ProviderSettings, wants_usage: bool) -> None:
        self.settings = settings
        self.provider = settings.name
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
        chunk = parse_chunk(self.settings, data)
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


def parse_chunk(settings: ProviderSettings, data: bytes) -> dict[str, Any]:
    chunk = event_object(settings.name, data)
    if chunk.get("error"):
        message = provider_words(message_of(chunk), settings) or "no details given"
        raise UpstreamError(
            502,
            f"provider {settings.name!r} reported an error mid-stream: {message}",
            code=ErrorCode.PROVIDER_STREAM_ERROR,
        )
    return chunk
