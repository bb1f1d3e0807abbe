"""Mistral's stream -> OpenAI chunks: finish reasons, text content, tool-call indexes, and
the usage on Mistral's last chunk moved into OpenAI's usage chunk."""

from __future__ import annotations

from typing import Any

from spillgate.fallback.adapter import ProviderSettings
from spillgate.fallback.mistral.response import check_finish, text_of, tool_calls_to_openai
from spillgate.fallback.openai.stream import OpenAIStream, parse_chunk
from spillgate.protocol import Usage
from spillgate.sse import DONE, event, event_data


class MistralStream(OpenAIStream):
    """OpenAI's stream checks, with Mistral's chunks made OpenAI's."""

    def __init__(self, settings: ProviderSettings, wants_usage: bool) -> None:
        super().__init__(settings, wants_usage)
        self._last: dict[str, Any] = {}
        self._tool_calls_seen: dict[int, dict[int, int]] = {}

    def event(self, raw: bytes) -> bytes:
        data = event_data(raw)
        if data is None:
            return b""
        if data == b"[DONE]":
            self.done = True
            return self._usage_chunk() + DONE
        chunk = parse_chunk(self.settings, data)
        usage = chunk.pop("usage", None)
        if isinstance(usage, dict):
            self.usage = Usage.from_openai(usage)
        self._last = chunk
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices:
            return b""
        for choice in choices:
            check_finish(self.provider, choice)
            delta = choice.get("delta")
            if isinstance(delta, dict):
                if "content" in delta:
                    delta["content"] = text_of(delta["content"])
                seen = self._tool_calls_seen.setdefault(int(choice.get("index", 0)), {})
                tool_calls_to_openai(delta, seen)
        if self.wants_usage:
            chunk["usage"] = None  # as OpenAI marks every chunk but the last with include_usage
        return event(chunk)

    def _usage_chunk(self) -> bytes:
        if not self.wants_usage or self.usage is None:
            return b""
        u = self.usage
        return event(
            {
                "id": self._last.get("id"),
                "object": "chat.completion.chunk",
                "created": self._last.get("created"),
                "model": self._last.get("model"),
                "choices": [],
                "usage": {
                    "prompt_tokens": u.prompt_tokens,
                    "completion_tokens": u.completion_tokens,
                    "total_tokens": u.prompt_tokens + u.completion_tokens,
                },
            }
        )
