"""An OpenAI-format stream: each event checked, then passed on as the provider's bytes."""

from __future__ import annotations

from typing import Any

from spillgate.errors import ErrorCode, UpstreamError
from spillgate.fallback.adapter import ProviderSettings
from spillgate.fallback.wire import EventStream, event_object, provider_words, stream_cut
from spillgate.protocol import Usage
from spillgate.scrub import message_of
from spillgate.sse import DONE, event_data


class OpenAIStream(EventStream):
    """Checks each event of an OpenAI-format stream and passes it on as the provider's bytes."""

    def __init__(self, settings: ProviderSettings, wants_usage: bool) -> None:
        super().__init__(settings.name)
        self.settings = settings
        self.wants_usage = wants_usage
        self.usage: Usage | None = None

    def close(self) -> bytes:
        if not self.done:
            raise stream_cut(self.provider)
        return b""

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
