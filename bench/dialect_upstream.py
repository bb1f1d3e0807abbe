"""An instant upstream that speaks chat completions, Responses and Messages, for benchmarks.

Raw asyncio HTTP/1.1 with keep-alive, like ../shared/tools/fake_upstream.py (which answers
chat only): every POST is answered at once, JSON or SSE when the body asks for a stream,
each stream `--chunks` text deltas long with its usage at the end, in the event sequence
the API defines. GET /health, /v1/models and /metrics (vLLM's names, zeros) answer too.

    python bench/dialect_upstream.py --port 9100 [--chunks 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from raw_http import RawHttp, serve

USAGE = {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}


def _sse(events: list[tuple[str | None, dict[str, Any]]], done: bool = False) -> bytes:
    out = []
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        out.append(f"{head}data: {json.dumps(data)}\n\n".encode())
    return b"".join(out) + (b"data: [DONE]\n\n" if done else b"")


def chat(model: str, stream: bool, n: int) -> bytes:
    if not stream:
        message = {"role": "assistant", "content": "Hello from the fake upstream."}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        answer = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [choice],
            "usage": USAGE,
        }
        return json.dumps(answer).encode()
    head = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model}
    events = [
        (
            None,
            {
                **head,
                "choices": [{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}],
            },
        )
        for i in range(n)
    ]
    last = {"index": 0, "delta": {}, "finish_reason": "stop"}
    usage = {"prompt_tokens": 12, "completion_tokens": n, "total_tokens": 12 + n}
    events.append((None, {**head, "choices": [last], "usage": usage}))
    return _sse(events, done=True)


def responses(model: str, stream: bool, n: int) -> bytes:
    text = "".join(f"tok{i} " for i in range(n))
    item = {
        "type": "message",
        "id": "msg_fake",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    usage = {
        "input_tokens": 12,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": n,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 12 + n,
    }
    done = {
        "id": "resp_fake",
        "object": "response",
        "created_at": 0,
        "model": model,
        "status": "completed",
        "output": [item],
        "usage": usage,
    }
    if not stream:
        return json.dumps(done).encode()
    started = {**done, "status": "in_progress", "output": [], "usage": None}
    events: list[tuple[str | None, dict[str, Any]]] = [
        ("response.created", {"type": "response.created", "response": started}),
        (
            "response.output_item.added",
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {**item, "content": []},
            },
        ),
    ]
    for i in range(n):
        delta = {
            "type": "response.output_text.delta",
            "item_id": "msg_fake",
            "output_index": 0,
            "content_index": 0,
            "delta": f"tok{i} ",
        }
        events.append(("response.output_text.delta", delta))
    events.append(("response.completed", {"type": "response.completed", "response": done}))
    return _sse([(name, {**data, "sequence_number": i}) for i, (name, data) in enumerate(events)])


def messages(model: str, stream: bool, n: int) -> bytes:
    text = "".join(f"tok{i} " for i in range(n))
    message = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": n},
    }
    if not stream:
        return json.dumps(message).encode()
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": 12, "output_tokens": 1},
    }
    events: list[tuple[str | None, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
    ]
    for i in range(n):
        delta = {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": f"tok{i} "},
        }
        events.append(("content_block_delta", delta))
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "usage": {"output_tokens": n},
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return _sse(events)


ANSWERS = {"/v1/chat/completions": chat, "/v1/responses": responses, "/v1/messages": messages}


class Upstream(RawHttp):
    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.cache: dict[tuple[str, str, bool], bytes] = {}

    def handle(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        answer = ANSWERS.get(path)
        if method == "POST" and answer is not None:
            request = json.loads(body or b"{}")
            model, stream = request.get("model", "fake"), request.get("stream") is True
            key = (path, model, stream)
            if key not in self.cache:
                self.cache[key] = answer(model, stream, self.chunks)
            ctype = b"text/event-stream" if stream else b"application/json"
            self.send(ctype, self.cache[key])
        else:
            self.engine_page(path, {"id": "fake", "object": "model"})


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=9100)
    ap.add_argument("--chunks", type=int, default=20)
    args = ap.parse_args()
    await serve(lambda: Upstream(args.chunks), args.port)


if __name__ == "__main__":
    asyncio.run(main())
