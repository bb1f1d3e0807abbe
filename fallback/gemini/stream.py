"""Gemini's `streamGenerateContent?alt=sse` → OpenAI `chat.completion.chunk` events."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from spillgate.errors import UpstreamError
from spillgate.fallback.gemini.response import (
    blocked_prompt,
    candidate_parts,
    completion_id,
    finish_reason,
    openai_usage,
    usage_of,
)
from spillgate.fallback.wire import EventStream, event_object, stream_cut
from spillgate.protocol import Usage
from spillgate.sse import DONE, event, event_data

ErrorMapper = Callable[[int, bytes], UpstreamError]


class GeminiStream(EventStream):
    """`streamGenerateContent?alt=sse` bytes → OpenAI `chat.completion.chunk` SSE bytes
    (Gemini ends its events with CRLF CRLF, which the splitter reads)."""

    def __init__(
        self, model: str, include_usage: bool, provider: str, map_error: ErrorMapper
    ) -> None:
        super().__init__(provider)
        self._model = model
        self._include_usage = include_usage
        self._map_error = map_error
        self._id: str | None = None
        self._created = int(time.time())
        self._started: set[int] = set()
        self._tool_calls: dict[int, int] = {}  # candidate index → tool calls sent so far
        self._finished: set[int] = set()
        self._usage_body: dict[str, Any] | None = None
        self.usage: Usage | None = None

    def close(self) -> bytes:
        rest = self.splitter.rest()  # a last event without its blank line
        out = self.event(rest) if rest.strip() else b""
        if not self._finished:
            raise stream_cut(self.provider, "the final chunk")
        if self._include_usage:
            usage = self._usage_body or openai_usage({})
            out += event({**self._envelope([]), "usage": usage})
        return out + DONE

    def event(self, raw: bytes) -> bytes:
        payload = event_data(raw)
        if payload is None:  # an error may come as bare JSON lines instead of a `data:` event
            payload = b"\n".join(
                line
                for line in raw.split(b"\n")
                if line and not line.startswith((b":", b"event:", b"id:"))
            )
        if not payload.strip():
            return b""
        chunk = event_object(self.provider, payload)
        error = chunk.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            raise self._map_error(code if isinstance(code, int) else 500, payload)
        return self._chunk(chunk)

    def _chunk(self, data: dict[str, Any]) -> bytes:
        blocked = blocked_prompt(data, self.provider)
        if blocked:
            raise blocked
        if self._id is None:
            self._id = completion_id(data)
        if isinstance(data.get("usageMetadata"), dict):
            self._usage_body = openai_usage(data["usageMetadata"])
            self.usage = usage_of(data["usageMetadata"])
        out = b""
        for position, candidate in enumerate(data.get("candidates") or []):
            index = candidate.get("index", position)
            text, calls = candidate_parts(candidate)
            delta: dict[str, Any] = {}
            if index not in self._started:
                self._started.add(index)
                delta["role"] = "assistant"
                delta["content"] = ""
            if text:
                delta["content"] = text
            if calls:
                first = self._tool_calls.get(index, 0)
                self._tool_calls[index] = first + len(calls)
                delta["tool_calls"] = [{"index": first + k, **c} for k, c in enumerate(calls)]
            if delta:
                out += event(self._envelope([_choice(index, delta, None)]))
            reason = finish_reason(candidate.get("finishReason"), index in self._tool_calls)
            if reason is not None and index not in self._finished:
                self._finished.add(index)
                out += event(self._envelope([_choice(index, {}, reason)]))
        return out

    def _envelope(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self._id or "chatcmpl-" + os.urandom(12).hex(),
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": choices,
        }
        if self._include_usage:
            chunk["usage"] = None
        return chunk


def _choice(index: int, delta: dict[str, Any], reason: str | None) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}
