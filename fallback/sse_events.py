"""Cutting a provider's server-sent-event stream into whole events, whatever the read sizes."""

from __future__ import annotations


class EventSplitter:
    """Feed bytes as read; get back the complete events (each without its closing blank line).

    CRLF line ends are normalised to LF; an event cut between two reads waits for the rest.
    """

    __slots__ = ("_tail",)

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, data: bytes) -> list[bytes]:
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


def event_data(event: bytes) -> bytes | None:
    """The `data:` payload of one event (lines joined by LF), or None for a comment or ping."""
    lines = [line for line in event.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    parts = [line[5:].removeprefix(b" ") for line in lines]
    return b"\n".join(parts)


def event_name(event: bytes) -> str | None:
    for line in event.split(b"\n"):
        if line.startswith(b"event:"):
            return line[6:].strip().decode("utf-8", "replace")
    return None
