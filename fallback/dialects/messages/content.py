"""Anthropic `system` and `messages` -> chat messages, block by block, with every 400 naming
the block (`messages[1].content[0].source.media_type`).

How the blocks land in chat, where chat has no one-to-one form:

* `tool_result` blocks of a user turn become chat `tool` messages, before that turn's other
  content (chat wants the results right after the assistant's calls). Images inside a
  result go into the user message that follows (a chat tool message holds text only), and
  `is_error: true` prefixes the result's text with "Error: " (chat has no such flag).
* A `document` block with plain text becomes a text part; a base64 PDF becomes a chat
  `file` part (a target that cannot read files refuses it); other document sources (URL,
  file id, content blocks) are refused.
* `thinking` and `redacted_thinking` blocks of assistant turns are dropped: chat has no
  place for them, and a model continues correctly without its earlier reasoning.
* Consecutive turns of one role stay separate messages: chat accepts them, and Anthropic
  merges them itself.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from spillgate.errors import bad_request

IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
#: Blocks of assistant turns that chat has no place for; dropped (see the docstring).
_DROPPED_ASSISTANT_BLOCKS = ("thinking", "redacted_thinking")


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def chat_messages(system: Any, messages: Any) -> list[dict[str, Any]]:
    out = []
    text = _system_text(system)
    if text:
        out.append({"role": "system", "content": text})
    if messages is None:
        raise bad_request("`messages` is required", param="messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("`messages` must be a non-empty array", param="messages")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad_request(f"`{where}` must be an object", param=where)
        role = message.get("role")
        if role == "user":
            out += _user_turn(message.get("content"), where)
        elif role == "assistant":
            out.append(_assistant_turn(message.get("content"), where))
        else:
            raise bad_request(
                f'`{where}.role` must be "user" or "assistant" (got {role!r}); '
                "put system instructions in the top-level `system` field",
                param=f"{where}.role",
            )
    return out


def _system_text(system: Any) -> str:
    """`system` as one text: its blocks are paragraphs (their `cache_control` is Anthropic's
    caching hint, which chat targets do not take)."""
    if system is None or isinstance(system, str):
        return system or ""
    if not isinstance(system, list):
        raise bad_request("`system` must be a string or an array of text blocks", param="system")
    texts = [_text(block, f"system[{j}]") for j, block in enumerate(system)]
    return "\n\n".join(t for t in texts if t)


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        raise bad_request(
            f"`{where}.content` must be a string or an array of content blocks",
            param=f"{where}.content",
        )
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            at = f"{where}.content[{j}]"
            raise bad_request(f"`{at}` must be a content block with a `type`", param=at)
    return content


def _text(block: Any, where: str) -> str:
    if not isinstance(block, dict) or block.get("type") != "text":
        raise bad_request(f"`{where}` must be a text block", param=where)
    text = block.get("text")
    if not isinstance(text, str):
        raise bad_request(f"`{where}.text` must be a string", param=f"{where}.text")
    return text


# --- user turns ----------------------------------------------------------------------------


def _user_turn(content: Any, where: str) -> list[dict[str, Any]]:
    """A user turn: its tool results as `tool` messages, then the rest as a user message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    results: list[dict[str, Any]] = []
    result_images: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(_blocks(content, where)):
        at = f"{where}.content[{j}]"
        kind = block["type"]
        if kind == "text":
            parts.append({"type": "text", "text": _text(block, at)})
        elif kind == "image":
            parts.append(_image_part(block.get("source"), f"{at}.source"))
        elif kind == "document":
            parts.append(_document_part(block, at))
        elif kind == "tool_result":
            message, images = _tool_result(block, at)
            results.append(message)
            result_images += images
        else:
            raise bad_request(
                f"`{at}.type` is {kind!r}; a user turn takes text, image, document and "
                "tool_result blocks",
                param=f"{at}.type",
            )
    parts = result_images + parts
    if parts:
        return [*results, {"role": "user", "content": parts}]
    if results:
        return results
    raise bad_request(f"`{where}.content` must not be empty", param=f"{where}.content")


def _image_part(source: Any, where: str) -> dict[str, Any]:
    if not isinstance(source, dict):
        raise bad_request(f"`{where}` must be an object", param=where)
    kind = source.get("type")
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise bad_request(f"`{where}.url` must be an http(s) URL", param=f"{where}.url")
        return {"type": "image_url", "image_url": {"url": url}}
    if kind != "base64":
        raise bad_request(f'`{where}.type` must be "base64" or "url"', param=f"{where}.type")
    media_type = source.get("media_type")
    if media_type not in IMAGE_MEDIA_TYPES:
        raise bad_request(
            f"`{where}.media_type` must be one of {', '.join(IMAGE_MEDIA_TYPES)}",
            param=f"{where}.media_type",
        )
    data = _base64(source.get("data"), f"{where}.data")
    return {"type": "image_url", "image_url": {"url": f"data:{media_type};base64,{data}"}}


def _base64(data: Any, where: str) -> str:
    if not isinstance(data, str) or not data:
        raise bad_request(f"`{where}` must be a base64 string", param=where)
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"`{where}` is not valid base64", param=where) from None
    return data


def _document_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    at = f"{where}.source"
    if kind == "text" and isinstance(source, dict):
        data = source.get("data")
        if not isinstance(data, str):
            raise bad_request(f"`{at}.data` must be a string", param=f"{at}.data")
        return {"type": "text", "text": data}
    if kind == "base64" and isinstance(source, dict):
        if source.get("media_type") != "application/pdf":
            raise bad_request(
                f'`{at}.media_type` must be "application/pdf"', param=f"{at}.media_type"
            )
        data = _base64(source.get("data"), f"{at}.data")
        title = block.get("title")
        name = title if isinstance(title, str) and title else "document.pdf"
        return {
            "type": "file",
            "file": {"filename": name, "file_data": f"data:application/pdf;base64,{data}"},
        }
    raise bad_request(
        f'`{at}.type` must be "text" (plain text) or "base64" (a PDF); Spillgate does not '
        "fetch documents by URL or file id",
        param=f"{at}.type",
    )


def _tool_result(block: dict[str, Any], where: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A `tool` message, and the images of the result (for the user message after it)."""
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise bad_request(
            f"`{where}.tool_use_id` must be a non-empty string", param=f"{where}.tool_use_id"
        )
    is_error = block.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        raise bad_request(f"`{where}.is_error` must be true or false", param=f"{where}.is_error")
    content = block.get("content")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for k, inner in enumerate(_blocks(content, where)):
            at = f"{where}.content[{k}]"
            if inner["type"] == "text":
                texts.append(_text(inner, at))
            elif inner["type"] == "image":
                images.append(_image_part(inner.get("source"), f"{at}.source"))
            else:
                raise bad_request(
                    f"`{at}.type` is {inner['type']!r}; a tool_result takes text and image blocks",
                    param=f"{at}.type",
                )
    elif content is not None:
        raise bad_request(
            f"`{where}.content` must be a string or an array of blocks", param=f"{where}.content"
        )
    text = "\n".join(texts)
    if is_error:
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": tool_use_id, "content": text}, images


# --- assistant turns -----------------------------------------------------------------------


def _assistant_turn(content: Any, where: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(_blocks(content, where)):
        at = f"{where}.content[{j}]"
        kind = block["type"]
        if kind == "text":
            texts.append(_text(block, at))
        elif kind == "tool_use":
            calls.append(_tool_call(block, at))
        elif kind not in _DROPPED_ASSISTANT_BLOCKS:
            raise bad_request(
                f"`{at}.type` is {kind!r}; an assistant turn takes text, tool_use and "
                "thinking blocks",
                param=f"{at}.type",
            )
    message: dict[str, Any] = {"role": "assistant", "content": _assistant_content(texts, calls)}
    if calls:
        message["tool_calls"] = calls
    return message


def _assistant_content(texts: list[str], calls: list[dict[str, Any]]) -> Any:
    """One text as a string; several as text parts (joining them would change the words);
    none as null beside tool calls, else an empty string (a prefill with nothing in it)."""
    if len(texts) == 1:
        return texts[0]
    if texts:
        return [{"type": "text", "text": text} for text in texts]
    return None if calls else ""


def _tool_call(block: dict[str, Any], where: str) -> dict[str, Any]:
    call_id, name, tool_input = block.get("id"), block.get("name"), block.get("input")
    if not isinstance(call_id, str) or not call_id:
        raise bad_request(f"`{where}.id` must be a non-empty string", param=f"{where}.id")
    if not isinstance(name, str) or not name:
        raise bad_request(f"`{where}.name` must be a non-empty string", param=f"{where}.name")
    if not isinstance(tool_input, dict):
        raise bad_request(f"`{where}.input` must be an object", param=f"{where}.input")
    arguments = orjson.dumps(tool_input).decode()
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
