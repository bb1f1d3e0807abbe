"""A fake of Anthropic's Messages API: a real aiohttp server on a random loopback port.

It checks each request against the documented `POST /v1/messages` schema (headers, fields,
roles, content blocks, tools, tool_choice, thinking, output_config: the checks live in
`anthropic_wire`), every field a Messages client may send included (the gateway passes
/v1/messages through as it is), and answers in the documented shapes: a `message` object,
or the documented SSE sequence (`message_start`, `content_block_start`, `ping`,
`content_block_delta`..., `content_block_stop`, `message_delta`, `message_stop`).
Errors come as `{"type": "error", "error": {"type", "message"}, "request_id"}`.

Tests script it: `answer(Reply(...))` queues an answer, `fail(Fault(...))` queues a fault,
and `received` records every request (headers and parsed body) as it arrived. Run as a
script (`--port`), it is steered over HTTP instead: POST /_fake/answer (a `Reply` as JSON),
POST /_fake/fault (a `Fault`, its `reply` nested), GET /_fake/received, POST /_fake/reset.
`check_headers`, `check_body` and `Invalid` are importable from here as before.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

if __package__ in (None, ""):  # run as a script: make `fakes` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakes.anthropic_wire import Invalid, check_body, check_headers

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", default=FakeAnthropic().api_key)
    args = parser.parse_args()
    fake = FakeAnthropic(args.api_key)
    web.run_app(fake.app(), host="127.0.0.1", port=args.port, print=None, handler_cancellation=True)


if __name__ == "__main__":
    main()
