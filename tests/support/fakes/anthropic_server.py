"""A fake of Anthropic's Messages API: a real aiohttp server on a random loopback port.

It checks each request against the documented `POST /v1/messages` schema (headers, fields,
roles, content blocks, tools, tool_choice, thinking, output_config), every field a Messages
client may send included (the gateway passes /v1/messages through as it is), and answers
in the documented shapes: a `message` object, or the documented SSE sequence
(`message_start`, `content_block_start`, `ping`, `content_block_delta`...,
`content_block_stop`, `message_delta`, `message_stop`).
Errors come as `{"type": "error", "error": {"type", "message"}, "request_id"}`.

One deliberate strictness: the real API silently combines consecutive turns of one role;
the fake refuses them, because the adapter promises to send alternating turns itself.

Tests script it: `answer(Reply(...))` queues an answer, `fail(Fault(...))` queues a fault,
and `received` records every request (headers and parsed body) as it arrived. Run as a
script (`--port`), it is steered over HTTP instead: POST /_fake/answer (a `Reply` as JSON),
POST /_fake/fault (a `Fault`, its `reply` nested), GET /_fake/received, POST /_fake/reset.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import itertools
import re
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from aiohttp import web

API_VERSION = "2023-06-01"

_TOP_LEVEL = {
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
    "output_config",
    "cache_control",
    "inference_geo",
    "speed",
}
_MEDIA_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
_STATUS_OF = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


@dataclass
class Reply:
    """One scripted answer: Anthropic content blocks and how the turn ended."""

    content: list[dict[str, Any]] = field(
        default_factory=lambda: [{"type": "text", "text": "Hello from the fake Anthropic."}]
    )
    stop_reason: str = "end_turn"
    stop_sequence: str | None = None
    usage: dict[str, int] = field(
        default_factory=lambda: {
            "input_tokens": 12,
            "output_tokens": 7,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
    )


@dataclass
class Fault:
    """One scripted failure. `status` answers an error; the `*_after` ones break a stream
    after that many events of `reply`; `delay_s` waits before the first byte."""

    status: int | None = None
    error_type: str = "api_error"
    message: str = "Internal server error"
    retry_after: str | None = None
    delay_s: float = 0.0
    cut_after: int | None = None  # drop the connection mid-body
    end_after: int | None = None  # end the body cleanly, without message_stop
    malformed_after: int | None = None  # one event that is not JSON, then the rest
    error_event_after: int | None = None  # an `error` event, then the end
    raw_body: bytes | None = None  # answer 200 with these bytes as the JSON body, as they are
    reply: Reply = field(default_factory=Reply)


@dataclass
class Received:
    headers: dict[str, str]
    body: Any


class Invalid(Exception):
    def __init__(self, message: str, error_type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type


class FakeAnthropic:
    def __init__(self, api_key: str = "sk-ant-fake-0123456789abcdef") -> None:
        self.api_key = api_key
        self.received: list[Received] = []
        self._script: deque[Reply | Fault] = deque()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, *replies: Reply) -> None:
        self._script.extend(replies)

    def fail(self, *faults: Fault) -> None:
        self._script.extend(faults)

    def reset(self) -> None:
        self._script.clear()
        self.received.clear()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/_fake/answer", self._http_answer)
        app.router.add_post("/_fake/fault", self._http_fault)
        app.router.add_post("/_fake/reset", self._http_reset)
        app.router.add_get("/_fake/received", self._http_received)
        return app

    async def start(self) -> FakeAnthropic:
        # A client that goes away cancels the handler, as it stops a real provider's work.
        self._runner = web.AppRunner(self.app(), handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        self.received.append(Received(dict(request.headers), body))
        try:
            check_headers(request.headers, self.api_key)
            check_body(body)
        except Invalid as invalid:
            return self._error(invalid.error_type, invalid.message)
        step = self._script.popleft() if self._script else Reply()
        fault = step if isinstance(step, Fault) else None
        reply = step.reply if isinstance(step, Fault) else step
        if fault is not None and fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault is not None and fault.status is not None:
            headers = {"retry-after": fault.retry_after} if fault.retry_after else {}
            return self._error(fault.error_type, fault.message, fault.status, headers)
        if fault is not None and fault.raw_body is not None:
            return web.Response(body=fault.raw_body, content_type="application/json")
        message_id = f"msg_fake{next(self._ids):04d}"
        if not body.get("stream"):
            return web.json_response(
                message(reply, body["model"], message_id), dumps=_dumps, headers=self._id_header()
            )
        return await self._stream(request, reply, body["model"], message_id, fault)

    async def _stream(
        self, request: web.Request, reply: Reply, model: str, message_id: str, fault: Fault | None
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={
                "content-type": "text/event-stream; charset=utf-8",
                "cache-control": "no-cache",
                **self._id_header(),
            }
        )
        await resp.prepare(request)
        for n, item in enumerate(message_events(reply, model, message_id)):
            if fault is not None and n == fault.cut_after:
                assert request.transport is not None
                request.transport.close()  # no chunked terminator: the body is incomplete
                return resp
            if fault is not None and n == fault.end_after:
                break
            if fault is not None and n == fault.error_event_after:
                error = {
                    "type": "error",
                    "error": {"type": fault.error_type, "message": fault.message},
                }
                await resp.write(encode_event(error))
                break
            if fault is not None and n == fault.malformed_after:
                await resp.write(
                    b'event: content_block_delta\ndata: {"type": "content_block_de\n\n'
                )
            await resp.write(encode_event(item))
        await resp.write_eof()
        return resp

    def _error(
        self,
        error_type: str,
        text: str,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        body = {
            "type": "error",
            "error": {"type": error_type, "message": text},
            "request_id": self._id_header()["request-id"],
        }
        return web.json_response(
            body,
            status=status or _STATUS_OF[error_type],
            dumps=_dumps,
            headers={**self._id_header(), **(headers or {})},
        )

    def _id_header(self) -> dict[str, str]:
        return {"request-id": f"req_fake{len(self.received):04d}"}

    # -- steering over HTTP, for a fake run as its own process --------------------------------

    async def _http_answer(self, request: web.Request) -> web.Response:
        self.answer(Reply(**await request.json()))
        return web.json_response({"queued": len(self._script)})

    async def _http_fault(self, request: web.Request) -> web.Response:
        spec = await request.json()
        reply = spec.pop("reply", None)
        self.fail(Fault(**spec, reply=Reply(**reply) if reply else Reply()))
        return web.json_response({"queued": len(self._script)})

    async def _http_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({})

    async def _http_received(self, request: web.Request) -> web.Response:
        return web.json_response([asdict(r) for r in self.received])


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


# --- answers -------------------------------------------------------------------------------


def message(reply: Reply, model: str, message_id: str) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": reply.content,
        "stop_reason": reply.stop_reason,
        "stop_sequence": reply.stop_sequence,
        "usage": reply.usage,
    }


def message_events(reply: Reply, model: str, message_id: str) -> list[dict[str, Any]]:
    """The documented event sequence for one answer, deltas split as a real stream does."""
    start_usage = {**reply.usage, "output_tokens": 1}
    start = {**message(reply, model, message_id), "content": [], "stop_reason": None}
    start["stop_sequence"] = None
    start["usage"] = start_usage
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(reply.content):
        if block["type"] == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in _pieces(block["text"])]
        else:
            opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            arguments = orjson.dumps(block["input"]).decode()
            deltas = [{"type": "input_json_delta", "partial_json": ""}]
            deltas += [{"type": "input_json_delta", "partial_json": p} for p in _pieces(arguments)]
        events.append({"type": "content_block_start", "index": index, "content_block": opening})
        if index == 0:
            events.append({"type": "ping"})
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence},
            "usage": {"output_tokens": reply.usage["output_tokens"]},
        }
    )
    events.append({"type": "message_stop"})
    return events


def encode_event(item: dict[str, Any]) -> bytes:
    return b"event: " + item["type"].encode() + b"\ndata: " + orjson.dumps(item) + b"\n\n"


def _pieces(text: str, size: int = 9) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


# --- the request schema --------------------------------------------------------------------


def check_headers(headers: Any, api_key: str) -> None:
    if headers.get("x-api-key") != api_key:
        raise Invalid("invalid x-api-key", "authentication_error")
    version = headers.get("anthropic-version")
    if version is None:
        raise Invalid("anthropic-version: header is required")
    if version != API_VERSION:
        raise Invalid(f"anthropic-version: {version!r} is not a valid version")
    if not headers.get("content-type", "").startswith("application/json"):
        raise Invalid("content-type: must be application/json")


def check_body(body: Any) -> None:
    """Raise `Invalid` naming the first field that breaks the documented schema."""
    if not isinstance(body, dict):
        raise Invalid("the request body must be a JSON object")
    for key in body:
        if key not in _TOP_LEVEL:
            raise Invalid(f"{key}: Extra inputs are not permitted")
    for key in ("model", "messages", "max_tokens"):
        if key not in body:
            raise Invalid(f"{key}: Field required")
    _expect(isinstance(body["model"], str) and body["model"], "model: must be a non-empty string")
    _expect(_is_int(body["max_tokens"]) and body["max_tokens"] >= 1, "max_tokens: must be >= 1")
    if "system" in body:
        system = body["system"]
        if isinstance(system, list):
            for j, block in enumerate(system):
                _text_block(block, f"system.{j}")
        else:
            _expect(isinstance(system, str), "system: must be a string or text blocks")
    if "metadata" in body:
        meta = body["metadata"]
        _expect(isinstance(meta, dict) and set(meta) <= {"user_id"}, "metadata: only user_id")
        _expect(isinstance(meta.get("user_id", ""), str), "metadata.user_id: must be a string")
    if "stop_sequences" in body:
        stops = body["stop_sequences"]
        _expect(
            isinstance(stops, list) and all(isinstance(s, str) for s in stops),
            "stop_sequences: must be a list of strings",
        )
    for key in ("temperature", "top_p"):
        if key in body:
            value = body[key]
            _expect(_is_number(value) and 0 <= value <= 1, f"{key}: must be between 0 and 1")
    if "top_k" in body:
        _expect(_is_int(body["top_k"]) and body["top_k"] >= 0, "top_k: must be >= 0")
    if "stream" in body:
        _expect(isinstance(body["stream"], bool), "stream: must be a boolean")
    if "thinking" in body:
        _thinking(body["thinking"], body["max_tokens"])
    if "service_tier" in body:
        _expect(body["service_tier"] in ("auto", "standard_only"), "service_tier: invalid value")
    if "output_config" in body:
        _output_config(body["output_config"])
    names = _tools(body.get("tools"))
    if "tool_choice" in body:
        _tool_choice(body["tool_choice"], names)
    _messages(body["messages"], names)


def _messages(messages: Any, tool_names: set[str]) -> None:
    _expect(isinstance(messages, list) and messages, "messages: at least one message is required")
    previous_role = None
    pending_tool_uses: set[str] = set()
    for i, msg in enumerate(messages):
        where = f"messages.{i}"
        _expect(isinstance(msg, dict), f"{where}: must be an object")
        extra = set(msg) - {"role", "content"}
        _expect(not extra, f"{where}.{next(iter(extra), '')}: Extra inputs are not permitted")
        role = msg.get("role")
        _expect(role in ("user", "assistant"), f"{where}.role: must be 'user' or 'assistant'")
        _expect(role != previous_role, f"{where}: roles must alternate between user and assistant")
        previous_role = role
        content = msg.get("content")
        last = i == len(messages) - 1
        if isinstance(content, str):
            _expect(
                content or (last and role == "assistant"),
                f"{where}: all messages must have non-empty content except for the optional "
                "final assistant message",
            )
            blocks: list[Any] = []
        else:
            _expect(isinstance(content, list), f"{where}.content: must be a string or a list")
            _expect(
                content or (last and role == "assistant"),
                f"{where}: all messages must have non-empty content except for the optional "
                "final assistant message",
            )
            blocks = content
        for j, block in enumerate(blocks):
            _block(block, role, f"{where}.content.{j}")
        results = [b["tool_use_id"] for b in blocks if b["type"] == "tool_result"]
        if role == "user":
            _expect(
                blocks[: len(results)] == [b for b in blocks if b["type"] == "tool_result"],
                f"{where}: tool_result blocks must come first in the user message content",
            )
            unknown = set(results) - pending_tool_uses
            _expect(
                not unknown,
                f"{where}: unexpected tool_use_id found in tool_result blocks: "
                f"{sorted(unknown)}. Each tool_result block must have a corresponding tool_use "
                "block in the previous message.",
            )
            missing = pending_tool_uses - set(results)
            _expect(
                not missing,
                f"{where}: tool_use ids were found without tool_result blocks immediately after: "
                f"{sorted(missing)}",
            )
            pending_tool_uses = set()
        else:
            _expect(
                not pending_tool_uses,
                f"{where}: tool_use ids were found without tool_result blocks immediately after",
            )
            pending_tool_uses = {b["id"] for b in blocks if b["type"] == "tool_use"}
        _expect(
            tool_names or not any(b["type"] in ("tool_use", "tool_result") for b in blocks),
            "Requests which include `tool_use` or `tool_result` blocks must define tools.",
        )


def _block(block: Any, role: str, where: str) -> None:
    _expect(isinstance(block, dict), f"{where}: must be an object")
    kind = block.get("type")
    allowed = {
        "user": ("text", "image", "document", "tool_result"),
        "assistant": ("text", "tool_use", "thinking", "redacted_thinking"),
    }[role]
    _expect(kind in allowed, f"{where}.type: {kind!r} is not allowed in a {role} message")
    if kind == "text":
        _text_block(block, where)
    elif kind == "image":
        _only(block, {"type", "source", "cache_control"}, where)
        _image_source(block.get("source"), f"{where}.source")
    elif kind == "document":
        _only(block, {"type", "source", "title", "context", "citations", "cache_control"}, where)
        _document_source(block.get("source"), f"{where}.source")
    elif kind == "thinking":
        _only(block, {"type", "thinking", "signature"}, where)
        _expect(isinstance(block.get("thinking"), str), f"{where}.thinking: Field required")
        _expect(isinstance(block.get("signature"), str), f"{where}.signature: Field required")
    elif kind == "redacted_thinking":
        _only(block, {"type", "data"}, where)
        _expect(isinstance(block.get("data"), str), f"{where}.data: Field required")
    elif kind == "tool_use":
        _only(block, {"type", "id", "name", "input", "cache_control"}, where)
        _expect(
            isinstance(block.get("id"), str) and _TOOL_ID.match(block["id"]), f"{where}.id: invalid"
        )
        _expect(isinstance(block.get("name"), str), f"{where}.name: Field required")
        _expect(isinstance(block.get("input"), dict), f"{where}.input: must be an object")
    else:
        _only(block, {"type", "tool_use_id", "content", "is_error", "cache_control"}, where)
        _expect(isinstance(block.get("tool_use_id"), str), f"{where}.tool_use_id: Field required")
        content = block.get("content", "")
        if isinstance(content, list):
            for k, inner in enumerate(content):
                _expect(isinstance(inner, dict), f"{where}.content.{k}: must be an object")
                if inner.get("type") == "image":
                    _image_source(inner.get("source"), f"{where}.content.{k}.source")
                else:
                    _text_block(inner, f"{where}.content.{k}")
        else:
            _expect(isinstance(content, str), f"{where}.content: must be a string or a list")
        _expect(isinstance(block.get("is_error", False), bool), f"{where}.is_error: must be a bool")


def _text_block(block: Any, where: str) -> None:
    _expect(
        isinstance(block, dict) and block.get("type") == "text", f"{where}: must be a text block"
    )
    _only(block, {"type", "text", "cache_control", "citations"}, where)
    text = block.get("text")
    _expect(isinstance(text, str), f"{where}.text: Field required")
    _expect(text != "", f"{where}: text content blocks must be non-empty")


def _image_source(source: Any, where: str) -> None:
    _expect(isinstance(source, dict), f"{where}: Field required")
    kind = source.get("type")
    if kind == "base64":
        _only(source, {"type", "media_type", "data"}, where)
        _expect(source.get("media_type") in _MEDIA_TYPES, f"{where}.media_type: not supported")
        data = source.get("data")
        _expect(isinstance(data, str), f"{where}.data: Field required")
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise Invalid(f"{where}.data: invalid base64 data") from None
    elif kind == "url":
        _only(source, {"type", "url"}, where)
        url = source.get("url")
        _expect(isinstance(url, str) and url.startswith("https://"), f"{where}.url: must be https")
    else:
        raise Invalid(f"{where}.type: must be 'base64' or 'url'")


def _document_source(source: Any, where: str) -> None:
    _expect(isinstance(source, dict), f"{where}: Field required")
    kind = source.get("type")
    if kind == "text":
        _only(source, {"type", "media_type", "data"}, where)
        _expect(source.get("media_type") == "text/plain", f"{where}.media_type: must be text/plain")
        _expect(isinstance(source.get("data"), str), f"{where}.data: Field required")
    elif kind == "base64":
        _only(source, {"type", "media_type", "data"}, where)
        _expect(source.get("media_type") == "application/pdf", f"{where}.media_type: not supported")
        _expect(isinstance(source.get("data"), str), f"{where}.data: Field required")
    elif kind == "url":
        _only(source, {"type", "url"}, where)
        _expect(isinstance(source.get("url"), str), f"{where}.url: Field required")
    else:
        raise Invalid(f"{where}.type: must be 'text', 'base64' or 'url'")


def _thinking(thinking: Any, max_tokens: int) -> None:
    _expect(isinstance(thinking, dict), "thinking: must be an object")
    kind = thinking.get("type")
    if kind == "enabled":
        _only(thinking, {"type", "budget_tokens", "display"}, "thinking")
        budget = thinking.get("budget_tokens")
        _expect(_is_int(budget) and budget >= 1024, "thinking.budget_tokens: must be >= 1024")
        _expect(budget < max_tokens, "max_tokens: must be greater than thinking.budget_tokens")
    elif kind in ("disabled", "adaptive"):
        _only(thinking, {"type", "display"}, "thinking")
    else:
        raise Invalid("thinking.type: must be 'enabled', 'disabled' or 'adaptive'")


def _output_config(config: Any) -> None:
    _expect(isinstance(config, dict), "output_config: must be an object")
    _only(config, {"effort", "format"}, "output_config")
    effort = config.get("effort")
    _expect(
        effort in (None, "low", "medium", "high", "xhigh", "max"), "output_config.effort: invalid"
    )
    output_format = config.get("format")
    if output_format is not None:
        _expect(
            isinstance(output_format, dict)
            and output_format.get("type") == "json_schema"
            and isinstance(output_format.get("schema"), dict),
            "output_config.format: must be a json_schema format with a schema",
        )


def _tools(tools: Any) -> set[str]:
    if tools is None:
        return set()
    _expect(isinstance(tools, list), "tools: must be a list")
    names: set[str] = set()
    for i, tool in enumerate(tools):
        where = f"tools.{i}"
        _expect(isinstance(tool, dict), f"{where}: must be an object")
        if tool.get("type") not in (None, "custom"):
            _builtin_tool(tool, where, names)
            continue
        _only(
            tool, {"name", "description", "input_schema", "cache_control", "type", "strict"}, where
        )
        name = tool.get("name")
        _expect(isinstance(name, str) and _TOOL_NAME.match(name), f"{where}.name: invalid name")
        _expect(name not in names, f"tools: tool names must be unique ({name!r})")
        names.add(name)
        _expect(isinstance(tool.get("description", ""), str), f"{where}.description: not a string")
        schema = tool.get("input_schema")
        _expect(
            isinstance(schema, dict) and schema.get("type") == "object",
            f"{where}.input_schema.type: Input should be 'object'",
        )
    return names


def _builtin_tool(tool: dict[str, Any], where: str, names: set[str]) -> None:
    """One of Anthropic's own tools (`web_search_20250305`, `bash_20250124`...): a versioned
    type and a fixed name, no schema."""
    _expect(re.match(r"^[a-z_]+_\d{8}$", str(tool["type"])), f"{where}.type: unknown tool type")
    _expect(isinstance(tool.get("name"), str), f"{where}.name: Field required")
    _expect("input_schema" not in tool, f"{where}.input_schema: Extra inputs are not permitted")
    names.add(tool["name"])


def _tool_choice(choice: Any, names: set[str]) -> None:
    _expect(isinstance(choice, dict), "tool_choice: must be an object")
    kind = choice.get("type")
    if kind == "none":
        _only(choice, {"type"}, "tool_choice")
        return
    _expect(kind in ("auto", "any", "tool"), "tool_choice.type: must be auto, any, tool or none")
    _expect(names or kind == "auto", "tool_choice: requires tools")
    allowed = {"type", "disable_parallel_tool_use"} | ({"name"} if kind == "tool" else set())
    _only(choice, allowed, "tool_choice")
    _expect(
        isinstance(choice.get("disable_parallel_tool_use", False), bool),
        "tool_choice.disable_parallel_tool_use: must be a boolean",
    )
    if kind == "tool":
        _expect(choice.get("name") in names, "tool_choice.name: must name one of the tools")


def _only(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(obj) - allowed)
    _expect(not extra, f"{where}.{extra[0] if extra else ''}: Extra inputs are not permitted")


def _expect(condition: Any, message: str) -> None:
    if not condition:
        raise Invalid(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", default=FakeAnthropic().api_key)
    args = parser.parse_args()
    fake = FakeAnthropic(args.api_key)
    web.run_app(fake.app(), host="127.0.0.1", port=args.port, print=None, handler_cancellation=True)


if __name__ == "__main__":
    main()
