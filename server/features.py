"""What the decision needs to know about a request, read cheaply from its parsed body."""

from __future__ import annotations

from typing import Any

from spillgate.protocol import Endpoint

#: For byte-level BPE tokenizers a token covers at least one byte, so the UTF-8 size of the
#: text bounds the token count from above; ~4 bytes a token is the usual English average.
BYTES_PER_TOKEN_ESTIMATE = 4.0
#: Tokens a chat template adds around each message (role markers, separators).
TEMPLATE_TOKENS_PER_MESSAGE = 8
DEFAULT_MAX_TOKENS = 256
#: How much of a prompt's start the prefix-affinity key covers (scheduler.prefix_key).
PREFIX_BYTES = 1024


def text_bytes(payload: dict[str, Any], endpoint: Endpoint) -> tuple[int, int, bool, bool]:
    """(UTF-8 bytes of the prompt text, message count, has images, has audio/files)."""
    if endpoint is Endpoint.CHAT:
        size, images, files = 0, False, False
        messages = payload.get("messages") or []
        for message in messages:
            if not isinstance(message, dict):
                continue
            content = message.get("content")
            if isinstance(content, str):
                size += len(content.encode())
            elif isinstance(content, list):
                for part in content:
                    if not isinstance(part, dict):
                        continue
                    kind = part.get("type")
                    if kind == "text" and isinstance(part.get("text"), str):
                        size += len(part["text"].encode())
                    elif kind == "image_url":
                        images = True
                    elif kind in ("input_audio", "file"):
                        files = True
            for call in message.get("tool_calls") or []:
                if isinstance(call, dict):
                    size += len(str(call.get("function", {}).get("arguments", "")).encode())
        tools = payload.get("tools")
        if tools:
            size += len(str(tools).encode())
        return size, len(messages), images, files
    key = "prompt" if endpoint is Endpoint.COMPLETIONS else "input"
    value = payload.get(key)
    if isinstance(value, str):
        return len(value.encode()), 1, False, False
    if isinstance(value, list):
        return sum(len(str(v).encode()) for v in value), 1, False, False
    return 0, 1, False, False


def prompt_prefix(payload: dict[str, Any], endpoint: Endpoint, limit: int = PREFIX_BYTES) -> bytes:
    """The first `limit` bytes of the prompt text, in order: for chat, each message's role
    and text content; else the prompt (or the input to embed). Reads no further than that."""
    if endpoint is not Endpoint.CHAT:
        value = payload.get("prompt" if endpoint is Endpoint.COMPLETIONS else "input")
        if isinstance(value, list):
            value = value[0] if value else ""
        return str(value)[:limit].encode()[:limit]  # a character is at least a byte
    parts: list[bytes] = []
    size = 0
    for message in payload.get("messages") or []:
        if size >= limit:
            break
        if not isinstance(message, dict):
            continue
        for text in _message_texts(message):
            part = text[: max(limit - size, 0)].encode()
            parts.append(part)
            size += len(part)
    return b"".join(parts)[:limit]


def _message_texts(message: dict[str, Any]) -> list[str]:
    """A message's role, then its text content."""
    texts = [str(message.get("role", ""))]
    content = message.get("content")
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
    return texts


def requested_max_tokens(payload: dict[str, Any]) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = payload.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return DEFAULT_MAX_TOKENS


def needs_json_schema(payload: dict[str, Any]) -> bool:
    fmt = payload.get("response_format")
    return isinstance(fmt, dict) and fmt.get("type") == "json_schema"


def prompt_token_bounds(size: int, messages: int) -> tuple[int, int]:
    """(an estimate for predictions, an upper bound for the context check)."""
    overhead = TEMPLATE_TOKENS_PER_MESSAGE * messages
    return int(size / BYTES_PER_TOKEN_ESTIMATE) + overhead, size + overhead
