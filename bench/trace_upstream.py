"""An instant chat-completions upstream for bench/hot_path.py: answers as long as asked.

Raw asyncio HTTP/1.1 with keep-alive, like bench/dialect_upstream.py, so it costs the
load core little. A streamed answer is `max_tokens` content chunks (`--chunks` when the
request gives none), a final chunk with `usage` when `stream_options.include_usage` is
true, then `[DONE]`, all written at once with chunked transfer encoding. A request whose
path starts with `/cloud` is counted as a cloud call, so the benchmark can check that the
gateway's cloud target was never used. GET /health, /v1/models and /metrics (vLLM's names,
zeros) answer as an engine's do.

Control, for the memory test: POST /bench/hold makes every later stream send its first
chunk and then wait; POST /bench/release finishes the waiting streams and ends hold mode.
POST /bench/pace?ms=N makes later streams send one event every N ms, as an engine decodes
(each token its own read at the gateway, so per-chunk costs count); ms=0 sends them at
once again. GET /bench/counts answers `{"local": N, "cloud": M}`.

    python bench/trace_upstream.py --port 9100 [--chunks 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from raw_http import RawHttp, serve

HEAD = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0}


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def _http_chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def stream_events(model: str, n: int, usage: bool) -> list[bytes]:
    """The SSE events of a streamed answer."""
    head = {**HEAD, "model": model}
    events = [
        _event(
            {
                **head,
                "choices": [{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}],
            }
        )
        for i in range(max(n, 1))
    ]
    events.append(_event({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    if usage:
        counts = {"prompt_tokens": 12, "completion_tokens": n, "total_tokens": 12 + n}
        events.append(_event({**head, "choices": [], "usage": counts}))
    events.append(b"data: [DONE]\n\n")
    return events


def whole_answer(model: str, n: int) -> bytes:
    text = "".join(f"tok{i} " for i in range(n)) if n else "Hello from the fake upstream."
    message = {"role": "assistant", "content": text}
    answer = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": n or 7, "total_tokens": 12 + (n or 7)},
    }
    return json.dumps(answer).encode()


class State:
    """What all connections share: the answer cache, hold mode, the call counts."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.cache: dict[tuple[str, int, bool], list[bytes]] = {}
        self.pace_s = 0.0
        self.hold = False
        self.held: list[tuple[asyncio.Transport, bytes]] = []
        self.counts = {"local": 0, "cloud": 0}

    def release(self) -> None:
        self.hold = False
        for transport, rest in self.held:
            if not transport.is_closing():
                transport.write(rest)
        self.held.clear()


class Upstream(RawHttp):
    def __init__(self, state: State) -> None:
        self.state = state

    def paced(self, events: list[bytes], i: int, pace_s: float) -> None:
        """Send event `i` now and the next one `pace_s` later (the last ends the stream)."""
        if self.transport.is_closing():
            return
        if i == len(events) - 1:
            self.transport.write(_http_chunk(events[i]) + b"0\r\n\r\n")
            return
        self.transport.write(_http_chunk(events[i]))
        asyncio.get_running_loop().call_later(pace_s, self.paced, events, i + 1, pace_s)

    def handle(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        state = self.state
        if method == "POST" and path.endswith("/chat/completions"):
            state.counts["cloud" if path.startswith("/cloud") else "local"] += 1
            request = json.loads(body or b"{}")
            model = request.get("model", "fake")
            n = request.get("max_tokens") or request.get("max_completion_tokens") or 0
            if request.get("stream") is not True:
                self.send(b"application/json", whole_answer(model, n))
                return
            usage = bool((request.get("stream_options") or {}).get("include_usage"))
            key = (model, n or state.chunks, usage)
            if key not in state.cache:
                state.cache[key] = stream_events(model, n or state.chunks, usage)
            events = state.cache[key]
            first = events[0]
            head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            head += b"transfer-encoding: chunked\r\n\r\n"
            if state.pace_s > 0:
                self.transport.write(head + _http_chunk(first))
                self.paced(events, 1, state.pace_s)
                return
            tail = _http_chunk(b"".join(events[1:])) + b"0\r\n\r\n"
            if state.hold:
                self.transport.write(head + _http_chunk(first))
                state.held.append((self.transport, tail))
            else:
                self.transport.write(head + _http_chunk(first) + tail)
        elif path == "/bench/hold":
            state.hold = True
            self.send(b"application/json", b"{}")
        elif path == "/bench/pace":
            state.pace_s = float(query.get("ms", "0")) / 1000
            self.send(b"application/json", b"{}")
        elif path == "/bench/release":
            state.release()
            self.send(b"application/json", b"{}")
        elif path == "/bench/counts":
            self.send(b"application/json", json.dumps(state.counts).encode())
        else:
            self.engine_page(path, {"id": "fake", "object": "model", "max_model_len": 131072})


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=9100)
    ap.add_argument("--chunks", type=int, default=20)
    args = ap.parse_args()
    state = State(args.chunks)
    await serve(lambda: Upstream(state), args.port)


if __name__ == "__main__":
    asyncio.run(main())
