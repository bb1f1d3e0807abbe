"""A chat-completion stream -> Anthropic's Messages stream, as the chunks come.

Anthropic's sequence: `message_start`, then per content block `content_block_start`,
its deltas and `content_block_stop` (one block open at a time: text as `text_delta`,
a tool call as `input_json_delta` pieces of its JSON input), then `message_delta` (stop
reason, usage) and `message_stop`. Chat reports usage only in its last chunk, so
`message_start` carries zeros and `message_delta` the counts, input included (the SDK
takes both from there).

A chat error event, a chunk that cannot be read, or a stream that ends without a finish
reason becomes Anthropic's `error` event, and nothing follows it. Pieces of a tool call
that come after a later call has started cannot be placed (Anthropic's blocks do not
interleave): that ends the stream with an error as well.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from spillgate.errors import ErrorCode
from spillgate.fallback.dialects.messages.response import anthropic_usage, message_id, stop_of
from spillgate.protocol import Endpoint, Usage
from spillgate.sse import EventSplitter, error_event, event_data


def encode(payload: dict[str, Any]) -> bytes:
    """One Anthropic event: its type on the `event:` line, the object on the `data:` line."""
    return b"event: " + payload["type"].encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class MessagesStream:
    """Feeds on chat SSE bytes; returns Anthropic SSE bytes. One per request."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self._payload = payload
        self._events = EventSplitter()
        self._started = False
        self._ended = False
        #: The index of the content block open now (None: none), and whether it is text.
        self._open: int | None = None
        self._open_is_text = False
        self._blocks = 0
        #: Chat tool call index -> its content block index.
        self._tool_blocks: dict[int, int] = {}
        self._finish: dict[str, Any] | None = None
        self._usage: Usage | None = None

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        for raw in self._events.feed(data):
            if self._ended:
                break
            out += self._on_event(raw)
        return b"".join(out)

    def finish(self) -> bytes:
        if self._ended:
            return b""
        self._events.rest()  # an event without its end is not one
        return b"".join(self._close())

    def _on_event(self, raw: bytes) -> list[bytes]:
        data = event_data(raw)
        if data is None or not data.strip():
            return []
        if data.strip() == b"[DONE]":
            return self._close()
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            chunk = None
        if not isinstance(chunk, dict):
            return self._fail("the answer's stream sent an event that cannot be read")
        if "error" in chunk:
            error = chunk["error"] if isinstance(chunk["error"], dict) else {}
            message, kind, code = error.get("message"), error.get("type"), error.get("code")
            return self._fail(
                message if isinstance(message, str) else "the answer's stream failed",
                kind if isinstance(kind, str) else "upstream_error",
                code if isinstance(code, str) else None,
            )
        usage = Usage.from_openai(chunk.get("usage"))
        if usage is not None:
            self._usage = usage
        out = self._start()
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            out += self._on_delta(delta if isinstance(delta, dict) else {})
            if self._ended:
                return out
            if choice.get("finish_reason"):
                self._finish = choice
        return out

    def _on_delta(self, delta: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        text = delta.get("content")
        if isinstance(text, str) and text:
            if not (self._open is not None and self._open_is_text):
                out += self._open_block({"type": "text", "text": ""}, is_text=True)
            assert self._open is not None
            out.append(self._delta({"type": "text_delta", "text": text}))
        calls = delta.get("tool_calls")
        for piece in calls if isinstance(calls, list) else []:
            out += self._tool_piece(piece)
            if self._ended:
                break
        return out

    def _tool_piece(self, piece: Any) -> list[bytes]:
        if not isinstance(piece, dict):
            return self._fail("the answer's stream sent a tool call that cannot be read")
        position = piece.get("index", 0)
        raw_function = piece.get("function")
        function: dict[str, Any] = raw_function if isinstance(raw_function, dict) else {}
        out: list[bytes] = []
        if position not in self._tool_blocks:
            name = function.get("name")
            if not isinstance(name, str) or not name:
                return self._fail("the answer's stream began a tool call without its name")
            call_id = piece.get("id")
            block = {
                "type": "tool_use",
                "id": call_id if isinstance(call_id, str) and call_id else _tool_use_id(),
                "name": name,
                "input": {},
            }
            out += self._open_block(block, is_text=False)
            self._tool_blocks[position] = self._blocks - 1
        elif self._tool_blocks[position] != self._open:
            return self._fail("the answer's stream interleaved the pieces of its tool calls")
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            out.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))
        return out

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        message = {
            "id": message_id(),
            "type": "message",
            "role": "assistant",
            "model": self._payload["model"],
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": anthropic_usage(self._usage),
        }
        return [encode({"type": "message_start", "message": message})]

    def _open_block(self, block: dict[str, Any], *, is_text: bool) -> list[bytes]:
        out = self._close_block()
        self._open, self._open_is_text = self._blocks, is_text
        self._blocks += 1
        out.append(
            encode({"type": "content_block_start", "index": self._open, "content_block": block})
        )
        return out

    def _close_block(self) -> list[bytes]:
        if self._open is None:
            return []
        closing = encode({"type": "content_block_stop", "index": self._open})
        self._open = None
        return [closing]

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return encode({"type": "content_block_delta", "index": self._open, "delta": delta})

    def _close(self) -> list[bytes]:
        """The chat stream's end: the closing events, or an error if it ended too soon."""
        if self._finish is None:
            return self._fail(
                "the answer's stream ended before it was complete",
                code=ErrorCode.PROVIDER_STREAM_CUT,
            )
        out = self._start() + self._close_block()
        stop_reason, stop_sequence = stop_of(self._payload, self._finish, bool(self._tool_blocks))
        out.append(
            encode(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                    "usage": anthropic_usage(self._usage),
                }
            )
        )
        out.append(encode({"type": "message_stop"}))
        self._ended = True
        return out

    def _fail(
        self, message: str, type: str = "upstream_error", code: str | None = None
    ) -> list[bytes]:
        self._ended = True
        return [error_event(message, type, code, endpoint=Endpoint.MESSAGES)]


def _tool_use_id() -> str:
    return f"toolu_{secrets.token_hex(12)}"
