"""Gemini `GenerateContentResponse` → OpenAI `chat.completion`; the pieces the stream reuses."""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from spillgate.errors import ErrorCode, UpstreamError
from spillgate.fallback import wire
from spillgate.fallback.gemini.ids import new_call_id
from spillgate.fallback.wire import answer_object, bad_answer
from spillgate.protocol import Usage, reported_tokens

# Gemini finish reasons that mean "blocked"; MAX_TOKENS is a length stop, the rest a plain stop.
_FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "LANGUAGE",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
    }
)


def finish_reason(reason: str | None, called_tools: bool) -> str | None:
    if reason is None:
        return None
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _FILTERED:
        return "content_filter"
    return "tool_calls" if called_tools else "stop"


def usage_of(meta: dict[str, Any]) -> Usage:
    """`usageMetadata` → Usage; thinking tokens are billed as output, so they count."""
    return Usage.reported(
        (meta.get("promptTokenCount"), meta.get("toolUsePromptTokenCount")),
        (meta.get("candidatesTokenCount"), meta.get("thoughtsTokenCount")),
        (meta.get("cachedContentTokenCount"),),
    )


def openai_usage(meta: dict[str, Any]) -> dict[str, Any]:
    """`usageMetadata` → OpenAI `usage`."""
    return {
        **wire.openai_usage(usage_of(meta)),
        "completion_tokens_details": {
            "reasoning_tokens": reported_tokens(meta.get("thoughtsTokenCount")) or 0
        },
    }


def candidate_parts(candidate: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """A candidate's answer text (thought summaries left out) and its function calls."""
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in (candidate.get("content") or {}).get("parts") or []:
        if not isinstance(part, dict) or part.get("thought") is True:
            continue
        if isinstance(part.get("text"), str):
            text.append(part["text"])
        call = part.get("functionCall")
        if isinstance(call, dict):
            calls.append(
                {
                    "id": new_call_id(part.get("thoughtSignature")),
                    "type": "function",
                    "function": {
                        "name": call.get("name", ""),
                        "arguments": orjson.dumps(call.get("args") or {}).decode(),
                    },
                }
            )
    return "".join(text), calls


def blocked_prompt(data: dict[str, Any], provider: str) -> UpstreamError | None:
    reason = (data.get("promptFeedback") or {}).get("blockReason")
    if data.get("candidates") or not reason:
        return None
    return UpstreamError(
        400,
        f"provider {provider} refused the prompt (blockReason {reason}); rephrase it",
        type="invalid_request_error",
        code=ErrorCode.CONTENT_FILTER,
        retryable=False,
    )


def completion_id(data: dict[str, Any]) -> str:
    rid = data.get("responseId")
    return f"chatcmpl-{rid}" if isinstance(rid, str) and rid else "chatcmpl-" + os.urandom(12).hex()


def whole_answer(body: bytes, model: str, provider: str) -> tuple[bytes, Usage | None]:
    """A `generateContent` answer as OpenAI `chat.completion` bytes, with its usage."""
    data = answer_object(provider, body)
    blocked = blocked_prompt(data, provider)
    if blocked:
        raise blocked
    choices = []
    for position, candidate in enumerate(data.get("candidates") or []):
        text, calls = candidate_parts(candidate)
        reason = finish_reason(candidate.get("finishReason") or "STOP", bool(calls))
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text or (None if calls or reason == "content_filter" else ""),
            "refusal": None,
        }
        if calls:
            message["tool_calls"] = calls
        choices.append(
            {
                "index": candidate.get("index", position),
                "message": message,
                "finish_reason": reason,
                "logprobs": None,
            }
        )
    if not choices:
        raise bad_answer(provider, "no candidate")
    answer: dict[str, Any] = {
        "id": completion_id(data),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
    }
    usage = None
    if isinstance(data.get("usageMetadata"), dict):
        answer["usage"] = openai_usage(data["usageMetadata"])
        usage = usage_of(data["usageMetadata"])
    return orjson.dumps(answer), usage
