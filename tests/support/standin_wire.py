"""How the stand-in engine (`standin_engine.py`) writes its answers, one encoder per API.

Each `Wire` turns the stand-in's answer text and token `Counts` into vLLM 0.32's bytes for
one API: the whole JSON body, or a stream's opening events, one piece's events and the
closing events. `ChatWire` writes chat completions and legacy completions (`data:` chunks
ending in `[DONE]`), `ResponsesWire` OpenAI's Responses API (`event:` lines, numbered
`sequence_number`s, the request's settings echoed in the response object), and
`MessagesWire` Anthropic's Messages API as vLLM serves it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import orjson


@dataclass(frozen=True)
class Counts:
    """A request's token counts; `override`: the mode's `usage`, reported in their place."""

    prompt: int
    output: int
    override: Any = None


class Wire(Protocol):
    """How one API writes an answer: whole, or as the events of a stream."""

    def prompt(self) -> Any:
        """The part of the request the stand-in counts as the prompt."""

    def whole(self, text: str, counts: Counts) -> dict[str, Any]: ...

    def opening(self, counts: Counts) -> list[bytes]: ...

    def piece(self, piece: str) -> list[bytes]: ...

    def closing(self, text: str, counts: Counts) -> list[bytes]: ...


class ChatWire:
    """Chat completions (`chat`) or legacy completions, as vLLM answers them."""

    def __init__(self, payload: dict[str, Any], chat: bool) -> None:
        self.payload, self.chat = payload, chat
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:16]}"
        self.obj = "chat.completion" if chat else "text_completion"
        self.created = int(time.time())

    def prompt(self) -> Any:
        return self.payload.get("messages") or self.payload.get("prompt")

    def _usage(self, counts: Counts) -> Any:
        return counts.override or {
            "prompt_tokens": counts.prompt,
            "completion_tokens": counts.output,
            "total_tokens": counts.prompt + counts.output,
        }

    def whole(self, text: str, counts: Counts) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop", "logprobs": None}
        if self.chat:
            choice["message"] = {"role": "assistant", "content": text, "refusal": None}
        else:
            choice["text"] = text
        return {**self._head(self.obj), "choices": [choice], "usage": self._usage(counts)}

    def _head(self, obj: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.payload["model"],
        }

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        obj = f"{self.obj}.chunk" if self.chat else self.obj
        return b"data: " + orjson.dumps({**self._head(obj), "choices": choices, **extra}) + b"\n\n"

    def opening(self, counts: Counts) -> list[bytes]:
        return []

    def piece(self, piece: str) -> list[bytes]:
        choice: dict[str, Any] = {"index": 0, "finish_reason": None}
        choice.update(
            {"delta": {"content": piece}} if self.chat else {"text": piece, "logprobs": None}
        )
        return [self._chunk([choice])]

    def closing(self, text: str, counts: Counts) -> list[bytes]:
        final: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
        final.update({"delta": {}} if self.chat else {"text": "", "logprobs": None})
        events = [self._chunk([final])]
        if (self.payload.get("stream_options") or {}).get("include_usage"):
            events.append(self._chunk([], usage=self._usage(counts)))
        return [*events, b"data: [DONE]\n\n"]


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    """One event as vLLM writes the Responses and Messages streams: `event:` then `data:`."""
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class ResponsesWire:
    """OpenAI's Responses API as vLLM's simple (non-harmony) path answers it: one output
    message, `response.created` ... `response.completed` events numbered from 0."""

    def __init__(self, payload: dict[str, Any], max_model_len: int) -> None:
        self.payload, self.max_model_len = payload, max_model_len
        self.id = f"resp_{uuid.uuid4().hex[:16]}"
        self.item_id = f"msg_{uuid.uuid4().hex[:16]}"
        self.created = int(time.time())
        self.sequence = 0
        self.opened = False

    def prompt(self) -> Any:
        return [self.payload.get("instructions"), self.payload.get("input")]

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {**fields, "sequence_number": self.sequence, "type": kind}
        self.sequence += 1
        return _sse(kind, data)

    def _usage(self, counts: Counts) -> Any:
        n, m = counts.prompt, counts.output
        return counts.override or {
            "input_tokens": n,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0,
                                     "input_tokens_per_turn": [n], "cached_tokens_per_turn": [0]},
            "output_tokens": m,
            "output_tokens_details": {"reasoning_tokens": 0, "tool_output_tokens": 0,
                                      "output_tokens_per_turn": [m],
                                      "tool_output_tokens_per_turn": [0]},
            "total_tokens": n + m,
        }  # fmt: skip

    def _message(self, text: str | None) -> dict[str, Any]:
        done = text is not None
        content = [_output_text(text, None)] if done else []
        return {"id": self.item_id, "content": content, "role": "assistant",
                "status": "completed" if done else "in_progress", "type": "message",
                "phase": None}  # fmt: skip

    def _response(self, status: str, output: list[Any], counts: Counts) -> dict[str, Any]:
        """The response object; the request's settings echoed back as vLLM echoes them."""
        p = self.payload
        given = p.get("max_output_tokens")
        return {
            "id": self.id, "created_at": self.created, "incomplete_details": None,
            "instructions": p.get("instructions"), "metadata": p.get("metadata"),
            "model": p["model"], "object": "response", "output": output,
            "parallel_tool_calls": p.get("parallel_tool_calls", True),
            "temperature": _given(p.get("temperature"), 1.0),
            "tool_choice": p.get("tool_choice", "auto") if p.get("tools") else "none",
            "tools": p.get("tools") or [], "top_p": _given(p.get("top_p"), 1.0),
            "background": bool(p.get("background")),
            "max_output_tokens": given or self.max_model_len - counts.prompt,
            "max_tool_calls": p.get("max_tool_calls"), "previous_response_id": None,
            "prompt": None, "reasoning": p.get("reasoning"),
            "service_tier": p.get("service_tier", "auto"), "status": status,
            "text": p.get("text"), "top_logprobs": None,
            "truncation": p.get("truncation", "disabled"),
            "usage": self._usage(counts) if status == "completed" else None,
            "user": p.get("user"), "presence_penalty": _given(p.get("presence_penalty"), 0.0),
            "frequency_penalty": _given(p.get("frequency_penalty"), 0.0),
            "kv_transfer_params": None, "ec_transfer_params": None,
            "input_messages": None, "output_messages": None,
        }  # fmt: skip

    def whole(self, text: str, counts: Counts) -> dict[str, Any]:
        return self._response("completed", [self._message(text)], counts)

    def opening(self, counts: Counts) -> list[bytes]:
        started = self._response("in_progress", [], counts)
        return [
            self._event("response.created", response=started),
            self._event("response.in_progress", response=started),
        ]

    def piece(self, piece: str) -> list[bytes]:
        at = {"content_index": 0, "item_id": self.item_id}
        events = []
        if not self.opened:  # vLLM opens the message at its first text
            self.opened = True
            events += [
                self._event("response.output_item.added", item=self._message(None), output_index=0),
                self._event("response.content_part.added", **at, output_index=0,
                            part=_output_text("", [])),
            ]  # fmt: skip
        delta = self._event("response.output_text.delta", **at, delta=piece, logprobs=[],
                            output_index=0)  # fmt: skip
        return [*events, delta]

    def closing(self, text: str, counts: Counts) -> list[bytes]:
        at = {"content_index": 0, "item_id": self.item_id, "output_index": 0}
        events = []
        if self.opened:
            events = [
                self._event("response.output_text.done", **at, logprobs=[], text=text),
                self._event("response.content_part.done", **at, part=_output_text(text, None)),
                self._event("response.output_item.done", item=self._message(text), output_index=0),
            ]  # fmt: skip
        output = [self._message(text)] if self.opened else []
        done = self._response("completed", output, counts)
        return [*events, self._event("response.completed", response=done)]


def _output_text(text: str, logprobs: list[Any] | None) -> dict[str, Any]:
    return {"annotations": [], "text": text, "type": "output_text", "logprobs": logprobs}


def _given(value: Any, default: Any) -> Any:
    return default if value is None else value


class MessagesWire:
    """Anthropic's Messages API as vLLM answers it: a text block, `end_turn`, usage with
    the input in `message_start` and the whole count in `message_delta`; no `ping`s."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload
        self.id = f"chatcmpl-{uuid.uuid4().hex[:16]}"  # vLLM keeps its chat completion's id
        self.started = False

    def prompt(self) -> Any:
        return [self.payload.get("system"), self.payload.get("messages")]

    def _message(self, content: list[Any], stop: str | None, usage: Any) -> dict[str, Any]:
        return {"id": self.id, "type": "message", "role": "assistant", "content": content,
                "model": self.payload["model"], "stop_reason": stop, "usage": usage}  # fmt: skip

    def _usage(self, counts: Counts, output: int | None = None) -> Any:
        spent = counts.output if output is None else output
        return counts.override or {"input_tokens": counts.prompt, "output_tokens": spent}

    def whole(self, text: str, counts: Counts) -> dict[str, Any]:
        return self._message([{"type": "text", "text": text}], "end_turn", self._usage(counts))

    def opening(self, counts: Counts) -> list[bytes]:
        message = {**self._message([], None, self._usage(counts, 0)), "stop_sequence": None}
        return [_sse("message_start", {"type": "message_start", "message": message})]

    def piece(self, piece: str) -> list[bytes]:
        events = []
        if not self.started:
            self.started = True
            block = {"type": "content_block_start", "content_block": {"type": "text", "text": ""},
                     "index": 0}  # fmt: skip
            events.append(_sse("content_block_start", block))
        delta = {"type": "content_block_delta", "delta": {"type": "text_delta", "text": piece},
                 "index": 0}  # fmt: skip
        return [*events, _sse("content_block_delta", delta)]

    def closing(self, text: str, counts: Counts) -> list[bytes]:
        events = []
        if self.started:
            events.append(_sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
        stopped = {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                   "stop_sequence": None}, "usage": self._usage(counts)}  # fmt: skip
        events.append(_sse("message_delta", stopped))
        return [*events, _sse("message_stop", {"type": "message_stop"})]
