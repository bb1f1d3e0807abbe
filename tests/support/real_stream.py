"""One streamed chat request read to its end, timed from the client's side.

The real-tier tests and bench/affinity_real.py drive the gateway this way: the first content
chunk's arrival is the time to first token the client saw, and the answer's headers say
where it ran (`x-spillgate-route`) and under which id the gateway recorded it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson


@dataclass
class Streamed:
    status: int
    headers: httpx.Headers
    text: str
    #: Client-side monotonic clock (`time.monotonic()`) when the request was sent and when
    #: its first content chunk came (None: no content came, e.g. an error status).
    sent_at: float
    first_token_at: float | None

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.sent_at


def stream_chat(
    base_url: str,
    body: dict[str, Any],
    headers: dict[str, str],
    timeout_s: float = 300.0,
) -> Streamed:
    """POST `body` (made a stream) to /v1/chat/completions and read every event."""
    sent_at = time.monotonic()
    first: float | None = None
    pieces: list[str] = []
    url = f"{base_url}/v1/chat/completions"
    with httpx.stream(
        "POST", url, json={**body, "stream": True}, headers=headers, timeout=timeout_s
    ) as reply:
        if reply.status_code != 200:
            return Streamed(reply.status_code, reply.headers, reply.read().decode(), sent_at, None)
        for line in reply.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            for choice in orjson.loads(line[6:]).get("choices") or ():
                content = (choice.get("delta") or {}).get("content")
                if content:
                    first = first or time.monotonic()
                    pieces.append(content)
        return Streamed(200, reply.headers, "".join(pieces), sent_at, first)
