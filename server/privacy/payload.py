"""Where an OpenAI request carries text, and how to rewrite it there.

One walker serves both the scan and the redaction: it calls `fn(text, is_json)` on every
text a model would read and rebuilds a container only where `fn` returned a different
string (copy on write), so a scan allocates nothing and the caller's payload is never
changed. `is_json` marks tool-call arguments, which are JSON text inside a string.

Read: chat `messages[].content` (a string or text/refusal parts), `messages[].refusal`,
tool-call and function-call arguments, tool results (a tool message's content); `prompt`
(strings; token ids are not text); `input` (strings, or Responses-style items with
content, output or arguments); `instructions`. Never read: images, audio and files (their
bytes are not text), tool definitions, and every other field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

TextFn = Callable[[str, bool], str]

_TEXT_PART_KEYS = ("text", "refusal")


def map_texts(payload: dict[str, Any], fn: TextFn) -> dict[str, Any]:
    out = payload
    for key in ("messages", "input"):
        value = payload.get(key)
        new = _items(value, fn) if isinstance(value, list) else _plain(value, fn)
        out = _set(out, payload, key, new, value)
    for key in ("prompt", "instructions"):
        value = payload.get(key)
        new = _strings(value, fn) if isinstance(value, list) else _plain(value, fn)
        out = _set(out, payload, key, new, value)
    return out


def iter_texts(payload: dict[str, Any]) -> Iterator[tuple[str, bool]]:
    found: list[tuple[str, bool]] = []

    def collect(text: str, is_json: bool) -> str:
        found.append((text, is_json))
        return text

    map_texts(payload, collect)
    return iter(found)


def _set(out: dict[str, Any], original: dict[str, Any], key: str, new: Any, old: Any) -> Any:
    """Put `new` under `key`, copying `original` into `out` the first time anything changes."""
    if new is old:
        return out
    if out is original:
        out = dict(original)
    out[key] = new
    return out


def _plain(value: Any, fn: TextFn, is_json: bool = False) -> Any:
    return fn(value, is_json) if isinstance(value, str) else value


def _strings(values: list[Any], fn: TextFn) -> list[Any]:
    out = values
    for i, value in enumerate(values):
        new = _plain(value, fn)
        if new is not value:
            if out is values:
                out = list(values)
            out[i] = new
    return out


def _items(items: list[Any], fn: TextFn) -> list[Any]:
    """Chat messages, or `input` entries: strings or message-like objects."""
    out = items
    for i, item in enumerate(items):
        new = _message(item, fn) if isinstance(item, dict) else _plain(item, fn)
        if new is not item:
            if out is items:
                out = list(items)
            out[i] = new
    return out


def _message(message: dict[str, Any], fn: TextFn) -> dict[str, Any]:
    out = message
    content = message.get("content")
    new_content = _parts(content, fn) if isinstance(content, list) else _plain(content, fn)
    out = _set(out, message, "content", new_content, content)
    for key in ("refusal", "output"):  # `output`: a Responses function_call_output
        out = _set(out, message, key, _plain(message.get(key), fn), message.get(key))
    arguments = message.get("arguments")  # a Responses function_call item
    out = _set(out, message, "arguments", _plain(arguments, fn, is_json=True), arguments)
    tool_calls = message.get("tool_calls")
    if isinstance(tool_calls, list):
        out = _set(out, message, "tool_calls", _calls(tool_calls, fn), tool_calls)
    function_call = message.get("function_call")
    if isinstance(function_call, dict):
        out = _set(out, message, "function_call", _function(function_call, fn), function_call)
    return out


def _parts(parts: list[Any], fn: TextFn) -> list[Any]:
    out = parts
    for i, part in enumerate(parts):
        if isinstance(part, str):
            new: Any = _plain(part, fn)
        elif isinstance(part, dict):
            new = part
            for key in _TEXT_PART_KEYS:
                new = _set(new, part, key, _plain(part.get(key), fn), part.get(key))
        else:
            continue
        if new is not part:
            if out is parts:
                out = list(parts)
            out[i] = new
    return out


def _calls(calls: list[Any], fn: TextFn) -> list[Any]:
    out = calls
    for i, call in enumerate(calls):
        if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
            continue
        new_function = _function(call["function"], fn)
        if new_function is not call["function"]:
            if out is calls:
                out = list(calls)
            out[i] = {**call, "function": new_function}
    return out


def _function(function: dict[str, Any], fn: TextFn) -> dict[str, Any]:
    arguments = function.get("arguments")
    return _set(function, function, "arguments", _plain(arguments, fn, True), arguments)
