"""A whole `chat.completion` -> an Anthropic `message` object, and what the stream shares
with it: stop reasons, usage, ids.

Stop reasons: `length` is `max_tokens`, `tool_calls` (or any answer with tool calls) is
`tool_use`, `content_filter` is `refusal`. Chat does not say which stop sequence ended the
answer; vLLM does (`stop_reason` on the choice, a string when a stop string matched), so a
stop string named there that the request listed gives `stop_sequence`, and every other
stop is `end_turn`.
"""

from __future__ import annotations

import secrets
from typing import Any

from spillgate.errors import GatewayError
from spillgate.fallback.wire import bad_answer, tool_arguments
from spillgate.protocol import Usage

_STOP_REASONS = {"length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}


def message_id() -> str:
    return f"msg_{secrets.token_hex(12)}"


def stop_of(
    payload: dict[str, Any], choice: dict[str, Any], called_tools: bool
) -> tuple[str, str | None]:
    """Anthropic's `stop_reason` and `stop_sequence` for a chat choice's end."""
    finish = choice.get("finish_reason")
    if finish in _STOP_REASONS:
        return _STOP_REASONS[finish], None
    if called_tools:
        return "tool_use", None  # a forced (named) tool call ends with "stop"
    matched = choice.get("stop_reason")
    if isinstance(matched, str) and matched in (payload.get("stop_sequences") or ()):
        return "stop_sequence", matched
    return "end_turn", None


def anthropic_usage(usage: Usage | None) -> dict[str, int]:
    """Chat usage in Anthropic's terms: chat's prompt tokens include the cached ones,
    Anthropic's `input_tokens` do not (cache reads are counted apart)."""
    usage = usage or Usage()
    return {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation_input_tokens": 0,
    }


def from_chat(payload: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    choices = answer.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or not isinstance(message, dict):
        raise bad_answer(_source(answer), "a chat completion without a message")
    content: list[dict[str, Any]] = []
    text = message.get("content")
    if not text and isinstance(message.get("refusal"), str):
        text = message["refusal"]
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls")
    tool_uses = [
        tool_use_block(call, answer, k)
        for k, call in enumerate(calls if isinstance(calls, list) else [])
    ]
    content += tool_uses
    stop_reason, stop_sequence = stop_of(payload, choice, called_tools=bool(tool_uses))
    return {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": payload["model"],
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": anthropic_usage(Usage.from_openai(answer.get("usage"))),
    }


def tool_use_block(call: Any, answer: dict[str, Any], k: int) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(function, dict) or not isinstance(name, str):
        raise bad_answer(_source(answer), f"tool call {k} without a function name")
    try:
        tool_input = tool_arguments(function.get("arguments"), f"tool_calls[{k}]")
    except GatewayError:
        raise bad_answer(
            _source(answer), f"tool call {k}'s arguments are not a JSON object"
        ) from None
    call_id = call.get("id")
    return {
        "type": "tool_use",
        "id": call_id if isinstance(call_id, str) and call_id else f"toolu_{secrets.token_hex(12)}",
        "name": name,
        "input": tool_input,
    }


def _source(answer: dict[str, Any]) -> str:
    """Who answered, for an error message: the chat answer's model."""
    model = answer.get("model")
    return model if isinstance(model, str) else "the chat target"
