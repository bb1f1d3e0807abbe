"""vLLM's Responses API output, made to hold to OpenAI's schema on its way through.

vLLM 0.32 writes its Response objects with departures from OpenAI's spec
(../shared/specs/openai-openapi.yaml), which strict clients and schema checks refuse:
no `error` field (required, null when there is none), `null` for fields that are absent or
an object/string when present (`user`, `text`, and `usage` before the end), and
`logprobs: null` on output text (an array). Only the objects carrying them are
rewritten: the whole answer, and in a stream the few events that hold a Response
(`response.created`, `...in_progress`, `...completed`) or a finished text part; the deltas
pass as the engine's bytes.
"""

from __future__ import annotations

from typing import Any

import orjson

from spillgate.protocol import Endpoint, Usage
from spillgate.sse import EventSplitter, UsageTap, next_sequence_number

#: Fields of a Response that OpenAI leaves out rather than set to null.
_NOT_NULL = ("user", "text", "usage")
#: Byte marks of an event that may need a fix; any other event passes untouched.
_MARKS = (b'"response":', b'"logprobs":null', b'"logprobs": null')


def conform_response(response: dict[str, Any]) -> dict[str, Any]:
    """A Response object with vLLM's departures put right (changed in place, returned)."""
    response.setdefault("error", None)
    for name in _NOT_NULL:
        if name in response and response[name] is None:
            del response[name]
    for item in response.get("output") or ():
        if isinstance(item, dict):
            _conform_parts(item.get("content"))
    return response


def conform_body(body: bytes) -> bytes:
    """A whole Responses answer; bytes that are not a Response object pass unchanged."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if not isinstance(answer, dict) or answer.get("object") != "response":
        return body
    return orjson.dumps(conform_response(answer))


class ResponsesConformer:
    """Rewrites the events of a vLLM Responses stream that need it, as they pass.

    Holds back only an event whose end has not arrived, so the client gets whole events.
    `tap` reads the usage as the bytes pass; `next_sequence` is the number an event the
    gateway adds (an error) must take.
    """

    __slots__ = ("_events", "next_sequence", "tap")

    endpoint = Endpoint.RESPONSES

    def __init__(self, tap: UsageTap) -> None:
        self._events = EventSplitter()
        self.next_sequence = 0
        self.tap = tap

    @property
    def usage(self) -> Usage | None:
        return self.tap.usage

    def feed(self, data: bytes) -> bytes:
        self.tap.feed(data)
        whole = self._events.cut(data)
        if not whole:
            return b""
        self.next_sequence = next_sequence_number(whole, self.next_sequence)
        if not any(mark in whole for mark in _MARKS):
            return whole
        lines = whole.split(b"\n")
        for n, line in enumerate(lines):
            if line.startswith(b"data:") and any(mark in line for mark in _MARKS):
                lines[n] = _conform_data_line(line)
        return b"\n".join(lines)

    def rest(self) -> bytes:
        return self._events.rest()


def _conform_data_line(line: bytes) -> bytes:
    """One `data:` line of an event: its JSON put right, or the line as it was."""
    try:
        payload = orjson.loads(line[5:])
    except orjson.JSONDecodeError:
        return line
    if not isinstance(payload, dict):
        return line
    if isinstance(payload.get("response"), dict):
        conform_response(payload["response"])
    for key in ("part", "item"):
        holder = payload.get(key)
        if isinstance(holder, dict):
            _conform_parts([holder])
            _conform_parts(holder.get("content"))
    if payload.get("logprobs", "") is None:
        payload["logprobs"] = []
    ending = b"\r" if line.endswith(b"\r") else b""
    return b"data: " + orjson.dumps(payload) + ending


def _conform_parts(parts: Any) -> None:
    for part in parts if isinstance(parts, list) else ():
        text = isinstance(part, dict) and part.get("type") == "output_text"
        if text and part.get("logprobs", "") is None:
            part["logprobs"] = []
