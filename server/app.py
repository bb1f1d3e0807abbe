"""The HTTP front: OpenAI-compatible endpoints, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from spillgate import __version__
from spillgate.errors import GatewayError, UpstreamError
from spillgate.protocol import Backend, Endpoint, UpstreamReply, UpstreamRequest
from spillgate.server.accounting import RequestState
from spillgate.server.admin import admin_router
from spillgate.server.gateway import Gateway
from spillgate.server.relay import StreamRelay
from spillgate.server.requests import parse, read_body
from spillgate.server.scheduler import Decision, Reason, RequestFeatures, decide
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

log = logging.getLogger("spillgate.server")


def _error_response(err: GatewayError, request_id: str, route: str = "none") -> Response:
    headers = {"x-request-id": request_id, "x-spillgate-route": route, **err.headers()}
    return Response(err.body(), err.status, headers=headers, media_type="application/json")


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id")
    if given and len(given) <= 128 and given.isprintable():
        return given
    return os.urandom(12).hex()


class Handler:
    """One OpenAI endpoint: read → decide → execute → relay, with accounting at the end."""

    def __init__(self, gateway: Gateway, endpoint: Endpoint) -> None:
        self.gw = gateway
        self.endpoint = endpoint
        self.limit = gateway.config.server.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A Starlette route treats a class instance as a raw ASGI app: no per-request wrapper.
        response = await self.handle(Request(scope, receive))
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response | StreamRelay:
        st = self.gw.accounting.start(_request_id(request), self.endpoint)
        request_id = st.request_id
        try:
            st.key = self.gw.access.authenticate(request.headers.get("authorization"))
            parsed = parse(await read_body(request, self.limit), self.endpoint)
            st.model, st.payload = parsed.model, parsed.payload
            await self.gw.access.admit(st.key, parsed.model)
            candidates = self.gw.targets_for(parsed.model)
            if candidates is None:
                raise self._unknown_model(parsed.model)
            features = RequestFeatures(parsed.model, self.endpoint, parsed.stream)
            decide_span = self.gw.tracing.child(st.span, "spillgate.decide", {})
            decision = decide(features, candidates)
            if not decision.targets:
                decision = await self._wait_for_ready(features, candidates)
            st.reason = decision.reason.value
            self.gw.tracing.end(decide_span, {"spillgate.reason": st.reason})
            self.gw.metrics.decisions.labels(decision.reason.value).inc()
            upstream = UpstreamRequest(
                endpoint=self.endpoint,
                model=parsed.model,
                target_model=parsed.model,
                body=parsed.body,
                payload=parsed.payload,
                stream=parsed.stream,
                request_id=request_id,
            )
            self.gw.metrics.overhead.observe(time.perf_counter() - st.started)
            backend, reply = await self._execute(upstream, decision, st.span)
        except GatewayError as err:
            if st.reason == "none" and err.code:
                st.reason = err.code  # refused before a decision: the ledger says why
            self._account(st, "none", "none", err.status, None, False)
            return _error_response(err, request_id)

        headers = {
            "x-request-id": request_id,
            "x-spillgate-route": backend.name,
            "x-spillgate-reason": decision.reason.value,
            **reply.headers,
        }
        if reply.chunks is None:
            self._account(st, backend.name, backend.kind.value, reply.status, reply, False)
            return Response(
                reply.body, reply.status, headers=headers, media_type=reply.content_type
            )
        return await self._stream(reply, headers, st, backend)

    async def _stream(
        self,
        reply: UpstreamReply,
        headers: dict[str, str],
        st: RequestState,
        backend: Backend,
    ) -> StreamRelay:
        assert reply.chunks is not None
        raw = [(k.encode(), v.encode()) for k, v in headers.items()]
        raw += [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        # Written ahead before the first byte: a stream cut by a crash still has its record.
        self.gw.accounting.stream_opened(st, backend.name, backend.kind.value)

        def on_done(completed: bool) -> None:
            status = 200 if completed else 499  # 499: the client closed the connection
            self._account(st, backend.name, backend.kind.value, status, reply, True)

        chunks = self.gw.accounting.relay(st, reply.chunks)
        return StreamRelay(b"", chunks, raw, on_done, reply.aclose)

    async def _execute(
        self, upstream: UpstreamRequest, decision: Decision, span: Any = None
    ) -> tuple[Backend, UpstreamReply]:
        """Try the decision's targets in order until one starts answering."""
        last: UpstreamError | None = None
        for target in decision.targets:
            backend: Backend = target
            upstream.target_model = self.gw.target_model(upstream.model, backend)
            call = self.gw.tracing.child(
                span, "spillgate.upstream", {"spillgate.target": backend.name}
            )
            try:
                reply = await backend.open(upstream)
                self.gw.tracing.end(call, {"http.response.status_code": reply.status})
                return backend, reply
            except UpstreamError as err:
                self.gw.tracing.end(call, {"http.response.status_code": err.status}, err.message)
                last = err
                self.gw.metrics.upstream_errors.labels(backend.name, str(err.status)).inc()
                log.warning(
                    "target failed before answering",
                    extra={
                        "request_id": upstream.request_id,
                        "route": backend.name,
                        "status": err.status,
                        "error": err.message,
                    },
                )
                if not err.retryable:
                    break
        raise last or GatewayError(503, "no target could serve the request", type="server_error")

    async def _wait_for_ready(
        self, features: RequestFeatures, candidates: list[Backend]
    ) -> Decision:
        """Nothing ready yet (an engine starting or restarting): wait a bounded time, then 503."""
        wait_s = self.gw.config.server.ready_wait_s
        events = [c.ready_event.wait() for c in candidates if hasattr(c, "ready_event")]
        if events and wait_s > 0:
            waiters = [asyncio.ensure_future(e) for e in events]
            try:
                await asyncio.wait(waiters, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
            decision = decide(features, candidates)
            if decision.targets:
                return decision
        raise GatewayError(
            503,
            f"no engine serving {features.model!r} is ready yet; retry shortly",
            type="server_error",
            code=Reason.NO_TARGET_READY.value,
            retry_after_s=5,
        )

    def _unknown_model(self, model: str) -> GatewayError:
        available = ", ".join(self.gw.model_ids()) or "none"
        return GatewayError(
            404,
            f"model {model!r} is not served here; available models: {available}",
            code="model_not_found",
            param="model",
        )

    def _account(
        self,
        st: RequestState,
        route: str,
        kind: str,
        status: int,
        reply: UpstreamReply | None,
        streamed: bool,
    ) -> None:
        """The ledger record (written ahead, before the answer), metrics, access log."""
        self.gw.accounting.finish(st, route, kind, status, reply, streamed)


def create_app(gateway: Gateway) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app = FastAPI(title="Spillgate", version=__version__, lifespan=lifespan)
    app.include_router(admin_router(gateway))
    # The OpenAI endpoints are plain Starlette routes: FastAPI's validation layer would
    # parse every body a second time on the hot path.
    for endpoint in Endpoint:
        handler = Handler(gateway, endpoint)
        app.router.routes.append(Route(f"/v1/{endpoint.value}", handler, methods=["POST"]))

    @app.get("/v1/models")
    async def list_models() -> Response:
        created = int(time.time())
        data = [
            {"id": m, "object": "model", "created": created, "owned_by": "spillgate"}
            for m in gateway.model_ids()
        ]
        return Response(
            orjson.dumps({"object": "list", "data": data}), media_type="application/json"
        )

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"alive"}', media_type="application/json")

    @app.get("/readyz")
    async def readyz() -> Response:
        engines = {e.name: e.ready for e in gateway.engines}
        ready = gateway.any_ready
        body = orjson.dumps({"ready": ready, "engines": engines})
        headers = {} if ready else {"retry-after": "5"}
        return Response(body, 200 if ready else 503, headers=headers, media_type="application/json")

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
