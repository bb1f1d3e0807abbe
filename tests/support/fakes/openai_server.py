"""A fake OpenAI-compatible provider: a real aiohttp server on loopback, in a thread.

Three dialects, as the real services differ:
- `openai`: POST /v1/chat/completions, /v1/completions, /v1/embeddings and /v1/responses,
  `Authorization: Bearer KEY`; a chat request is checked against OpenAI's documented
  schema, a Responses request against the spec's `CreateResponse` (see openai_schema.py),
  and answered as openai_responses_wire.py writes it;
  streams are OpenAI's chunks (role, content or tool-call deltas, finish, the usage chunk
  when `stream_options.include_usage`, `[DONE]`).
- `azure`: POST /openai/deployments/{deployment}/chat/completions (and /embeddings)
  ?api-version=...,
  `api-key: KEY`; answers carry content-filter results and streams open with the
  choiceless `prompt_filter_results` chunk, as Azure's do.
- `mistral`: POST /v1/chat/completions with Mistral's schema (422 on unknown fields,
  nine-character tool-call ids); streams put usage on the last chunk, tool calls whole.

The fake "model" is deterministic so tests can assert on it: with tools it calls them
(the first two in parallel unless told not to, or the one `tool_choice` names), with a
JSON response_format it answers JSON, otherwise it says what it saw:
"fake answer: W words, I images, T tool results". Faults are queued per request with
`fail_next(...)`; everything received is kept in `requests`.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from fakes.openai_responses_wire import ResponsesTurn, sse_event
from fakes.openai_schema import check_mistral, check_openai, check_openai_responses, openai_error


@dataclass
class Fault:
    """What to do to one request instead of answering it well."""

    status: int | None = None  # answer this error status
    headers: dict[str, str] = field(default_factory=dict)  # e.g. {"retry-after": "1"}
    first_byte_delay_s: float = 0.0  # wait this long before the response headers
    cut_after_chunks: int | None = None  # drop the connection after this many stream events
    malformed_after_chunks: int | None = None  # then send an event that is not JSON
    error_event_after_chunks: int | None = None  # then send an `error` event
    chunk_delay_s: float = 0.0  # between stream events
    extra_words: int = 0  # make the answer this many words longer (a long, slow stream)
    usage: Any = None  # report this as `usage` instead of the real counts (any JSON)
    omit_usage: bool = False  # report no usage: no `usage` field, no usage chunk
    whole_for_stream: bool = False  # answer a stream request with a whole JSON answer
    echo_request: bool = False  # the error's message quotes the key and the prompt back
    raw_body: bytes | None = None  # answer 200 with these bytes as the JSON body, as they are


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]


class FakeOpenAIServer:
    def __init__(self, dialect: str = "openai", api_key: str = "sk-fake-key") -> None:
        assert dialect in ("openai", "azure", "mistral")
        self.dialect = dialect
        self.api_key = api_key
        self.cached_tokens = 0
        self.requests: list[Received] = []
        self.rejected: list[dict[str, Any]] = []  # schema errors answered (status, body)
        self.cancelled_streams = 0
        self.completed_streams = 0
        #: Requests whose caller hung up while the fake was still thinking (first_byte_delay_s).
        self.abandoned = 0
        self._faults: collections.deque[Fault] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- control (from the test's thread) --------------------------------------------------

    @property
    def base_url(self) -> str:
        root = f"http://127.0.0.1:{self.port}"
        return root if self.dialect == "azure" else f"{root}/v1"

    def fail_next(self, *faults: Fault) -> None:
        self._faults.extend(faults)

    def reset(self) -> None:
        self._faults.clear()
        self.requests.clear()
        self.rejected.clear()
        self.cancelled_streams = self.completed_streams = self.abandoned = 0
        self.cached_tokens = 0

    def start(self) -> FakeOpenAIServer:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._runner = web.AppRunner(self._app(), handle_signals=False)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"fake-{self.dialect}", daemon=True)
        self._thread.start()
        assert ready.wait(10), "the fake provider did not start"
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the provider ------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        if self.dialect == "azure":
            app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._chat)
            app.router.add_post("/openai/deployments/{deployment}/embeddings", self._embeddings)
        else:
            app.router.add_post("/v1/chat/completions", self._chat)
            app.router.add_post("/v1/completions", self._completions)
            app.router.add_post("/v1/embeddings", self._embeddings)
            app.router.add_post("/v1/responses", self._responses)
        return app

    def _authorised(self, request: web.Request) -> bool:
        if self.dialect == "azure":
            return request.headers.get("api-key") == self.api_key
        return request.headers.get("authorization") == f"Bearer {self.api_key}"

    async def _admit(self, request: web.Request) -> tuple[dict[str, Any], Fault] | web.Response:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _json(*openai_error("We could not parse the JSON body of your request."))
        self.requests.append(
            Received(request.path, dict(request.query), dict(request.headers), body)
        )
        fault = self._faults.popleft() if self._faults else Fault()
        if fault.first_byte_delay_s:
            await asyncio.sleep(fault.first_byte_delay_s)
            if request.transport is None or request.transport.is_closing():
                self.abandoned += 1
        if not self._authorised(request):
            # Real providers echo (part of) the key they were given: the gateway must not.
            given = request.headers.get("authorization") or request.headers.get("api-key")
            return _json(401, openai_error(f"Incorrect API key provided: {given}.")[1])
        if self.dialect == "azure" and "api-version" not in request.query:
            return _json(*openai_error("Missing required query parameter: api-version"))
        if fault.status is not None:
            message = _echo(request, body) if fault.echo_request else "fake told to fail"
            body_ = {"error": {"message": message, "type": "server_error"}}
            return _json(fault.status, body_, fault.headers)
        if fault.raw_body is not None:
            return web.Response(body=fault.raw_body, content_type="application/json")
        return body, fault

    async def _embeddings(self, request: web.Request) -> web.Response:
        admitted = await self._admit(request)
        if isinstance(admitted, web.Response):
            return admitted
        body, _ = admitted
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [0.1 * (i + 1), 0.2, -0.3]}
            for i in range(len(inputs))
        ]
        tokens = sum(len(str(x).split()) for x in inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return _json(200, {"object": "list", "data": data, "model": body["model"], "usage": usage})

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        """Legacy completions, as OpenAI serves them for its instruct models: one text choice,
        whole or as `text_completion` chunks (the usage chunk when asked, then `[DONE]`)."""
        admitted = await self._admit(request)
        if isinstance(admitted, web.Response):
            return admitted
        body, _ = admitted
        if not isinstance(body.get("prompt"), str | list):
            return _json(*openai_error("'prompt' is a required property", "prompt"))
        words = len(str(body["prompt"]).split())
        text = f"fake completion of {words} words"
        head = {
            "id": f"cmpl-{uuid.uuid4().hex[:20]}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body["model"],
        }
        usage = {"prompt_tokens": words, "completion_tokens": 4, "total_tokens": words + 4}
        choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
        if not body.get("stream"):
            return _json(200, {**head, "choices": [choice], "usage": usage})
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(_sse({**head, "choices": [{**choice, "finish_reason": None}]}))
        await resp.write(_sse({**head, "choices": [{**choice, "text": ""}]}))
        if (body.get("stream_options") or {}).get("include_usage"):
            await resp.write(_sse({**head, "choices": [], "usage": usage}))
        await resp.write(_sse("[DONE]"))
        await resp.write_eof()
        return resp

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        admitted = await self._admit(request)
        if isinstance(admitted, web.Response):
            return admitted
        body, fault = admitted
        problem = check_mistral(body) if self.dialect == "mistral" else check_openai(body)
        if problem is not None:
            self.rejected.append({"status": problem[0], "body": problem[1]})
            return _json(*problem)
        turn = _Turn(body, self.dialect, self.cached_tokens, fault.extra_words)
        turn.usage_as_sent, turn.omit_usage = fault.usage, fault.omit_usage
        if body.get("stream") and not fault.whole_for_stream:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return await self._stream(request, turn.chunks(include_usage), fault)
        return _json(200, turn.completion(request.match_info.get("deployment")))

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        """The Responses API: checked against the spec, the fake's answer whole or streamed;
        the same faults as chat (an `error` event in the Responses API's shape)."""
        admitted = await self._admit(request)
        if isinstance(admitted, web.Response):
            return admitted
        body, fault = admitted
        problem = check_openai_responses(body)
        if problem is not None:
            self.rejected.append({"status": problem[0], "body": problem[1]})
            return _json(*problem)
        turn = ResponsesTurn(body, fault.usage, fault.omit_usage)
        if body.get("stream") and not fault.whole_for_stream:
            error = {"type": "error", "code": "server_error", "message": "The server had an error",
                     "param": None, "sequence_number": 0}  # fmt: skip
            return await self._stream(request, turn.events(), fault, sse_event(error))
        return _json(200, turn.response())

    async def _stream(
        self,
        request: web.Request,
        events: list[bytes],
        fault: Fault,
        error_event: bytes = b"data: "
        + orjson.dumps({"error": {"message": "The server had an error", "type": "server_error"}})
        + b"\n\n",
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        try:
            for n, chunk in enumerate(events):
                if n == fault.cut_after_chunks:
                    assert request.transport is not None
                    request.transport.close()
                    return resp
                if n == fault.malformed_after_chunks:
                    await resp.write(b'data: {"id": "chatcmpl-broken", "choices": [\n\n')
                    await resp.write_eof()
                    return resp
                if n == fault.error_event_after_chunks:
                    await resp.write(error_event)
                    await resp.write_eof()
                    return resp
                if fault.chunk_delay_s and n:
                    await asyncio.sleep(fault.chunk_delay_s)
                await resp.write(chunk)
            await resp.write_eof()
            self.completed_streams += 1
        except (ConnectionResetError, asyncio.CancelledError):
            self.cancelled_streams += 1
            raise
        return resp


def _echo(request: web.Request, body: dict[str, Any]) -> str:
    """What careless servers answer: the key they were sent, and the input in pydantic's words."""
    given = request.headers.get("authorization") or request.headers.get("api-key")
    content = (body.get("messages") or [{}])[-1].get("content")
    return (
        f"Request with key {given} failed: 1 validation error for ChatCompletionRequest\n"
        f"messages.0.content\n  Value error [type=value_error, input_value={content!r}, "
        "input_type=str]"
    )


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else orjson.dumps(payload)
    return b"data: " + data + b"\n\n"


class _Turn:
    """The fake model's one answer to a request, whole or as stream chunks."""

    def __init__(self, body: dict[str, Any], dialect: str, cached: int, extra_words: int) -> None:
        self.body = body
        self.dialect = dialect
        self.id = f"chatcmpl-{uuid.uuid4().hex[:20]}" if dialect != "mistral" else uuid.uuid4().hex
        self.created = int(time.time())
        self.model = body["model"]
        self.tool_calls = self._tool_calls()
        self.content, self.finish = self._content(extra_words)
        self.prompt_tokens = self._prompt_tokens()
        self.cached = min(cached, self.prompt_tokens)
        if self.tool_calls:
            self.completion_tokens = 10 * len(self.tool_calls)
        else:
            self.completion_tokens = len((self.content or "").split())
        self.usage_as_sent: Any = None
        self.omit_usage = False

    # -- the "model" -------------------------------------------------------------------------

    def _tool_calls(self) -> list[dict[str, Any]]:
        tools = self.body.get("tools") or []
        choice = self.body.get("tool_choice", "auto")
        messages = self.body["messages"]
        if not tools or choice == "none" or messages[-1].get("role") == "tool":
            return []
        # Only function tools are called (a custom tool's call has another shape).
        tools = [t for t in tools if isinstance(t.get("function"), dict)]
        if isinstance(choice, dict):
            named = (choice.get("function") or {}).get("name")
            tools = [t for t in tools if t["function"].get("name") == named]
        parallel = self.body.get("parallel_tool_calls", True) is not False
        calls = []
        for tool in tools[: 2 if parallel else 1]:
            params = tool["function"].get("parameters") or {}
            args = {name: _sample(spec) for name, spec in params.get("properties", {}).items()}
            call_id = (
                uuid.uuid4().hex[:9]
                if self.dialect == "mistral"
                else f"call_{uuid.uuid4().hex[:24]}"
            )
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {
                        "name": tool["function"]["name"],
                        "arguments": orjson.dumps(args).decode(),
                    },
                }
            )
        return calls

    def _content(self, extra_words: int) -> tuple[str | None, str]:
        if self.tool_calls:
            return None, "tool_calls"
        fmt = self.body.get("response_format") or {}
        if fmt.get("type") == "json_object":
            text = '{"answer": "fake"}'
        elif fmt.get("type") == "json_schema":
            schema = fmt["json_schema"].get("schema", {})
            text = orjson.dumps(_sample(schema)).decode()
        else:
            words, images, results = self._seen()
            text = f"fake answer: {words} words, {images} images, {results} tool results"
            text += "".join(f" more{i}" for i in range(extra_words))
        stop = self.body.get("stop")
        for marker in [stop] if isinstance(stop, str) else stop or []:
            if marker in text:
                return text[: text.index(marker)], "stop"
        limit = self.body.get("max_completion_tokens") or self.body.get("max_tokens")
        if limit is not None and len(text.split()) > limit:
            return " ".join(text.split()[:limit]), "length"
        return text, "stop"

    def _seen(self) -> tuple[int, int, int]:
        words = images = results = 0
        for message in self.body["messages"]:
            content = message.get("content")
            if message.get("role") == "tool":
                results += 1
            parts = (
                content if isinstance(content, list) else [{"type": "text", "text": content or ""}]
            )
            for part in parts:
                if part.get("type") == "text":
                    words += len(part["text"].split())
                elif part.get("type") == "image_url":
                    images += 1
        return words, images, results

    def _prompt_tokens(self) -> int:
        words, images, _ = self._seen()
        return words + 85 * images + 4 * len(self.body["messages"])

    def _usage(self) -> Any:
        if self.usage_as_sent is not None:
            return self.usage_as_sent
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        if self.dialect != "mistral":
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached, "audio_tokens": 0}
            usage["completion_tokens_details"] = {"reasoning_tokens": 0, "audio_tokens": 0}
        return usage

    # -- whole answer ------------------------------------------------------------------------

    def completion(self, deployment: str | None) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.dialect != "mistral":
            message["refusal"] = None
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        choices = []
        for i in range(self.body.get("n") or 1):
            choice: dict[str, Any] = {"index": i, "message": message, "finish_reason": self.finish}
            if self.dialect != "mistral":
                choice["logprobs"] = None
            if self.dialect == "azure":
                choice["content_filter_results"] = _FILTER_RESULTS
            choices.append(choice)
        answer: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": self._usage(),
        }
        if self.omit_usage:
            del answer["usage"]
        if self.dialect == "openai":
            answer["system_fingerprint"] = "fp_fake"
            answer["service_tier"] = "default"
        if self.dialect == "azure":
            answer["model"] = "gpt-4o-mini-2024-07-18"  # Azure names the model, not the deployment
            answer["prompt_filter_results"] = [
                {"prompt_index": 0, "content_filter_results": _FILTER_RESULTS}
            ]
        return answer

    # -- stream ------------------------------------------------------------------------------

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }
        if self.dialect == "openai":
            chunk["system_fingerprint"] = "fp_fake"
        return chunk

    def chunks(self, include_usage: bool) -> list[bytes]:
        out: list[bytes] = []
        if self.dialect == "azure":
            out.append(
                _sse(
                    {
                        "id": "",
                        "object": "",
                        "created": 0,
                        "model": "",
                        "choices": [],
                        "prompt_filter_results": [
                            {"prompt_index": 0, "content_filter_results": _FILTER_RESULTS}
                        ],
                    }
                )
            )
        include_usage = include_usage and not self.omit_usage
        marked = {"usage": None} if include_usage and self.dialect != "mistral" else {}
        n = self.body.get("n") or 1
        for i in range(n):
            role = {"role": "assistant", "content": ""}
            if self.dialect != "mistral":
                role["refusal"] = None
            out.append(_sse(self._chunk([self._delta(i, role)], **marked)))
        for i, piece in itertools.product(range(n), self._pieces()):
            out.append(_sse(self._chunk([self._delta(i, piece)], **marked)))
        for i in range(n):
            last = self._delta(i, {}, self.finish)
            if self.dialect == "mistral" and i == n - 1 and not self.omit_usage:
                out.append(_sse(self._chunk([last], usage=self._usage())))
            else:
                out.append(_sse(self._chunk([last], **marked)))
        if include_usage and self.dialect != "mistral":
            out.append(_sse(self._chunk([], usage=self._usage())))
        out.append(_sse("[DONE]"))
        return out

    def _delta(self, i: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": i, "delta": delta, "finish_reason": finish}
        if self.dialect != "mistral":
            choice["logprobs"] = None
        return choice

    def _pieces(self) -> list[dict[str, Any]]:
        if not self.tool_calls:
            words = (self.content or "").split(" ")
            return [{"content": w if k == 0 else f" {w}"} for k, w in enumerate(words)]
        if self.dialect == "mistral":  # Mistral sends each call whole, without an index
            return [{"content": "", "tool_calls": [call]} for call in self.tool_calls]
        pieces = []
        for k, call in enumerate(self.tool_calls):
            args = call["function"]["arguments"]
            head = {
                "index": k,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            pieces.append({"tool_calls": [head]})
            half = len(args) // 2
            for fragment in (args[:half], args[half:]):
                pieces.append({"tool_calls": [{"index": k, "function": {"arguments": fragment}}]})
        return pieces


_FILTER_RESULTS = {
    "hate": {"filtered": False, "severity": "safe"},
    "self_harm": {"filtered": False, "severity": "safe"},
    "sexual": {"filtered": False, "severity": "safe"},
    "violence": {"filtered": False, "severity": "safe"},
}


def _sample(schema: dict[str, Any]) -> Any:
    """A value that fits a (simple) JSON schema."""
    kind = schema.get("type")
    if kind == "object":
        return {name: _sample(spec) for name, spec in schema.get("properties", {}).items()}
    if kind == "array":
        return [_sample(schema.get("items", {}))]
    if "enum" in schema:
        return schema["enum"][0]
    return {"integer": 1, "number": 1.5, "boolean": True}.get(str(kind), "Paris")
