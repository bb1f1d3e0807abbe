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
#: Bytes a stream's tally holds before counting them: most answers are shorter, so a stream
#: whose upstream reports its usage is never counted (the count reads about 4 µs a KB
#: here). At most 64 MiB for 1,000 streams.
BATCH_BYTES = 64 * 1024
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
    """Counts the completion tokens of the SSE bytes a client was sent.

    Chunks are held and counted `BATCH_BYTES` at a time, or when the count is asked for
    (accounting asks only where the upstream reported no usage): a chunk costs an append,
    and an answer shorter than a batch whose usage came is never counted at all.
    """

    __slots__ = ("_counted", "_held", "_held_bytes", "_tail")

    def __init__(self) -> None:
        self._held: list[bytes] = []
        self._held_bytes = 0
        self._tail = b""
        self._counted = 0

    def feed(self, data: bytes) -> None:
        self._held.append(data)
        self._held_bytes += len(data)
        if self._held_bytes >= BATCH_BYTES:
            self._count()

    @property
    def completion_tokens(self) -> int:
        if self._held:
            self._count()
        return self._counted

    def _count(self) -> None:
        buf = b"".join([self._tail, *self._held])
        self._held, self._held_bytes = [], 0
        end = buf.rfind(b"\n") + 1
        if end:
            self._counted += text_tokens(buf, end)
        self._tail = buf[end:] if len(buf) - end < _MAX_TAIL else b""
