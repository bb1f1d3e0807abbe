"""Mistral's chat completions: OpenAI's shape with its own names and limits.

Out: `seed` is `random_seed`, `max_completion_tokens` is `max_tokens`, tool_choice
`required` is `any`, a `developer` message is a `system` one, and tool-call ids must be
nine letters or digits (ids minted elsewhere are mapped, the same id always to the same
value). Mistral rejects fields it does not know, so every other OpenAI parameter is
checked here and refused with a 400 unless the provider's `drop_params` lists it.
Back: `model_length` is `length`, content given as chunks is joined into text, streamed
tool calls get the `index` OpenAI clients need, and the usage Mistral puts on its last
chunk becomes OpenAI's separate usage chunk when the client asked for it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from spillgate.errors import ErrorCode, GatewayError, UpstreamError, bad_request
from spillgate.fallback.adapter import ProviderCall, Translated
from spillgate.fallback.openai import (
    OpenAIAdapter,
    feed_events,
    finish_events,
    parse_answer,
    parse_chunk,
)
from spillgate.fallback.wire import unsupported_parameter
from spillgate.protocol import Endpoint, UpstreamRequest, Usage
from spillgate.sse import DONE, EventSplitter, client_wants_usage, event, event_data

KIND = "Mistral"

# OpenAI request fields Mistral has under the same name and meaning (and Mistral's own).
_SAME = frozenset(
    {
        "model",
        "temperature",
        "top_p",
        "max_tokens",
        "stream",
        "stop",
        "response_format",
        "tools",
        "presence_penalty",
        "frequency_penalty",
        "n",
        "parallel_tool_calls",
        "prediction",
        "random_seed",
        "safe_prompt",
        "prompt_mode",
    }
)
_PARTS = frozenset({"text", "image_url"})
_MESSAGE_KEYS = {
    "system": {"role", "content"},
    "user": {"role", "content"},
    "assistant": {"role", "content", "tool_calls", "prefix"},
    "tool": {"role", "content", "tool_call_id", "name"},
}
_TOOL_CALL_ID = re.compile(r"^[A-Za-z0-9]{9}$")
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_FINISH = {"model_length": "length"}


class MistralAdapter(OpenAIAdapter):
    def build(self, request: UpstreamRequest) -> ProviderCall:
        if request.endpoint is not Endpoint.CHAT:
            raise GatewayError(
                400,
                f"provider {self.settings.name!r} (kind mistral) serves chat completions only",
                code=ErrorCode.UNSUPPORTED_PARAMETER,
            )
        payload = self.to_mistral({**request.payload, "model": request.target_model})
        return ProviderCall(self.url(request), self.headers(), orjson.dumps(payload))

    def to_mistral(self, payload: dict[str, Any]) -> dict[str, Any]:
        drop = self.settings.drop_params
        out: dict[str, Any] = {}
        if (
            payload.get("max_tokens") is not None
            and payload.get("max_completion_tokens") is not None
        ):
            raise bad_request(
                "set one of `max_tokens` and `max_completion_tokens`, not both",
                param="max_completion_tokens",
            )
        for key, value in payload.items():
            if key in drop or (value is None and key in ("max_tokens", "max_completion_tokens")):
                continue
            if key in _SAME:
                out[key] = value
            elif key == "seed":
                out["random_seed"] = value
            elif key == "max_completion_tokens":
                out["max_tokens"] = value
            elif key == "stream_options":
                continue  # Mistral always reports usage on the last chunk of a stream
            elif key == "tool_choice":
                out[key] = "any" if value == "required" else value
            elif key == "messages":
                if not isinstance(value, list):
                    raise bad_request("`messages` must be an array", param="messages")
                out[key] = [self._message(i, m) for i, m in enumerate(value)]
            elif value is not None:
                raise unsupported_parameter(self.settings.name, KIND, key)
        return out

    def _message(self, i: int, message: Any) -> dict[str, Any]:
        if not isinstance(message, dict):
            raise bad_request(f"`messages[{i}]` must be an object", param=f"messages[{i}]")
        role = message.get("role")
        if role == "developer":
            role = "system"
        allowed = _MESSAGE_KEYS.get(role) if isinstance(role, str) else None
        if allowed is None:
            raise unsupported_parameter(
                self.settings.name, KIND, f"messages[{i}].role", what=f"role {role!r}"
            )
        out: dict[str, Any] = {"role": role}
        for key, value in message.items():
            if key == "role" or value is None:
                continue
            if key not in allowed:
                if key in self.settings.drop_params:
                    continue
                raise unsupported_parameter(
                    self.settings.name, KIND, key, what=f"`messages[{i}].{key}`"
                )
            if key == "content" and isinstance(value, list):
                value = [self._part(i, j, p) for j, p in enumerate(value)]
            elif key == "tool_calls":
                value = self._tool_calls(i, value)
            elif key == "tool_call_id":
                if not isinstance(value, str):
                    param = f"messages[{i}].tool_call_id"
                    raise bad_request(f"`{param}` must be a string", param=param)
                value = mistral_tool_call_id(value)
            out[key] = value
        return out

    def _tool_calls(self, i: int, calls: Any) -> list[dict[str, Any]]:
        where = f"messages[{i}].tool_calls"
        if not isinstance(calls, list):
            raise bad_request(f"`{where}` must be an array", param=where)
        out = []
        for j, call in enumerate(calls):
            call_id = call.get("id", "") if isinstance(call, dict) else None
            if not isinstance(call_id, str):
                raise bad_request(
                    f"`{where}[{j}]` must be an object with a string `id`", param=f"{where}[{j}]"
                )
            out.append({**call, "id": mistral_tool_call_id(call_id)})
        return out

    def _part(self, i: int, j: int, part: Any) -> Any:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in _PARTS:
            raise unsupported_parameter(
                self.settings.name,
                KIND,
                f"messages[{i}].content[{j}]",
                what=f"a content part of type {kind!r}",
            )
        return part

    def translate(self, request: UpstreamRequest, body: bytes) -> Translated:
        answer = parse_answer(self.settings.name, request.endpoint, body)
        for choice in answer["choices"]:
            _check_finish(self.settings.name, choice)
            message = choice.get("message")
            if isinstance(message, dict):
                message["content"] = _text(message.get("content"))
                _tool_calls_to_openai(message, None)
        usage = Usage.from_openai(answer.get("usage"))
        return Translated(orjson.dumps(answer), usage)

    def stream(self, request: UpstreamRequest) -> MistralStream:
        return MistralStream(self.settings.name, client_wants_usage(request.payload))


def mistral_tool_call_id(value: str) -> str:
    """Mistral's form of a tool-call id: kept when already nine letters or digits."""
    if _TOOL_CALL_ID.match(value):
        return value
    number = int.from_bytes(hashlib.sha256(value.encode()).digest()[:8], "big")
    chars = []
    for _ in range(9):
        number, rest = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[rest])
    return "".join(chars)


def _text(content: Any) -> Any:
    """Mistral may answer with a list of chunks; OpenAI clients expect a string."""
    if not isinstance(content, list):
        return content
    return "".join(
        c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text"
    )


def _check_finish(provider: str, choice: dict[str, Any]) -> None:
    reason = choice.get("finish_reason")
    if reason == "error":
        raise UpstreamError(
            502,
            f"provider {provider!r} reported a generation error",
            code=ErrorCode.PROVIDER_SERVER_ERROR,
        )
    if reason in _FINISH:
        choice["finish_reason"] = _FINISH[reason]


def _tool_calls_to_openai(message: dict[str, Any], seen: dict[int, int] | None) -> None:
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


class MistralStream:
    def __init__(self, provider: str, wants_usage: bool) -> None:
        self.provider = provider
        self.wants_usage = wants_usage
        self.usage: Usage | None = None
        self._events = EventSplitter()
        self.done = False
        self.failure: UpstreamError | None = None
        self._last: dict[str, Any] = {}
        self._tool_calls_seen: dict[int, dict[int, int]] = {}

    def feed(self, data: bytes) -> bytes:
        return feed_events(self, self._events.feed(data))

    def finish(self) -> bytes:
        return finish_events(self)

    def event(self, raw: bytes) -> bytes:
        data = event_data(raw)
        if data is None:
            return b""
        if data == b"[DONE]":
            self.done = True
            return self._usage_chunk() + DONE
        chunk = parse_chunk(self.provider, data)
        usage = chunk.pop("usage", None)
        if isinstance(usage, dict):
            self.usage = Usage.from_openai(usage)
        self._last = chunk
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices:
            return b""
        for choice in choices:
            _check_finish(self.provider, choice)
            delta = choice.get("delta")
            if isinstance(delta, dict):
                if "content" in delta:
                    delta["content"] = _text(delta["content"])
                seen = self._tool_calls_seen.setdefault(int(choice.get("index", 0)), {})
                _tool_calls_to_openai(delta, seen)
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
