"""A fake Google AI Gemini API: a real aiohttp server on 127.0.0.1 speaking the documented wire.

`POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent?alt=sse`, the key
in `x-goog-api-key`. Every request is checked against the documented request schema
(`gemini_wire.request_problems`); a bad one gets Gemini's own 400 INVALID_ARGUMENT. Answers
are `GenerateContentResponse` objects, streamed as `data:` events ending in CRLF CRLF as
Gemini sends them. Tests queue answers with `answer()`, inject faults with `fail()`, and
read what arrived in `received`. Run as a script (`--port`), it is steered over HTTP
instead: POST /_fake/answer, POST /_fake/fault, GET /_fake/received, POST /_fake/reset.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import sys
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

if __package__ in (None, ""):  # run as a script: make `fakes` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakes.gemini_wire import error_body, request_problems

DEFAULT_KEY = "fake-gemini-key-3f9a"


@dataclass
class Fault:
    status: int | None = None  # answer with this HTTP status and its google.rpc status
    status_name: str = "INTERNAL"
    retry_after: str | None = None  # a retry-after header on the error answer
    first_byte_delay_s: float = 0.0  # wait this long before answering at all
    cut_after_chunks: int | None = None  # drop the connection after this many stream events
    malformed_after_chunks: int | None = None  # then send an event that is not JSON
    error_after_chunks: int | None = None  # then send an `error` event and stop
    times: int = 1_000_000  # how many requests the fault hits before it clears
    message: str = "injected fault"  # the error answer's message
    raw_body: bytes | None = None  # answer 200 with these bytes as the JSON body, as they are


@dataclass
class Received:
    model: str
    action: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    version: str = ""  # the API version in the path: v1beta or v1
    problems: list[str] = field(default_factory=list)


class FakeGemini:
    def __init__(self, api_key: str = DEFAULT_KEY) -> None:
        self.api_key = api_key
        self.received: list[Received] = []
        self.fault: Fault | None = None
        self._answers: deque[tuple[dict[str, Any], list[dict[str, Any]] | None]] = deque()
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- steering ----------------------------------------------------------------------------

    def answer(self, response: dict[str, Any], chunks: list[dict[str, Any]] | None = None) -> None:
        """Queue the next answer: `response` when not streamed, `chunks` (or `response` cut
        into chunks) when streamed."""
        self._answers.append((response, chunks))

    def fail(self, **fault: Any) -> None:
        self.fault = Fault(**fault)

    def reset(self) -> None:
        self.received.clear()
        self._answers.clear()
        self.fault = None

    # -- lifecycle ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/{version}/models/{target}", self.handle)
        app.router.add_post("/_fake/answer", self._http_answer)
        app.router.add_post("/_fake/fault", self._http_fault)
        app.router.add_post("/_fake/reset", self._http_reset)
        app.router.add_get("/_fake/received", self._http_received)
        return app

    async def start(self, port: int = 0) -> str:
        self._runner = web.AppRunner(self.app())
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{bound}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- the Gemini surface ------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        model, _, action = request.match_info["target"].partition(":")
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        seen = Received(
            model=model,
            action=action,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            version=request.match_info["version"],
        )
        self.received.append(seen)
        fault = self._take_fault()
        if fault and fault.first_byte_delay_s:
            await asyncio.sleep(fault.first_byte_delay_s)

        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if key is None:
            return _error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers.")
        if key != self.api_key:
            return _error(
                400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."
            )
        if request.match_info["version"] not in ("v1beta", "v1") or action not in (
            "generateContent",
            "streamGenerateContent",
        ):
            return _error(404, "NOT_FOUND", f"{request.path} is not found.")
        if body is None:
            return _error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        seen.problems = request_problems(body)
        if action == "streamGenerateContent" and request.query.get("alt") != "sse":
            seen.problems.append("this fake serves the stream as SSE only: add ?alt=sse")
        if seen.problems:
            return _error(400, "INVALID_ARGUMENT", "; ".join(seen.problems))
        if fault and fault.status:
            headers = {"retry-after": fault.retry_after} if fault.retry_after else {}
            details = (
                [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]
                if fault.status == 429
                else None
            )
            return _error(fault.status, fault.status_name, fault.message, details, headers)
        if fault and fault.raw_body is not None:
            return web.Response(body=fault.raw_body, content_type="application/json")

        response, chunks = self._next_answer(model, body)
        if action == "generateContent":
            return web.json_response(response, dumps=lambda o: orjson.dumps(o).decode())
        return await self._stream(request, chunks or split_into_chunks(response), fault)

    async def _stream(
        self, request: web.Request, chunks: list[dict[str, Any]], fault: Fault | None
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for sent, chunk in enumerate(chunks):
            if fault and fault.cut_after_chunks == sent:
                assert request.transport is not None
                request.transport.close()  # mid-body: the client sees an unfinished answer
                return resp
            if fault and fault.malformed_after_chunks == sent:
                await resp.write(b'data: {"candidates": [{"content": \r\n\r\n')
                break
            if fault and fault.error_after_chunks == sent:
                error = error_body(503, "UNAVAILABLE", "The model is overloaded.")
                await resp.write(b"data: " + orjson.dumps(error) + b"\r\n\r\n")
                break
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\r\n\r\n")
        await resp.write_eof()
        return resp

    def _take_fault(self) -> Fault | None:
        fault = self.fault
        if fault is None:
            return None
        fault.times -= 1
        if fault.times <= 0:
            self.fault = None
        return fault

    def _next_answer(
        self, model: str, body: dict[str, Any]
    ) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
        if self._answers:
            return self._answers.popleft()
        count = (body.get("generationConfig") or {}).get("candidateCount", 1)
        candidates = [
            {
                "content": {"role": "model", "parts": [{"text": "Hello from the fake Gemini."}]},
                "finishReason": "STOP",
                "index": i,
            }
            for i in range(count)
        ]
        return {
            "candidates": candidates,
            "usageMetadata": {
                "promptTokenCount": 5,
                "candidatesTokenCount": 6 * count,
                "totalTokenCount": 5 + 6 * count,
            },
            "modelVersion": model,
            "responseId": os.urandom(8).hex(),
        }, None

    # -- steering over HTTP, for a fake run as its own process --------------------------------

    async def _http_answer(self, request: web.Request) -> web.Response:
        spec = await request.json()
        self.answer(spec["response"], spec.get("chunks"))
        return web.json_response({"queued": len(self._answers)})

    async def _http_fault(self, request: web.Request) -> web.Response:
        self.fail(**(await request.json()))
        return web.json_response(asdict(self.fault) if self.fault else {})

    async def _http_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({})

    async def _http_received(self, request: web.Request) -> web.Response:
        return web.json_response([asdict(r) for r in self.received])


def split_into_chunks(response: dict[str, Any]) -> list[dict[str, Any]]:
    """Cut a whole answer into stream events the way Gemini streams it: text in pieces,
    each function call whole, the finish reason and full usage on a candidate's last event."""
    chunks: list[dict[str, Any]] = []
    envelope = {k: response[k] for k in ("modelVersion", "responseId") if k in response}
    candidates = response.get("candidates") or []
    for position, candidate in enumerate(candidates):
        pieces: list[dict[str, Any]] = []
        for part in (candidate.get("content") or {}).get("parts") or []:
            text = part.get("text")
            if isinstance(text, str) and len(text) > 1 and not part.get("thought"):
                half = len(text) // 2
                pieces += [{**part, "text": text[:half]}, {**part, "text": text[half:]}]
            else:
                pieces.append(part)
        for k, piece in enumerate(pieces or [None]):
            streamed: dict[str, Any] = {"index": candidate.get("index", position)}
            if piece is not None:
                streamed["content"] = {"role": "model", "parts": [copy.deepcopy(piece)]}
            last = k == max(len(pieces), 1) - 1
            if last and "finishReason" in candidate:
                streamed["finishReason"] = candidate["finishReason"]
            chunk = {"candidates": [streamed], **envelope}
            if last and position == len(candidates) - 1 and "usageMetadata" in response:
                chunk["usageMetadata"] = response["usageMetadata"]
            chunks.append(chunk)
    if not candidates:  # a blocked prompt: one event with promptFeedback
        chunks.append(copy.deepcopy(response))
    return chunks


def _error(
    status: int,
    name: str,
    message: str,
    details: list[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(error_body(status, name, message, details)),
        content_type="application/json",
        headers=headers or {},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", default=DEFAULT_KEY)
    args = parser.parse_args()
    fake = FakeGemini(args.api_key)
    web.run_app(fake.app(), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
