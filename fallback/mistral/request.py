"""OpenAI chat request -> Mistral's: its names for OpenAI's fields, and a 400 (or a drop)
for each field Mistral would reject."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from typing import Any

from spillgate.errors import bad_request
from spillgate.fallback.wire import unsupported_parameter

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


class RequestBuilder:
    """One provider's translation settings; `body()` does one request."""

    def __init__(self, provider: str, drop_params: Collection[str]) -> None:
        self.provider = provider
        self.drop_params = drop_params

    def body(self, payload: dict[str, Any]) -> dict[str, Any]:
        drop = self.drop_params
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
                raise unsupported_parameter(self.provider, KIND, key)
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
                self.provider, KIND, f"messages[{i}].role", what=f"role {role!r}"
            )
        out: dict[str, Any] = {"role": role}
        for key, value in message.items():
            if key == "role" or value is None:
                continue
            if key not in allowed:
                if key in self.drop_params:
                    continue
                raise unsupported_parameter(self.provider, KIND, key, what=f"`messages[{i}].{key}`")
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
                self.provider,
                KIND,
                f"messages[{i}].content[{j}]",
                what=f"a content part of type {kind!r}",
            )
        return part


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
