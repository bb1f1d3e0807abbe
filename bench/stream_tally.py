"""CPU a streamed chunk costs in the pieces accounting added to the relay.

Every chunk a client is sent passes `StreamTally.feed` (its text counted, for a stream that
ends without usage); a local stream also passes `UsageTap.feed`, stripping the usage chunk
when the gateway asked the engine for it. Process CPU time, best of five runs, per chunk of
a vLLM-shaped `chat.completion.chunk` (one token), and per 20-chunk stream.

    .venv/bin/python bench/stream_tally.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson

from spillgate.server.tally import StreamTally
from spillgate.sse import UsageTap

CHUNK = (
    b"data: "
    + orjson.dumps(
        {
            "id": "chatcmpl-8f3a2b1c9d7e4f60",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "meta-llama/Llama-3.1-8B-Instruct",
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": " hello"},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
        }
    )
    + b"\n\n"
)
ROUNDS = 200_000


def per_chunk_us(feed: Callable[[bytes], object]) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        for _ in range(ROUNDS):
            feed(CHUNK)
        best = min(best, (time.process_time() - started) / ROUNDS * 1e6)
    return best


def main() -> None:
    for name, feed in (
        ("StreamTally.feed", StreamTally().feed),
        ("UsageTap.feed (pass-through)", UsageTap().feed),
        ("UsageTap.feed (strip)", UsageTap(strip=True).feed),
    ):
        us = per_chunk_us(feed)
        print(f"{name:30s} {us:6.2f} us/chunk  {us * 20:7.1f} us per 20-chunk stream")


if __name__ == "__main__":
    main()
