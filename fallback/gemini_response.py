"""Gemini `GenerateContentResponse` → OpenAI `chat.completion`, whole or streamed."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import orjson

from spillgate.errors import ErrorCode, UpstreamError
from spillgate.fallback.gemini_ids import new_call_id
from spillgate.fallback.wire import bad_answer, stream_cut
from spillgate.protocol import Usage, reported_tokens
from spillgate.sse import DONE, EventSplitter, event, event_data

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

ErrorMapper = Callable[[int, bytes], UpstreamError]


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
    usage = usage_of(meta)
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {
            "reasoning_tokens": reported_tokens(meta.get("thoughtsTokenCount")) or 0
        },
    }


def _parts(candidate: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
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


def _blocked(data: dict[str, Any], provider: str) -> UpstreamError | None:
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


def _completion_id(data: dict[str, Any]) -> str:
    rid = data.get("responseId")
    return f"chatcmpl-{rid}" if isinstance(rid, str) and rid else "chatcmpl-" + os.urandom(12).hex()


def whole_answer(body: bytes, model: str, provider: str) -> tuple[bytes, Usage | None]:
    """A `generateContent` answer as OpenAI `chat.completion` bytes, with its usage."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise bad_answer(provider, "not JSON")
    blocked = _blocked(data, provider)
    if blocked:
        raise blocked
    choices = []
    for position, candidate in enumerate(data.get("candidates") or []):
        text, calls = _parts(candidate)
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
        "id": _completion_id(data),
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


class GeminiStream:
    """`streamGenerateContent?alt=sse` bytes → OpenAI `chat.completion.chunk` SSE bytes."""

    def __init__(
        self, model: str, include_usage: bool, provider: str, map_error: ErrorMapper
    ) -> None:
        self._model = model
        self._include_usage = include_usage
        self._provider = provider
        self._map_error = map_error
        self._events = EventSplitter()
        self._id: str | None = None
        self._created = int(time.time())
        self._started: set[int] = set()
        self._tool_calls: dict[int, int] = {}  # candidate index → tool calls sent so far
        self._finished: set[int] = set()
        self._usage_body: dict[str, Any] | None = None
        self._pending: UpstreamError | None = None
        self.usage: Usage | None = None

    def feed(self, data: bytes) -> bytes:
        self._raise_pending()
        out: list[bytes] = []
        for raw in self._events.feed(data):  # Gemini ends its events with CRLF CRLF
            try:
                out.append(self._event(raw))
            except UpstreamError as err:
                if not out:
                    raise
                # The chunks before the failure still reach the client; the error follows.
                self._pending = err
                self._events.rest()
                break
        return b"".join(out)

    def finish(self) -> bytes:
        self._raise_pending()
        rest = self._events.rest()  # a last event without its blank line
        out = self._event(rest) if rest.strip() else b""
        if not self._finished:
            raise stream_cut(self._provider, "the final chunk")
        if self._include_usage:
            usage = self._usage_body or openai_usage({})
            out += event({**self._envelope([]), "usage": usage})
        return out + DONE

    def _raise_pending(self) -> None:
        if self._pending is not None:
            err, self._pending = self._pending, None
            raise err

    def _event(self, raw: bytes) -> bytes:
        payload = event_data(raw)
        if payload is None:  # an error may come as bare JSON lines instead of a `data:` event
            payload = b"\n".join(
                line
                for line in raw.split(b"\n")
                if line and not line.startswith((b":", b"event:", b"id:"))
            )
        if not payload.strip():
            return b""
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            chunk = None
        if not isinstance(chunk, dict):
            raise UpstreamError(
                502,
                f"provider {self._provider} sent a malformed stream event",
                code=ErrorCode.PROVIDER_BAD_STREAM,
            )
        error = chunk.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            raise self._map_error(code if isinstance(code, int) else 500, payload)
        return self._chunk(chunk)

    def _chunk(self, data: dict[str, Any]) -> bytes:
        blocked = _blocked(data, self._provider)
        if blocked:
            raise blocked
        if self._id is None:
            self._id = _completion_id(data)
        if isinstance(data.get("usageMetadata"), dict):
            self._usage_body = openai_usage(data["usageMetadata"])
            self.usage = usage_of(data["usageMetadata"])
        out = b""
        for position, candidate in enumerate(data.get("candidates") or []):
            index = candidate.get("index", position)
            text, calls = _parts(candidate)
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
