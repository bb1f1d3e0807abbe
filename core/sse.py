"""Server-sent-event framing in OpenAI's streaming format."""

from __future__ import annotations

from typing import Any

import orjson

from spillgate.protocol import Usage

DONE = b"data: [DONE]\n\n"


def event(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def error_event(message: str, type: str = "upstream_error", code: str | None = None) -> bytes:
    """A terminating error, as OpenAI streams one; the official SDK raises APIError on it."""
    return event({"error": {"message": message, "type": type, "param": None, "code": code}})


class UsageTap:
    """Watches passing SSE bytes for the usage object without parsing every chunk.

    Only a complete event whose bytes contain `"usage":{` (the final chunk with
    `stream_options.include_usage`) is parsed; the others pass by untouched. A partial
    event at the end of a read is kept until its terminator arrives.
    """

    __slots__ = ("_tail", "usage")

    _MAX_TAIL = 1 << 20

    def __init__(self) -> None:
        self._tail = b""
        self.usage: Usage | None = None

    def feed(self, data: bytes) -> None:
        buf = self._tail + data if self._tail else data
        cut = buf.rfind(b"\n\n")
        if cut < 0:
            self._tail = buf if len(buf) < self._MAX_TAIL else b""
            return
        complete, self._tail = buf[:cut], buf[cut + 2 :]
        if b'"usage":{' in complete or b'"usage": {' in complete:
            self._parse(complete)

    def _parse(self, complete: bytes) -> None:
        for line in complete.split(b"\n"):
            if not line.startswith(b"data:") or b'"usage"' not in line:
                continue
            try:
                chunk = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                continue
            if isinstance(chunk, dict):
                usage = Usage.from_openai(chunk.get("usage"))
                if usage is not None:
                    self.usage = usage
