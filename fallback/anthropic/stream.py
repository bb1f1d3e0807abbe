"""Anthropic's Messages stream -> OpenAI `chat.completion.chunk` server-sent events.

Anthropic streams `message_start`, then per content block `content_block_start`,
`content_block_delta`... and `content_block_stop`, then `message_delta` (stop reason and
output tokens) and `message_stop`; `ping` may come anywhere and an `error` event may end
the stream. Each read is fed as it comes; partial events wait for their terminator.
"""

from __future__ import annotations

from typing import Any

from spillgate.fallback.adapter import ProviderSettings
from spillgate.fallback.anthropic.errors import error_of
from spillgate.fallback.anthropic.request import JSON_TOOL
from spillgate.fallback.anthropic.response import Envelope, finish_reason, usage_of
from spillgate.fallback.wire import (
    EventStream,
    event_object,
    malformed_event,
    openai_usage,
    stream_cut,
)
from spillgate.protocol import Usage
from spillgate.sse import DONE, event, event_data


class AnthropicStreamTranslator(EventStream):
    """Feeds on Anthropic stream bytes; returns OpenAI SSE bytes. One per request."""

    def __init__(
        self, envelope: Envelope, *, include_usage: bool, settings: ProviderSettings
    ) -> None:
        super().__init__(settings.name)
        self._envelope = envelope
        self._include_usage = include_usage
        self._settings = settings
        self._anthropic_usage: dict[str, Any] = {}
        #: Anthropic content block index -> OpenAI tool call index, for the client's tools.
        self._tool_calls: dict[int, int] = {}
        self._json_blocks: set[int] = set()

    @property
    def usage(self) -> Usage | None:
        return usage_of(self._anthropic_usage) if self._anthropic_usage else None

    def event(self, raw: bytes) -> bytes:
        payload = event_data(raw)
        if payload is None or not payload.strip():
            return b""  # a comment or an `event:` line alone carries nothing
        parsed = event_object(self.provider, payload)
        if not isinstance(parsed.get("type"), str):
            raise malformed_event(self.provider)  # every Anthropic event names its type
        return b"".join(self._on_event(parsed))

    def close(self) -> bytes:
        if not self.done:
            raise stream_cut(self.provider, "message_stop")
        closing = b""
        if self._include_usage:
            closing = self._chunk([], usage=openai_usage(usage_of(self._anthropic_usage)))
        return closing + DONE

    def _on_event(self, payload: dict[str, Any]) -> list[bytes]:
        kind = payload["type"]
        if kind == "message_start":
            message = payload.get("message")
            if isinstance(message, dict):
                self._anthropic_usage.update(_fields(message.get("usage")))
            return [self._delta({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._on_block_start(payload.get("index"), payload.get("content_block") or {})
        if kind == "content_block_delta":
            return self._on_block_delta(payload.get("index"), payload.get("delta") or {})
        if kind == "message_delta":
            self._anthropic_usage.update(
                {k: v for k, v in _fields(payload.get("usage")).items() if v is not None}
            )
            stop_reason = (payload.get("delta") or {}).get("stop_reason")
            reason = finish_reason(stop_reason, bool(self._tool_calls))
            return [
                self._chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": reason}])
            ]
        if kind == "message_stop":
            self.done = True
            return []
        if kind == "error":
            raise error_of(None, payload.get("error"), self._settings)
        # `ping`, `content_block_stop` and event types added later carry nothing to relay.
        return []

    def _on_block_start(self, index: Any, block: dict[str, Any]) -> list[bytes]:
        if block.get("type") == "text" and block.get("text"):
            return [self._delta({"content": block["text"]})]
        if block.get("type") != "tool_use":
            return []
        if block.get("name") == JSON_TOOL:
            self._json_blocks.add(index)
            return []
        position = self._tool_calls[index] = len(self._tool_calls)
        call = {
            "index": position,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": block.get("name"), "arguments": ""},
        }
        return [self._delta({"tool_calls": [call]})]

    def _on_block_delta(self, index: Any, delta: dict[str, Any]) -> list[bytes]:
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [self._delta({"content": delta["text"]})]
        if kind != "input_json_delta" or not delta.get("partial_json"):
            return []  # thinking, signature and citation deltas have no OpenAI counterpart
        if index in self._json_blocks:
            return [self._delta({"content": delta["partial_json"]})]
        if index in self._tool_calls:
            call = {
                "index": self._tool_calls[index],
                "function": {"arguments": delta["partial_json"]},
            }
            return [self._delta({"tool_calls": [call]})]
        return []

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return self._chunk([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}])

    def _chunk(self, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self._envelope.id,
            "object": "chat.completion.chunk",
            "created": self._envelope.created,
            "model": self._envelope.model,
            "choices": choices,
        }
        if self._include_usage:
            chunk["usage"] = usage  # OpenAI sends `usage: null` on every chunk but the last
        return event(chunk)


def _fields(usage: Any) -> dict[str, Any]:
    """A usage object as sent; anything else reports nothing (accounting estimates then)."""
    return usage if isinstance(usage, dict) else {}
