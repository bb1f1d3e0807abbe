"""Anthropic's Messages stream -> OpenAI `chat.completion.chunk` server-sent events.

Anthropic streams `message_start`, then per content block `content_block_start`,
`content_block_delta`... and `content_block_stop`, then `message_delta` (stop reason and
output tokens) and `message_stop`; `ping` may come anywhere and an `error` event may end
the stream. Each read is fed as it comes; partial events wait for their terminator.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from spillgate.errors import UpstreamError
from spillgate.fallback.adapter import ProviderSettings
from spillgate.fallback.anthropic.errors import error_of
from spillgate.fallback.anthropic.request import JSON_TOOL
from spillgate.fallback.anthropic.response import Envelope, finish_reason, openai_usage, usage_of
from spillgate.fallback.wire import event_object, malformed_event, stream_cut
from spillgate.protocol import Usage
from spillgate.sse import DONE, EventSplitter, event, event_data


class _EventReader:
    """The JSON payloads of complete events, each checked for the `type` all of them have."""

    _MAX_PENDING = 8 << 20  # one event never legitimately comes near this

    def __init__(self, provider: str) -> None:
        self._events = EventSplitter()
        self._provider = provider

    def feed(self, data: bytes) -> Iterator[dict[str, Any]]:
        complete = self._events.feed(data)
        if len(self._events.pending) > self._MAX_PENDING:
            raise malformed_event(self._provider)
        for raw in complete:
            payload = event_data(raw)
            if payload is None or not payload.strip():
                continue  # a comment or an `event:` line alone carries nothing
            parsed = event_object(self._provider, payload)
            if not isinstance(parsed.get("type"), str):
                raise malformed_event(self._provider)
            yield parsed


class AnthropicStreamTranslator:
    """Feeds on Anthropic stream bytes; returns OpenAI SSE bytes. One per request."""

    def __init__(
        self, envelope: Envelope, *, include_usage: bool, settings: ProviderSettings
    ) -> None:
        self._envelope = envelope
        self._include_usage = include_usage
        self._settings = settings
        self._provider = settings.name
        self._reader = _EventReader(settings.name)
        self._anthropic_usage: dict[str, Any] = {}
        #: Anthropic content block index -> OpenAI tool call index, for the client's tools.
        self._tool_calls: dict[int, int] = {}
        self._json_blocks: set[int] = set()
        self._stopped = False
        #: A failure found after some good events of the same read: raised on the next call,
        #: so the client still gets what came before it.
        self._failure: UpstreamError | None = None

    @property
    def usage(self) -> Usage | None:
        return usage_of(self._anthropic_usage) if self._anthropic_usage else None

    def feed(self, data: bytes) -> bytes:
        self._raise_pending_failure()
        out: list[bytes] = []
        try:
            for payload in self._reader.feed(data):
                out.extend(self._on_event(payload))
        except UpstreamError as failure:
            if not out:
                raise
            self._failure = failure
        return b"".join(out)

    def finish(self) -> bytes:
        self._raise_pending_failure()
        if not self._stopped:
            raise stream_cut(self._provider, "message_stop")
        closing = b""
        if self._include_usage:
            closing = self._chunk([], usage=openai_usage(usage_of(self._anthropic_usage)))
        return closing + DONE

    def _raise_pending_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def _on_event(self, payload: dict[str, Any]) -> list[bytes]:
        kind = payload["type"]
        if self._stopped:
            return []
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
            self._stopped = True
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
