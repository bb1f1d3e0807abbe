"""A stand-in for a vLLM engine: a real HTTP server speaking vLLM's APIs on loopback.

It answers chat, completions and embeddings (JSON and SSE), and OpenAI's Responses and
Anthropic's Messages APIs as vLLM 0.32 serves them (its JSON bodies, its SSE events with
their `event:` lines, `sequence_number`s and usage, its error shapes). It exposes vLLM's
metric names on /metrics (gauges, token counters and latency histograms that move as it
serves) and /health, counts tokens on POST /tokenize (vLLM's shape, with a tokenizer of its
own: one token per 4-byte piece of each word, a chat template of 4 tokens per message plus 2
for the generation prompt), lists `max_model_len` in /v1/models, and accepts vLLM's
command-line flags, so the gateway can launch it in place of vLLM. Like vLLM, it requires the
key in `VLLM_API_KEY` (or `--api-key`) on /v1 when one is given. `--max-num-seqs` makes
requests beyond that many wait, and count as waiting, as in vLLM. Tests steer its faults
(on every API alike) through POST /_standin/mode and read what it saw from GET
/_standin/stats. The per-API answer and event encoders live in `standin_wire`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web
from standin_wire import ChatWire, Counts, MessagesWire, ResponsesWire, Wire

DEFAULT_MODE: dict[str, Any] = {
    "status": 200,  # answer every request with this status (an OpenAI error when >= 400)
    "plain_errors": False,  # errors as text/plain, as a server without the endpoint answers
    "echo_errors": False,  # errors quote the request's input back, as vLLM's validation does
    "chunks": 8,  # stream this many content chunks
    "chunk_delay_s": 0.0,  # wait between chunks
    "first_byte_delay_s": 0.0,  # wait before answering at all
    "cut_after_chunks": None,  # drop the connection after this many chunks
    "exit_after_chunks": None,  # kill the whole process after this many chunks
    "healthy": True,
    "usage": None,  # report this as `usage` (any JSON) instead of the real counts
}


#: KV-cache size in tokens: `vllm:kv_cache_usage_perc` is the in-flight tokens over this.
KV_CAPACITY_TOKENS = 65536
HISTOGRAMS = (
    "time_to_first_token_seconds",
    "request_queue_time_seconds",
    "inter_token_latency_seconds",
)


class Standin:
    def __init__(
        self,
        names: list[str],
        startup_delay_s: float,
        embeddings: bool,
        max_model_len: int = 2048,
        max_num_seqs: int | None = None,
        api_key: str | None = None,
    ) -> None:
        self.names = names
        self.api_key = api_key
        self.ready_at = time.monotonic() + startup_delay_s
        self.embeddings = embeddings
        self.max_model_len = max_model_len
        self.mode = dict(DEFAULT_MODE)
        self.stats = {
            "requests": 0,
            "active_streams": 0,
            "completed_streams": 0,
            "cancelled_streams": 0,
            "tokenize_requests": 0,
            "last_body": None,
            "unauthorized": 0,  # /v1 requests refused for a missing or wrong key
        }
        self.slots = asyncio.Semaphore(max_num_seqs) if max_num_seqs else None
        self.running = 0
        self.waiting = 0
        self.tokens_in_flight = 0
        self.prompt_tokens_total = 0
        self.generation_tokens_total = 0
        self.histograms = {name: [0.0, 0] for name in HISTOGRAMS}  # [sum, count]

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self.guard])
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/embeddings", self.embed)
        app.router.add_post("/v1/responses", self.responses)
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.health)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_post("/tokenize", self.tokenize)
        app.router.add_post("/_standin/mode", self.set_mode)
        app.router.add_get("/_standin/stats", self.get_stats)
        return app

    @web.middleware
    async def guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """vLLM's `--api-key`: /v1 needs `Authorization: Bearer <key>`; /health, /metrics and
        /tokenize stay open."""
        guarded = self.api_key and request.path.startswith("/v1")
        if guarded and request.headers.get("authorization") != f"Bearer {self.api_key}":
            self.stats["unauthorized"] += 1
            return web.json_response({"error": "Unauthorized"}, status=401)
        return await handler(request)

    # -- control ----------------------------------------------------------------------------

    async def set_mode(self, request: web.Request) -> web.Response:
        self.mode = {**DEFAULT_MODE, **(await request.json())}
        return web.json_response(self.mode)

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats)

    # -- engine surface ---------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        ok = time.monotonic() >= self.ready_at and self.mode["healthy"]
        return web.Response(status=200 if ok else 503)

    async def models(self, request: web.Request) -> web.Response:
        data = [
            {"id": n, "object": "model", "owned_by": "standin", "max_model_len": self.max_model_len}
            for n in self.names
        ]
        return web.json_response({"object": "list", "data": data})

    async def metrics(self, request: web.Request) -> web.Response:
        labels = f'engine="0",model_name="{self.names[0]}"'
        lines = [
            "# TYPE vllm:num_requests_running gauge",
            f"vllm:num_requests_running{{{labels}}} {float(self.running)}",
            "# TYPE vllm:num_requests_waiting gauge",
            f"vllm:num_requests_waiting{{{labels}}} {float(self.waiting)}",
            "# TYPE vllm:kv_cache_usage_perc gauge",
            f"vllm:kv_cache_usage_perc{{{labels}}} {self.tokens_in_flight / KV_CAPACITY_TOKENS}",
            "# TYPE vllm:prompt_tokens counter",
            f"vllm:prompt_tokens_total{{{labels}}} {float(self.prompt_tokens_total)}",
            "# TYPE vllm:generation_tokens counter",
            f"vllm:generation_tokens_total{{{labels}}} {float(self.generation_tokens_total)}",
        ]
        for name, (total, count) in self.histograms.items():
            lines += [
                f"# TYPE vllm:{name} histogram",
                f'vllm:{name}_bucket{{{labels},le="+Inf"}} {float(count)}',
                f"vllm:{name}_count{{{labels}}} {float(count)}",
                f"vllm:{name}_sum{{{labels}}} {total}",
            ]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    def observe(self, histogram: str, value: float) -> None:
        self.histograms[histogram][0] += value
        self.histograms[histogram][1] += 1

    @contextlib.asynccontextmanager
    async def slot(self, arrived: float, tokens: int) -> AsyncIterator[None]:
        """Hold one of `--max-num-seqs` running slots, waiting (and counted waiting) for one."""
        self.waiting += 1
        try:
            if self.slots is not None:
                await self.slots.acquire()
        finally:
            self.waiting -= 1
        self.observe("request_queue_time_seconds", time.monotonic() - arrived)
        self.running += 1
        self.tokens_in_flight += tokens
        try:
            yield
        finally:
            self.running -= 1
            self.tokens_in_flight -= tokens
            if self.slots is not None:
                self.slots.release()

    async def tokenize(self, request: web.Request) -> web.Response:
        self.stats["tokenize_requests"] += 1
        payload = await request.json()
        if payload.get("model", self.names[0]) not in self.names:
            return _error(404, f"The model `{payload.get('model')}` does not exist.")
        if "messages" in payload:
            if not payload["messages"]:
                return _error(400, "Cannot apply chat template to an empty conversation.")
            count = count_chat(payload["messages"], payload.get("add_generation_prompt", True))
        elif isinstance(payload.get("prompt"), str):
            count = count_prompt(payload["prompt"])
        else:
            return _error(400, "`prompt` (a string) or `messages` is required")
        return web.json_response(
            {
                "count": count,
                "max_model_len": self.max_model_len,
                "tokens": list(range(count)),
                "token_strs": None,
            }
        )

    async def _admit(
        self, request: web.Request, api: str = "chat"
    ) -> dict[str, Any] | web.Response:
        """The request's payload, or the error the mode (or an unknown model) calls for, in
        the shape vLLM gives errors on `api`'s route."""
        self.stats["requests"] += 1
        request["arrived"] = time.monotonic()
        body = await request.read()
        self.stats["last_body"] = body.decode()
        payload = orjson.loads(body)
        if self.mode["first_byte_delay_s"]:
            await asyncio.sleep(self.mode["first_byte_delay_s"])
        if payload.get("model") not in self.names:
            return _error(404, f"The model `{payload.get('model')}` does not exist.", api)
        if self.mode["status"] >= 400:
            if self.mode["plain_errors"]:
                return web.Response(status=self.mode["status"], text="Not Found")
            if self.mode["echo_errors"]:
                echoed = {"type": "value_error", "loc": ["body"], "input": payload}
                return _error(self.mode["status"], f"1 validation error:\n  {echoed}", api)
            return _error(self.mode["status"], "stand-in told to fail", api)
        return payload

    async def chat(self, request: web.Request) -> web.StreamResponse:
        payload = await self._admit(request)
        if isinstance(payload, web.Response):
            return payload
        last = payload["messages"][-1].get("content", "")
        wire = ChatWire(payload, chat=True)
        return await self._answer(request, payload, f"You said: {last}", wire)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        payload = await self._admit(request)
        if isinstance(payload, web.Response):
            return payload
        wire = ChatWire(payload, chat=False)
        return await self._answer(request, payload, f" and then {payload['prompt']}", wire)

    async def responses(self, request: web.Request) -> web.StreamResponse:
        payload = await self._admit(request, "responses")
        if isinstance(payload, web.Response):
            return payload
        text = f"You said: {_last_text(payload.get('input'))}"
        wire = ResponsesWire(payload, self.max_model_len)
        return await self._answer(request, payload, text, wire)

    async def messages(self, request: web.Request) -> web.StreamResponse:
        payload = await self._admit(request, "messages")
        if isinstance(payload, web.Response):
            return payload
        text = f"You said: {_last_text(payload.get('messages'))}"
        return await self._answer(request, payload, text, MessagesWire(payload))

    async def embed(self, request: web.Request) -> web.Response:
        payload = await self._admit(request)
        if isinstance(payload, web.Response):
            return payload
        if not self.embeddings:
            return _error(404, "The model does not support the Embeddings API")
        inputs = payload["input"] if isinstance(payload["input"], list) else [payload["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [len(str(x)) / 10.0, 0.5, -0.25]}
            for i, x in enumerate(inputs)
        ]
        usage = {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}
        return web.json_response(
            {"object": "list", "data": data, "model": payload["model"], "usage": usage}
        )

    async def _answer(
        self, request: web.Request, payload: dict[str, Any], text: str, wire: Wire
    ) -> web.StreamResponse:
        prompt_tokens = len(orjson.dumps(wire.prompt()).split())
        words = text.split(" ")
        async with self.slot(request["arrived"], prompt_tokens + len(words)):
            self.prompt_tokens_total += prompt_tokens
            return await self._respond(request, payload, text, wire, prompt_tokens, len(words))

    async def _respond(
        self,
        request: web.Request,
        payload: dict[str, Any],
        text: str,
        wire: Wire,
        prompt_tokens: int,
        output_tokens: int,
    ) -> web.StreamResponse:
        counts = Counts(prompt_tokens, output_tokens, self.mode["usage"])
        if not payload.get("stream"):
            self.observe("time_to_first_token_seconds", time.monotonic() - request["arrived"])
            self.generation_tokens_total += output_tokens
            return web.json_response(wire.whole(text, counts))
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        self.stats["active_streams"] += 1
        pieces = _split(text, self.mode["chunks"])
        last_token_at = 0.0
        try:
            for event in wire.opening(counts):
                await resp.write(event)
            for i, piece in enumerate(pieces):
                if self.mode["cut_after_chunks"] == i:
                    assert request.transport is not None
                    request.transport.abort()
                    return resp
                if self.mode["exit_after_chunks"] == i:
                    os._exit(3)
                for event in wire.piece(piece):
                    await resp.write(event)
                # Each chunk stands for one generated token in the metrics.
                now = time.monotonic()
                if i == 0:
                    self.observe("time_to_first_token_seconds", now - request["arrived"])
                else:
                    self.observe("inter_token_latency_seconds", now - last_token_at)
                last_token_at = now
                self.generation_tokens_total += 1
                if self.mode["chunk_delay_s"]:
                    await asyncio.sleep(self.mode["chunk_delay_s"])
            for event in wire.closing(text, counts):
                await resp.write(event)
            await resp.write_eof()
            self.stats["completed_streams"] += 1
        except (ConnectionResetError, asyncio.CancelledError):
            self.stats["cancelled_streams"] += 1
            raise
        finally:
            self.stats["active_streams"] -= 1
        return resp


def count_prompt(text: str) -> int:
    """The stand-in's tokenizer: one token per 4-byte piece of each whitespace-split word."""
    return sum(-(-len(word.encode()) // 4) for word in text.split())


def count_chat(messages: list[dict[str, Any]], add_generation_prompt: bool) -> int:
    """The stand-in's chat template: 4 tokens around each message, 2 for the assistant cue."""
    total = 2 if add_generation_prompt else 0
    for message in messages:
        content = message.get("content") or ""
        if isinstance(content, list):
            content = "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
        total += 4 + count_prompt(content)
    return total


def _split(text: str, n: int) -> list[str]:
    size = max(1, -(-len(text) // max(1, n)))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _last_text(turns: Any) -> str:
    """The text of the last turn of a Responses `input` (a string or items) or of a Messages
    `messages` list, whose content is a string or a list of text parts."""
    if not isinstance(turns, list):
        return str(turns or "")
    content = turns[-1].get("content", "") if turns and isinstance(turns[-1], dict) else ""
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


#: vLLM's error `type` for a status (its `create_error_response`).
_ERROR_TYPES = {404: "NotFoundError", 500: "InternalServerError", 503: "ServiceUnavailableError"}


def _error(status: int, message: str, api: str = "chat") -> web.Response:
    """An error as vLLM answers it on `api`'s route: chat and completions in the stand-in's
    long-standing `{"object": "error"}` shape, Responses in vLLM's `{"error": {...}}`,
    Messages in Anthropic's `{"type": "error", "error": {...}}`."""
    kind = _ERROR_TYPES.get(status, "BadRequestError")
    body: dict[str, Any]
    if api == "responses":
        body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
    elif api == "messages":
        body = {"type": "error", "error": {"type": kind, "message": message}}
    else:
        body = {"object": "error", "message": message, "type": "BadRequestError", "code": status}
    return web.json_response(body, status=status)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="standin")
    parser.add_argument("--served-model-name", nargs="+", default=None)
    parser.add_argument("--startup-delay", type=float, default=0.0)
    parser.add_argument("--embeddings", action="store_true")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--max-num-seqs", type=int, default=None)
    parser.add_argument("--api-key", default=os.environ.get("VLLM_API_KEY"))
    args, _vllm_flags = parser.parse_known_args()
    standin = Standin(
        args.served_model_name or [args.model],
        args.startup_delay,
        args.embeddings,
        max_model_len=args.max_model_len,
        max_num_seqs=args.max_num_seqs,
        api_key=args.api_key,
    )
    web.run_app(standin.app(), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
