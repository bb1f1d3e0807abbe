"""A whole Mistral answer -> OpenAI's, and the fixes its stream chunks share."""

from __future__ import annotations

from typing import Any

import orjson

from spillgate.errors import ErrorCode, UpstreamError
from spillgate.fallback.adapter import Translated
from spillgate.fallback.openai.response import parse_answer
from spillgate.protocol import Endpoint, Usage

_FINISH = {"model_length": "length"}


def whole_answer(provider: str, endpoint: Endpoint, body: bytes) -> Translated:
    """A whole Mistral answer in OpenAI's shape: finish reasons, text content, tool calls."""
    answer = parse_answer(provider, endpoint, body)
    for choice in answer["choices"]:
        check_finish(provider, choice)
        message = choice.get("message")
        if isinstance(message, dict):
            message["content"] = text_of(message.get("content"))
            tool_calls_to_openai(message, None)
    usage = Usage.from_openai(answer.get("usage"))
    return Translated(orjson.dumps(answer), usage)


def text_of(content: Any) -> Any:
    """Mistral may answer with a list of chunks; OpenAI clients expect a string."""
    if not isinstance(content, list):
        return content
    return "".join(
        c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text"
    )


def check_finish(provider: str, choice: dict[str, Any]) -> None:
    reason = choice.get("finish_reason")
    if reason == "error":
        raise UpstreamError(
            502,
            f"provider {provider!r} reported a generation error",
            code=ErrorCode.PROVIDER_SERVER_ERROR,
        )
    if reason in _FINISH:
        choice["finish_reason"] = _FINISH[reason]


def tool_calls_to_openai(message: dict[str, Any], seen: dict[int, int] | None) -> None:
    """Fill `type` (and, in a stream, `index`) on each tool call; `seen` counts per choice."""
    calls = message.get("tool_calls")
    if not isinstance(calls, list):
        return
    for call in calls:
        if not isinstance(call, dict):
            continue
        call.setdefault("type", "function")
        if seen is not None and "index" not in call:
            position = seen.get(0, 0)
            call["index"] = position
            seen[0] = position + 1
