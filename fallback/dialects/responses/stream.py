"""Chat completion SSE -> the Responses API's events, as the chunks arrive.

The events OpenAI's own service sends for text and function calls, numbered from 0:
`response.created` and `response.in_progress` (the Response, empty), then for the text a
message item (`output_item.added`, `content_part.added`, one `output_text.delta` per chat
delta, `output_text.done`, `content_part.done`, `output_item.done`), for each tool call a
function_call item (`output_item.added`, `function_call_arguments.delta` per fragment,
`function_call_arguments.done`, `output_item.done`), and last `response.completed` (or
`response.incomplete`) with the whole Response and its usage (chat's usage chunk).

Items stay open until chat's `finish_reason`: a provider may interleave the fragments of
parallel calls. A chat error event becomes an `error` event, and so does a chat stream that
ends without a `finish_reason`; nothing follows either.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from spillgate.errors import ErrorCode
from spillgate.fallback.dialects.responses.response import (
    INCOMPLETE_REASONS,
    function_call_item,
    message_item,
    new_id,
    response_object,
    responses_usage,
    text_part,
)
from spillgate.protocol import Endpoint
from spillgate.sse import EventSplitter, error_event, event_data


@dataclass
class _Text:
    output_index: int
    item_id: str = field(default_factory=lambda: new_id("msg"))
    text: str = ""


@dataclass
class _Call:
    output_index: int
    call_id: str
    name: str
    item_id: str = field(default_factory=lambda: new_id("fc"))
    arguments: str = ""


class ResponsesStream:
    """One Responses stream written from one chat stream (see the module's docstring)."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload
        self.response_id = new_id("resp")
        self.created_at = int(time.time())
        self._splitter = EventSplitter()
        self._sequence = 0
        self._started = False
        self._ended = False
        self._text: _Text | None = None
        self._calls: dict[int, _Call] = {}
        self._output: dict[int, dict[str, Any]] = {}
        self._finish: str | None = None
        self._usage: dict[str, Any] | None = None

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        for raw in self._splitter.feed(data):
            if self._ended:
                break
            payload = event_data(raw)
            if payload is None or payload == b"[DONE]":
                continue
            if not self._started:
                out += self._start()
            out += self._chunk(payload)
        return b"".join(out)

    def finish(self) -> bytes:
        if self._ended:
            return b""
        self._ended = True
        out = [] if self._started else self._start()
        if self._finish is None:
            out.append(self._error("the provider's stream ended before the answer did",
                                   ErrorCode.PROVIDER_STREAM_CUT))  # fmt: skip
            return b"".join(out)
        reason = INCOMPLETE_REASONS.get(self._finish)
        response = response_object(
            self.payload,
            self.response_id,
            self.created_at,
            status="incomplete" if reason else "completed",
            output=[self._output[i] for i in sorted(self._output)],
            usage=self._usage,
            incomplete_reason=reason,
        )
        kind = "response.incomplete" if reason else "response.completed"
        out.append(self._event(kind, response=response))
        return b"".join(out)

    # -- chat chunks ---------------------------------------------------------------------------

    def _start(self) -> list[bytes]:
        self._started = True
        response = response_object(
            self.payload,
            self.response_id,
            self.created_at,
            status="in_progress",
            output=[],
            usage=None,
        )
        return [
            self._event("response.created", response=response),
            self._event("response.in_progress", response=response),
        ]

    def _chunk(self, data: bytes) -> list[bytes]:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            chunk = None
        if not isinstance(chunk, dict):
            self._ended = True
            return [self._error("the provider sent a malformed stream event",
                                ErrorCode.PROVIDER_BAD_STREAM)]  # fmt: skip
        error = chunk.get("error")
        if error is not None:
            self._ended = True
            error = error if isinstance(error, dict) else {}
            message = error.get("message")
            return [self._error(message if isinstance(message, str) else "the stream failed",
                                error.get("code"))]  # fmt: skip
        usage = responses_usage(chunk.get("usage"))
        if usage is not None:
            self._usage = usage
        choices = chunk.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(choice, dict) or self._finish is not None:
            return []
        out: list[bytes] = []
        delta = choice.get("delta")
        if isinstance(delta, dict):
            content = delta.get("content")
            if isinstance(content, str) and content:
                out += self._text_delta(content)
            for call in delta.get("tool_calls") or []:
                if isinstance(call, dict):
                    out += self._call_delta(call)
        finish = choice.get("finish_reason")
        if isinstance(finish, str):
            self._finish = finish
            out += self._close_all("incomplete" if finish in INCOMPLETE_REASONS else "completed")
        return out

    def _text_delta(self, content: str) -> list[bytes]:
        out = []
        text = self._text
        if text is None:
            text = self._text = _Text(len(self._output))
            self._output[text.output_index] = {}  # its place, filled when it is done
            item = message_item(text.item_id, "in_progress", [])
            out.append(self._event("response.output_item.added",
                                   output_index=text.output_index, item=item))  # fmt: skip
            out.append(self._event("response.content_part.added", item_id=text.item_id,
                                   output_index=text.output_index, content_index=0,
                                   part=text_part("")))  # fmt: skip
        text.text += content
        out.append(self._event("response.output_text.delta", item_id=text.item_id,
                               output_index=text.output_index, content_index=0,
                               delta=content, logprobs=[]))  # fmt: skip
        return out

    def _call_delta(self, fragment: dict[str, Any]) -> list[bytes]:
        index = fragment.get("index")
        index = index if isinstance(index, int) else len(self._calls)
        function = fragment.get("function")
        function = function if isinstance(function, dict) else {}
        name, arguments = function.get("name"), function.get("arguments")
        out = []
        call = self._calls.get(index)
        if call is None:
            call_id = fragment.get("id")
            call = _Call(
                len(self._output),
                call_id if isinstance(call_id, str) and call_id else new_id("call"),
                name if isinstance(name, str) else "",
            )
            self._calls[index] = call
            self._output[call.output_index] = {}
            item = function_call_item(call.item_id, call.call_id, call.name, "", "in_progress")
            out.append(self._event("response.output_item.added",
                                   output_index=call.output_index, item=item))  # fmt: skip
        elif isinstance(name, str):
            call.name += name
        if isinstance(arguments, str) and arguments:
            call.arguments += arguments
            out.append(self._event("response.function_call_arguments.delta",
                                   item_id=call.item_id, output_index=call.output_index,
                                   delta=arguments))  # fmt: skip
        return out

    def _close_all(self, status: str) -> list[bytes]:
        out = []
        text = self._text
        if text is not None:
            part = text_part(text.text)
            item = message_item(text.item_id, status, [part])
            self._output[text.output_index] = item
            at = {"item_id": text.item_id, "output_index": text.output_index, "content_index": 0}
            out.append(self._event("response.output_text.done", **at, text=text.text,
                                   logprobs=[]))  # fmt: skip
            out.append(self._event("response.content_part.done", **at, part=part))
            out.append(self._event("response.output_item.done",
                                   output_index=text.output_index, item=item))  # fmt: skip
        for call in self._calls.values():
            item = function_call_item(call.item_id, call.call_id, call.name, call.arguments,
                                      "completed")  # fmt: skip
            self._output[call.output_index] = item
            out.append(self._event("response.function_call_arguments.done",
                                   item_id=call.item_id, output_index=call.output_index,
                                   name=call.name, arguments=call.arguments))  # fmt: skip
            out.append(self._event("response.output_item.done",
                                   output_index=call.output_index, item=item))  # fmt: skip
        return out

    # -- events ----------------------------------------------------------------------------

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def _error(self, message: str, code: Any) -> bytes:
        self._ended = True
        sequence = self._sequence
        self._sequence += 1
        return error_event(
            message,
            code=code if isinstance(code, str) else None,
            endpoint=Endpoint.RESPONSES,
            sequence_number=sequence,
        )
