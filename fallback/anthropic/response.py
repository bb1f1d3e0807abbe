"""Anthropic answers -> OpenAI answers: whole messages, usage and finish reasons."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from spillgate.fallback.anthropic.request import JSON_TOOL
from spillgate.fallback.wire import bad_answer, openai_usage
from spillgate.protocol import Usage

_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


@dataclass(frozen=True)
class Envelope:
    """What every OpenAI answer to one request repeats: its id, time and model name."""

    id: str
    created: int
    model: str


def finish_reason(stop_reason: Any, called_client_tool: bool) -> str:
    reason = _FINISH_REASONS.get(stop_reason, "stop")
    if reason == "tool_calls" and not called_client_tool:
        return "stop"  # only the JSON-mode tool was called: that call is the answer
    return reason


def usage_of(anthropic_usage: Any) -> Usage:
    """Anthropic's usage in OpenAI's terms (all zero where there is none)."""
    return Usage.from_anthropic(anthropic_usage) or Usage.reported((None,), (None,))


def translate_message(
    message: dict[str, Any], envelope: Envelope, provider: str
) -> tuple[dict[str, Any], Usage]:
    """One Anthropic `message` object as an OpenAI `chat.completion`."""
    blocks = message.get("content")
    if message.get("type") != "message" or not isinstance(blocks, list):
        raise bad_answer(provider, "not a message")
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use" and block.get("name") == JSON_TOOL:
            texts.append(orjson.dumps(block.get("input") or {}).decode())
        elif kind == "tool_use":
            tool_calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
        # Thinking and server-tool blocks have no OpenAI counterpart in a chat completion.
    answer: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts else None,
        "refusal": None,
    }
    if tool_calls:
        answer["tool_calls"] = tool_calls
    usage = usage_of(message.get("usage"))
    completion = {
        "id": envelope.id,
        "object": "chat.completion",
        "created": envelope.created,
        "model": envelope.model,
        "choices": [
            {
                "index": 0,
                "message": answer,
                "logprobs": None,
                "finish_reason": finish_reason(message.get("stop_reason"), bool(tool_calls)),
            }
        ],
        "usage": openai_usage(usage),
    }
    return completion, usage
