"""The fake OpenAI's Responses API answers (POST /v1/responses), whole or as events.

Written here from OpenAI's documented shapes, independently of the gateway's own Responses
code, so a test of the gateway's pass-through compares it with something it did not make.
The fake "model" says what it saw ("fake answer: W words, T tool results"), or calls the
first function tool (the one `tool_choice` names) unless the last input item is a tool's
output or tool_choice is "none". Usage: a token a word, plus 4 an input item.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson


class ResponsesTurn:
    """The fake model's one answer to a Responses request."""

    def __init__(self, body: dict[str, Any], usage_as_sent: Any = None, omit_usage: bool = False):
        self.body = body
        self.id = f"resp_{uuid.uuid4().hex}"
        self.created = int(time.time())
        items = body["input"] if isinstance(body["input"], list) else [body["input"]]
        self.items = items
        self.call = self._call()
        words = sum(len(_text_of(item).split()) for item in items)
        results = sum(
            1 for i in items if isinstance(i, dict) and i.get("type") == "function_call_output"
        )
        self.text = f"fake answer: {words} words, {results} tool results"
        self.input_tokens = words + 4 * len(items)
        self.output_tokens = 10 if self.call else len(self.text.split())
        self.usage_as_sent = usage_as_sent
        self.omit_usage = omit_usage

    def _call(self) -> dict[str, Any] | None:
        tools = [t for t in self.body.get("tools") or [] if t.get("type") == "function"]
        choice = self.body.get("tool_choice", "auto")
        last = self.items[-1]
        if (
            not tools
            or choice == "none"
            or (isinstance(last, dict) and last.get("type") == "function_call_output")
        ):
            return None
        if isinstance(choice, dict):
            tools = [t for t in tools if t["name"] == choice.get("name")] or tools
        return {
            "type": "function_call",
            "id": f"fc_{uuid.uuid4().hex}",
            "call_id": f"call_{uuid.uuid4().hex[:24]}",
            "name": tools[0]["name"],
            "arguments": '{"city":"Paris"}',
            "status": "completed",
        }

    def usage(self) -> Any:
        if self.usage_as_sent is not None:
            return self.usage_as_sent
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.input_tokens + self.output_tokens,
        }

    def output(self) -> list[dict[str, Any]]:
        if self.call:
            return [self.call]
        part = {"type": "output_text", "text": self.text, "annotations": [], "logprobs": []}
        return [{"type": "message", "id": self.message_id, "status": "completed",
                 "role": "assistant", "content": [part]}]  # fmt: skip

    @property
    def message_id(self) -> str:
        return "msg_" + self.id[5:]

    def response(self, status: str = "completed") -> dict[str, Any]:
        done = status == "completed"
        answer: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "completed_at": int(time.time()) if done else None,
            "error": None,
            "incomplete_details": None,
            "instructions": self.body.get("instructions"),
            "max_output_tokens": self.body.get("max_output_tokens"),
            "model": self.body["model"] + "-2025-01-01",  # OpenAI names the snapshot
            "output": self.output() if done else [],
            "parallel_tool_calls": self.body.get("parallel_tool_calls", True),
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "store": self.body.get("store", True),
            "temperature": self.body.get("temperature", 1.0),
            "text": self.body.get("text") or {"format": {"type": "text"}},
            "tool_choice": self.body.get("tool_choice", "auto"),
            "tools": self.body.get("tools") or [],
            "top_p": self.body.get("top_p", 1.0),
            "truncation": "disabled",
            "metadata": self.body.get("metadata") or {},
        }
        if done and not self.omit_usage:
            answer["usage"] = self.usage()
        return answer

    def events(self) -> list[bytes]:
        """The stream: lifecycle events around the output item's own events."""
        out: list[dict[str, Any]] = [
            {"type": "response.created", "response": self.response("in_progress")},
            {"type": "response.in_progress", "response": self.response("in_progress")},
        ]
        item = self.output()[0]
        at = {"output_index": 0}
        if self.call:
            out.append(
                {
                    "type": "response.output_item.added",
                    **at,
                    "item": {**item, "arguments": "", "status": "in_progress"},
                }
            )
            half = len(item["arguments"]) // 2
            for piece in (item["arguments"][:half], item["arguments"][half:]):
                out.append(
                    {
                        "type": "response.function_call_arguments.delta",
                        **at,
                        "item_id": item["id"],
                        "delta": piece,
                    }
                )
            out.append(
                {
                    "type": "response.function_call_arguments.done",
                    **at,
                    "item_id": item["id"],
                    "name": item["name"],
                    "arguments": item["arguments"],
                }
            )
        else:
            part = item["content"][0]
            ids = {**at, "item_id": item["id"], "content_index": 0}
            out.append(
                {
                    "type": "response.output_item.added",
                    **at,
                    "item": {**item, "status": "in_progress", "content": []},
                }
            )
            out.append({"type": "response.content_part.added", **ids, "part": {**part, "text": ""}})
            for k, word in enumerate(self.text.split(" ")):
                out.append(
                    {
                        "type": "response.output_text.delta",
                        **ids,
                        "delta": word if k == 0 else f" {word}",
                        "logprobs": [],
                    }
                )
            out.append(
                {"type": "response.output_text.done", **ids, "text": self.text, "logprobs": []}
            )
            out.append({"type": "response.content_part.done", **ids, "part": part})
        out.append({"type": "response.output_item.done", **at, "item": item})
        out.append({"type": "response.completed", "response": self.response()})
        return [sse_event({**e, "sequence_number": n}) for n, e in enumerate(out)]  # fmt: skip


def sse_event(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: ".encode() + orjson.dumps(event) + b"\n\n"


def _text_of(item: Any) -> str:
    if isinstance(item, str):
        return item
    if not isinstance(item, dict):
        return ""
    content = item.get("content", item.get("output", ""))
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
