"""The completion tokens an answer carried, counted from its text: for an upstream that never
said (a stream cut before its usage chunk, a usage chunk or object missing or unreadable).

Each piece of text (content, legacy text, refusal, reasoning, tool-call arguments) counts
`max(1, bytes / BYTES_PER_TOKEN_ESTIMATE)`, rounded: one token a delta, as engines and most
providers stream, and about one per four bytes where a provider sends longer pieces. The
text is found in the JSON bytes without parsing them, since every streamed chunk passes
here (a JSON string cannot hold a raw newline, so whole lines are safe to read).
"""

from __future__ import annotations

import re

from spillgate.server.features import BYTES_PER_TOKEN_ESTIMATE

_TEXT = re.compile(
    rb'"(?:content|text|refusal|reasoning_content|arguments)": ?"((?:[^"\\]++|\\.)*+)"'
)
_MAX_TAIL = 1 << 20
_BYTES_PER_TOKEN = round(BYTES_PER_TOKEN_ESTIMATE)
_HALF_TOKEN = _BYTES_PER_TOKEN // 2


def text_tokens(json_bytes: bytes, end: int | None = None) -> int:
    """The completion tokens of the answer text in `json_bytes[:end]` (whole JSON lines)."""
    tokens = 0
    for text in _TEXT.finditer(json_bytes, 0, len(json_bytes) if end is None else end):
        size = text.end(1) - text.start(1)
        if size:
            tokens += (size + _HALF_TOKEN) // _BYTES_PER_TOKEN or 1
    return tokens


class StreamTally:
    """Counts the completion tokens of the SSE bytes a client was sent."""

    __slots__ = ("_tail", "completion_tokens")

    def __init__(self) -> None:
        self._tail = b""
        self.completion_tokens = 0

    def feed(self, data: bytes) -> None:
        buf = self._tail + data if self._tail else data
        end = buf.rfind(b"\n") + 1
        if end:
            self.completion_tokens += text_tokens(buf, end)
        self._tail = buf[end:] if len(buf) - end < _MAX_TAIL else b""
