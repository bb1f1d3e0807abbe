"""A chat completion as a Responses API `Response` object; the pieces the stream shares.

The Response echoes what the request set (instructions, tools, tool_choice, sampling,
text format, metadata), with OpenAI's defaults for what it left out, since the spec
requires those fields. `store` is always false: nothing is kept. A chat answer cut at its
token limit is `incomplete` (`max_output_tokens`), one stopped by a content filter
`incomplete` (`content_filter`).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from spillgate.protocol import Usage

#: Chat's `finish_reason` for an answer that stopped short -> Responses' incomplete reason.
INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def from_chat(payload: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """A `chat.completion` object (its first choice) as the Response to `payload`."""
    choices = answer.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    choice = choice if isinstance(choice, dict) else {}
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    reason = INCOMPLETE_REASONS.get(str(choice.get("finish_reason")))
    output: list[dict[str, Any]] = []
    content = []
    if isinstance(message.get("content"), str) and message["content"]:
        content.append(text_part(message["content"]))
    if isinstance(message.get("refusal"), str) and message["refusal"]:
        content.append({"type": "refusal", "refusal": message["refusal"]})
    if content:
        status = "incomplete" if reason else "completed"
        output.append(message_item(new_id("msg"), status, content))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        output.append(
            function_call_item(
                new_id("fc"),
                call.get("id") or new_id("call"),
                function.get("name") or "",
                function.get("arguments") or "",
                "completed",
            )
        )
    created = answer.get("created")
    return response_object(
        payload,
        new_id("resp"),
        created if isinstance(created, int) else int(time.time()),
        status="incomplete" if reason else "completed",
        output=output,
        usage=responses_usage(answer.get("usage")),
        incomplete_reason=reason,
    )


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": content,
    }


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def responses_usage(usage: Any) -> dict[str, Any] | None:
    """Chat's `usage` as the Responses API writes it; None when the answer had none."""
    counts = Usage.from_openai(usage)
    if counts is None:
        return None
    details = usage.get("completion_tokens_details")
    reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
    return {
        "input_tokens": counts.prompt_tokens,
        "input_tokens_details": {"cached_tokens": counts.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": counts.completion_tokens,
        "output_tokens_details": {
            "reasoning_tokens": reasoning if isinstance(reasoning, int) and reasoning >= 0 else 0
        },
        "total_tokens": counts.prompt_tokens + counts.completion_tokens,
    }


def response_object(
    payload: dict[str, Any],
    response_id: str,
    created_at: int,
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    incomplete_reason: str | None = None,
) -> dict[str, Any]:
    """The Response for `payload` with this status and output (the stream's first events
    carry it `in_progress` and empty)."""
    reasoning = payload.get("reasoning")
    text = payload.get("text") or {}
    response: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": None,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "instructions": payload.get("instructions"),
        "max_output_tokens": payload.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": payload["model"],
        "output": output,
        "parallel_tool_calls": payload.get("parallel_tool_calls") is not False,
        "previous_response_id": None,
        "reasoning": {"effort": reasoning.get("effort"), "summary": None} if reasoning else None,
        "store": False,
        "temperature": _number(payload.get("temperature"), 1.0),
        "text": {
            "format": text.get("format") or {"type": "text"},
            "verbosity": text.get("verbosity") or "medium",
        },
        "tool_choice": payload.get("tool_choice") or "auto",
        "tools": [_echoed_tool(tool) for tool in payload.get("tools") or []],
        "top_logprobs": 0,
        "top_p": _number(payload.get("top_p"), 1.0),
        "truncation": "disabled",
        "metadata": payload.get("metadata") or {},
    }
    if usage is not None:  # the spec has no null usage: a stream's first events have none
        response["usage"] = usage
    # The spec types these as strings, never null: present only when the request set them.
    for name in ("prompt_cache_key", "safety_identifier", "user"):
        if payload.get(name) is not None:
            response[name] = payload[name]
    return response


def _echoed_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A function tool as the Response lists it: every field the spec requires present."""
    return {
        "type": "function",
        "name": tool["name"],
        "description": tool.get("description"),
        "parameters": tool.get("parameters"),
        "strict": tool.get("strict"),
    }


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) else default
