"""Server-sent-event framing in OpenAI's streaming format."""

from __future__ import annotations

import re
from typing import Any

import orjson

from spillgate.protocol import DIALECTS, Endpoint, Usage
from spillgate.scrub import scrub

DONE = b"data: [DONE]\n\n"
_EVENT_END = re.compile(rb"\r?\n\r?\n")


def event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def error_event(
    message: str,
    type: str = "upstream_error",
    code: str | None = None,
    endpoint: Endpoint = Endpoint.CHAT,
    sequence_number: int = 0,
) -> bytes:
    """A terminating error, as the called API streams one; the official SDKs raise on it.

    Chat and completions: a `data:` line with OpenAI's error object. Responses: an `error`
    event (numbered after the stream's last). Messages: Anthropic's `error` event, typed as
    an overloaded or API error (mid-stream, the upstream is at fault).
    """
    text = scrub(message)
    if endpoint is Endpoint.RESPONSES:
        data = {"type": "error", "code": code, "message": text, "param": None,
                "sequence_number": sequence_number}  # fmt: skip
        return b"event: error\ndata: " + orjson.dumps(data) + b"\n\n"
    if endpoint is Endpoint.MESSAGES:
        kind = "overloaded_error" if code == "provider_rate_limited" else "api_error"
        data = {"type": "error", "error": {"type": kind, "message": text}}
        return b"event: error\ndata: " + orjson.dumps(data) + b"\n\n"
    return event({"error": {"message": text, "type": type, "param": None, "code": code}})


def client_wants_usage(payload: dict[str, Any]) -> bool:
    """Did the client ask for the usage chunk at the end of its stream?"""
    options = payload.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def with_usage_requested(payload: dict[str, Any]) -> dict[str, Any]:
    """The request asking for the usage chunk at the end of its stream: accounting needs it.
    Where the client did not ask, the chunk is dropped again before it reaches the client."""
    options = payload.get("stream_options")
    kept = options if isinstance(options, dict) else {}
    return {**payload, "stream_options": {**kept, "include_usage": True}}


class EventSplitter:
    """Cuts server-sent-event bytes into whole events, whatever the read sizes.

    The one place the gateway finds where an event ends: `cut` hands back the whole events
    as sent (for relaying bytes untouched), `feed` the events one by one with CRLF and CR
    line ends made LF (for translating them). An event cut between two reads waits for
    the rest; `rest` hands over what never got its end.
    """

    __slots__ = ("_tail",)

    def __init__(self) -> None:
        self._tail = b""

    def cut(self, data: bytes) -> bytes:
        """Bytes as read; returns the whole events among them so far (b"": none yet)."""
        buf = self._tail + data if self._tail else data
        end = _last_event_end(buf)
        if end < 0:
            self._tail = buf
            return b""
        self._tail = buf[end:]
        return buf[:end]

    def feed(self, data: bytes) -> list[bytes]:
        """Bytes as read; returns the complete events, each without its closing blank line."""
        buf = self._tail + data if self._tail else data
        if b"\r" in buf:
            held = buf.endswith(b"\r")  # its LF may be in the next read
            buf = buf[:-1] if held else buf
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if held:
                buf += b"\r"
        events = buf.split(b"\n\n")
        self._tail = events.pop()
        return [e for e in events if e.strip()]

    @property
    def pending(self) -> bytes:
        """Bytes of an event whose end has not arrived."""
        return self._tail

    def rest(self) -> bytes:
        """Hands over (and forgets) the bytes of an event whose end has not arrived."""
        tail, self._tail = self._tail, b""
        return tail


_SEQUENCE = re.compile(rb'"sequence_number"\s*:\s*(\d+)')


def next_sequence_number(events: bytes, current: int) -> int:
    """The number a Responses event after `events` (whole events) takes: one past the last
    `sequence_number` among them, or `current` when they carry none."""
    at = events.rfind(b'"sequence_number"')
    found = _SEQUENCE.match(events, at) if at >= 0 else None
    return int(found.group(1)) + 1 if found else current


def event_data(event: bytes) -> bytes | None:
    """The `data:` payload of one event (lines joined by LF), or None for a comment or ping."""
    lines = [line for line in event.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    parts = [line[5:].removeprefix(b" ") for line in lines]
    return b"\n".join(parts)


class UsageTap:
    """Watches passing SSE bytes for the usage object without parsing every chunk.

    Only a complete event whose bytes contain `"usage":{` (the final chunk with
    `stream_options.include_usage`) is parsed; the others pass by untouched. A partial
    event at the end of a read is kept (by an `EventSplitter`) until its end arrives.

    With `strip`, `feed` passes on only whole events, less the usage chunk (one whose
    `choices` are empty): for a stream whose client did not ask for it.
    """

    __slots__ = ("_events", "_reported", "endpoint", "strip", "usage")

    _MAX_TAIL = 1 << 20

    def __init__(self, strip: bool = False, endpoint: Endpoint = Endpoint.CHAT) -> None:
        """`endpoint`: the API whose stream passes (Responses and Messages report usage
        in their own events: `response.completed`, `message_start` + `message_delta`)."""
        self._events = EventSplitter()
        self.strip = strip
        self.endpoint = endpoint
        self.usage: Usage | None = None
        self._reported: dict[str, Any] = {}

    def feed(self, data: bytes) -> bytes:
        """Bytes as read; returns the bytes to pass on (`data` itself unless stripping)."""
        complete = self._events.cut(data)
        if not complete:
            if len(self._events.pending) < self._MAX_TAIL:
                return b"" if self.strip else data
            held = self._events.rest()  # an endless event is not held back
            return held if self.strip else data
        at = _usage_at(complete, 0)
        if at < 0:
            return complete if self.strip else data
        # Only the events holding a usage object are read: the rest pass as one slice.
        kept: list[bytes] = []
        start = 0
        while at >= 0:
            begin = _event_start(complete, at)
            found = _EVENT_END.search(complete, at)
            stop = found.end() if found else len(complete)
            if self._usage_only(complete[begin:stop]) and self.strip:
                kept.append(complete[start:begin])
                start = stop
            at = _usage_at(complete, stop)
        if not self.strip:
            return data
        kept.append(complete[start:])
        return b"".join(kept)

    def rest(self) -> bytes:
        """The end of the stream: bytes held back after its last whole event."""
        tail = self._events.rest()
        return tail if self.strip else b""

    def _usage_only(self, event: bytes) -> bool:
        """Note the usage an event carries; True for the usage chunk itself."""
        for line in event.split(b"\n"):
            if not line.startswith(b"data:") or b'"usage"' not in line:
                continue
            try:
                chunk = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                continue
            if not isinstance(chunk, dict):
                continue
            if self.endpoint in DIALECTS:
                self._dialect_usage(chunk)
                return False
            usage = Usage.from_openai(chunk.get("usage"))
            if usage is not None:
                self.usage = usage
                return not chunk.get("choices")
        return False

    def _dialect_usage(self, event: dict[str, Any]) -> None:
        if self.endpoint is Endpoint.RESPONSES:
            response = event.get("response")
            if isinstance(response, dict):
                self.usage = Usage.from_responses(response.get("usage")) or self.usage
            return
        # Messages: `message_start` holds the input, `message_delta` the output so far.
        message = event.get("message")
        holder = message if isinstance(message, dict) else event
        usage = holder.get("usage")
        if isinstance(usage, dict):
            self._reported.update({k: v for k, v in usage.items() if v is not None})
            self.usage = Usage.from_anthropic(self._reported)


def _last_event_end(buf: bytes) -> int:
    """Where the bytes after the last whole event start (LF or CRLF framing); -1: none."""
    if buf.endswith(b"\n\n"):
        return len(buf)  # the usual read: whole events, no need to look further
    lf, crlf = buf.rfind(b"\n\n"), buf.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else -1, crlf + 4 if crlf >= 0 else -1)


def _usage_at(buf: bytes, start: int) -> int:
    """Where the next usage object is written (either spacing), from `start`; -1: none."""
    tight, spaced = buf.find(b'"usage":{', start), buf.find(b'"usage": {', start)
    return spaced if tight < 0 else tight if spaced < 0 else min(tight, spaced)


def _event_start(buf: bytes, at: int) -> int:
    """Where the event holding position `at` begins (after the terminator before it)."""
    lf, crlf = buf.rfind(b"\n\n", 0, at), buf.rfind(b"\r\n\r\n", 0, at)
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)
