"""Anthropic's Messages API passed through as it is: a /v1/messages request to an
`anthropic` provider is sent with only its model replaced (and `drop_params` left out),
and the answer, whole or streamed, reaches the client byte for byte. Usage is read on the
way past; errors go through the kind's error mapping like the chat path's."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import orjson

from spillgate.fallback.adapter import Translated
from spillgate.fallback.wire import answer_object, bad_answer, stream_cut
from spillgate.protocol import Endpoint, Usage
from spillgate.sse import EventSplitter, UsageTap, event_data

#: What `drop_params` cannot remove: without them there is no request.
_ESSENTIAL = ("model", "messages", "max_tokens")


def native_body(
    payload: dict[str, Any], model: str, drop_params: Collection[str]
) -> dict[str, Any]:
    """The client's request for the provider's model (the route chose it, not the client)."""
    kept = {k: v for k, v in payload.items() if k not in drop_params or k in _ESSENTIAL}
    return {**kept, "model": model}


def native_answer(provider: str, body: bytes) -> Translated:
    message = answer_object(provider, body)
    if message.get("type") != "message" or not isinstance(message.get("content"), list):
        raise bad_answer(provider, "not a message")
    return Translated(body=body, usage=Usage.from_anthropic(message.get("usage")))


class NativeStream:
    """Passes Anthropic's stream bytes on as they come, reading usage (`message_start`,
    `message_delta`) on the way. A stream that ends after neither `message_stop` nor an
    `error` event was cut short: `finish` raises, and the client reads an error event."""

    def __init__(self, provider: str) -> None:
        self._provider = provider
        self._tap = UsageTap(endpoint=Endpoint.MESSAGES)
        self._events = EventSplitter()
        self._ended = False

    @property
    def usage(self) -> Usage | None:
        return self._tap.usage

    def feed(self, data: bytes) -> bytes:
        self._tap.feed(data)
        events = self._events.feed(data)
        if events:
            self._ended = _is_last(events[-1])
        return data

    def finish(self) -> bytes:
        if not self._ended or self._events.pending.strip():
            raise stream_cut(self._provider, "message_stop")
        return b""


def _is_last(event: bytes) -> bool:
    """Is this `message_stop` or an `error` event (the two ends of an Anthropic stream)?"""
    for line in event.split(b"\n"):
        if line.startswith(b"event:"):
            return line[6:].strip() in (b"message_stop", b"error")
    try:
        payload = orjson.loads(event_data(event) or b"null")
    except orjson.JSONDecodeError:
        return False
    return isinstance(payload, dict) and payload.get("type") in ("message_stop", "error")
