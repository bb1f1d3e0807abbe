"""The HTTP front: OpenAI-compatible endpoints, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from spillgate import __version__
from spillgate.errors import EgressRefused, GatewayError, upstream_error_body
from spillgate.fallback.adapter import CloudTarget
from spillgate.models.engine import LocalEngine
from spillgate.models.gpu import GpuState
from spillgate.protocol import Backend, Endpoint, UpstreamReply, UpstreamRequest
from spillgate.server.access import credential
from spillgate.server.accounting import RequestState, new_id
from spillgate.server.admin import admin_router
from spillgate.server.admission import ANONYMOUS_KEY
from spillgate.server.budgets import CloudSpend
from spillgate.server.console import console
from spillgate.server.executor import Executor, Outcome
from spillgate.server.explain import explain
from spillgate.server.gateway import Gateway
from spillgate.server.keys import bearer_matches
from spillgate.server.planner import Planner, unknown_model
from spillgate.server.relay import StreamRelay
from spillgate.server.requests import FeatureReader
from spillgate.server.scheduler import (
    GAP_REASONS,
    Decision,
    Privacy,
    Reason,
    RequestFeatures,
)

log = logging.getLogger("spillgate.server")


#: The field that holds the prompt, per endpoint (`input` for the others).
_PROMPT_PARAM = {
    Endpoint.CHAT: "messages",
    Endpoint.MESSAGES: "messages",
    Endpoint.COMPLETIONS: "prompt",
}


def _context_param(features: RequestFeatures, payload: dict[str, Any], window: Any) -> str:
    """What to change about a request too long for the context: its length limit when the
    prompt alone fits and the client set one, else the prompt."""
    prompt = _PROMPT_PARAM.get(features.endpoint, "input")
    if isinstance(window, int) and features.prompt_tokens_max < window:
        for name in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
            if payload.get(name) is not None:
                return name
    return prompt


def _error_response(
    err: GatewayError, request_id: str, endpoint: Endpoint = Endpoint.CHAT
) -> Response:
    """The error in the shape of the API called (Anthropic's for /v1/messages)."""
    headers = {"x-request-id": request_id, "x-spillgate-route": "none", **err.headers()}
    body = err.body(endpoint)
    return Response(body, err.status, headers=headers, media_type="application/json")


def _api_of(path: str) -> Endpoint:
    """The API a path belongs to, for the shape of its errors."""
    return Endpoint.MESSAGES if path.startswith("/v1/messages") else Endpoint.CHAT


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id")
    if given and len(given) <= 128 and given.isprintable():
        return given
    return new_id()


class Handler:
    """One OpenAI endpoint: plan → execute → relay, with accounting at the end."""

    def __init__(self, gateway: Gateway, endpoint: Endpoint) -> None:
        gw = gateway
        self.gw = gateway  # for `accounting`, which exists once the ledger is open
        self.endpoint = endpoint
        self.metrics = gw.metrics
        self.tracing = gw.tracing
        self.cloud_targets = gw.cloud_targets
        self.ready_wait_s = gw.config.server.ready_wait_s
        features = FeatureReader(
            endpoint, gw.config.scheduler, gw.config.privacy, gw.budgets, gw.scans
        )
        self.planner = Planner(
            endpoint,
            access=gw.access,
            targets_for=gw.targets_for,
            model_ids=gw.model_ids,
            features=features,
            monitor=lambda: gw.monitor,
            runtime=gw.runtime,
            cloud_caps=gw.cloud_caps,
            budgets=gw.budgets,
            tracing=gw.tracing,
            max_body_bytes=gw.config.server.max_body_bytes,
            default_max_tokens=gw.config.budgets.default_max_tokens,
        )
        self.executor = Executor(
            targets_for=gw.targets_for,
            runtime=gw.runtime,
            cloud_caps=gw.cloud_caps,
            target_model=gw.target_model,
            max_queue_wait_s=gw.config.scheduler.max_queue_wait_s,
            metrics=gw.metrics,
            scans=gw.scans,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await self.handle(request)
        except Exception:
            # A bug of ours must still answer in the OpenAI shape, and say which request.
            request_id = _request_id(request)
            log.exception("unhandled error", extra={"request_id": request_id})
            err = GatewayError(500, "internal gateway error", type="server_error")
            response = _error_response(err, request_id, self.endpoint)
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response | StreamRelay:
        accounting = self.gw.accounting
        st = accounting.start(_request_id(request), self.endpoint)
        request_id, started = st.request_id, st.started
        try:
            plan = await self.planner.plan(request.headers, request, st)
            features, candidates, decision = plan.features, plan.candidates, plan.decision
            payload = plan.parsed.payload
            if not decision.targets:
                decision = await self._wait_for_ready(features, candidates, decision, payload)
            st.reason = decision.reason.value
            st.explain, st.privacy = decision.explain, features.privacy.value
            self.tracing.end(plan.decide_span, {"spillgate.reason": st.reason})
            parsed = plan.parsed
            upstream = UpstreamRequest(
                endpoint=self.endpoint,
                model=parsed.model,
                target_model=parsed.model,
                body=parsed.body,
                payload=payload,
                stream=parsed.stream,
                request_id=request_id,
                key_id=st.key.id if st.key is not None else None,
                private=features.privacy is Privacy.LOCAL_ONLY,
            )
            self.metrics.overhead.observe(time.perf_counter() - started)
            key = st.key.id if st.key is not None else ANONYMOUS_KEY
            call = self.tracing.child(st.span, "spillgate.upstream", {})
            try:
                try:
                    outcome = await self._run_watched(
                        request, upstream, decision, features, key, started, st.spend
                    )
                except EgressRefused as refused:
                    features, decision = await self._keep_home(
                        features, candidates, refused, payload
                    )
                    st.reason = decision.reason.value
                    st.explain, st.privacy = decision.explain, features.privacy.value
                    upstream.private = True
                    outcome = await self._run_watched(
                        request, upstream, decision, features, key, started, st.spend
                    )
            except GatewayError as err:
                self.tracing.end(call, {"http.response.status_code": err.status}, err.message)
                raise
            self.tracing.end(
                call,
                {
                    "spillgate.target": outcome.backend.name,
                    "http.response.status_code": outcome.reply.status,
                },
            )
        except GatewayError as err:
            if st.reason != "none":  # decided, then refused (queue full, every target failed)
                self.metrics.child(self.metrics.decisions, st.reason).inc()
            if st.reason == "none" and err.code:
                st.reason = err.code  # refused before a decision: the ledger says why
            accounting.finish(st, "none", "none", err.status, None, False)
            return _error_response(err, request_id, self.endpoint)
        except BaseException:
            if st.spend is not None:
                st.spend.release()  # no record will settle it
            raise

        backend, reply = outcome.backend, outcome.reply
        st.price = backend.price if isinstance(backend, CloudTarget) else None
        reason = outcome.reason
        st.reason = reason.value
        self.metrics.child(self.metrics.decisions, reason.value).inc()
        headers = {
            "x-request-id": request_id,
            "x-spillgate-route": backend.name,
            "x-spillgate-reason": reason.value,
            **reply.headers,
        }
        if reply.chunks is None:
            accounting.finish(st, backend.name, backend.kind.value, reply.status, reply, False)
            body, media_type = reply.body, reply.content_type
            if reply.status >= 400:  # an engine's own words, in the API's shape whatever theirs
                source = f"{backend.name} ({backend.kind.value})"
                body = upstream_error_body(reply.status, body or b"", source, self.endpoint)
                media_type = "application/json"
            return Response(body, reply.status, headers=headers, media_type=media_type)
        return self._stream(reply, headers, st, backend)

    async def _run_watched(
        self,
        request: Request,
        upstream: UpstreamRequest,
        decision: Decision,
        features: RequestFeatures,
        key: str,
        started: float,
        spend: CloudSpend | None,
    ) -> Outcome:
        """Run the decision; a whole (non-streamed) answer from a cloud target can take long,
        so a client that hangs up meanwhile cancels the provider call (a stream's relay
        does the same for streams)."""
        clouds = self.cloud_targets
        if upstream.stream or not any(t in clouds for t in decision.targets):
            return await self.executor.run(upstream, decision, features, key, started, spend)
        handler = asyncio.current_task()
        assert handler is not None

        async def watch() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            handler.cancel()

        watcher = asyncio.create_task(watch())
        try:
            return await self.executor.run(upstream, decision, features, key, started, spend)
        except asyncio.CancelledError:
            if not watcher.done():
                raise
            handler.uncancel()
            raise GatewayError(
                499, "the client closed the connection", code="client_gone"
            ) from None
        finally:
            watcher.cancel()

    async def _keep_home(
        self,
        features: RequestFeatures,
        candidates: list[Backend],
        refused: EgressRefused,
        payload: dict[str, Any],
    ) -> tuple[RequestFeatures, Decision]:
        """The egress guard found what the decision did not expect: decide again, with the
        request kept on the box, as if the ingress scan had found it."""
        features = dataclasses.replace(features, privacy=Privacy.LOCAL_ONLY)
        decision = self.planner.decide(features, candidates)
        decision.explain["egress_refused"] = list(refused.kinds)
        if not decision.targets:
            decision = await self._wait_for_ready(features, candidates, decision, payload)
        return features, decision

    def _stream(
        self,
        reply: UpstreamReply,
        headers: dict[str, str],
        st: RequestState,
        backend: Backend,
    ) -> StreamRelay:
        raw = [(k.encode(), v.encode()) for k, v in headers.items()]
        raw += [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        accounting = self.gw.accounting
        # Written ahead before the first byte: a stream cut by a crash still has its record.
        on_chunk = accounting.stream_opened(st, reply, backend.name, backend.kind.value)

        def on_done(completed: bool) -> None:
            status = 200 if completed else 499  # 499: the client closed the connection
            accounting.finish(st, backend.name, backend.kind.value, status, reply, True)

        return StreamRelay(reply, raw, on_chunk, on_done)

    async def _wait_for_ready(
        self,
        features: RequestFeatures,
        candidates: list[Backend],
        decision: Decision,
        payload: dict[str, Any],
    ) -> Decision:
        """Nothing may serve it now: a capability the box lacks, or engines still starting."""
        if decision.reason in GAP_REASONS:
            raise self._gap_error(features, decision, payload)
        wait_s = self.ready_wait_s
        events = [c.ready_event.wait() for c in candidates if isinstance(c, LocalEngine)]
        if events and wait_s > 0:
            waiters = [asyncio.ensure_future(e) for e in events]
            try:
                await asyncio.wait(waiters, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
            decision = self.planner.decide(features, candidates)
            if decision.targets:
                return decision
            if decision.reason in GAP_REASONS:  # ready now, and it cannot take this request
                raise self._gap_error(features, decision, payload)
        cloud_waits = [c.retry_in_s for c in candidates if isinstance(c, CloudTarget)]
        if cloud_waits and len(cloud_waits) == len(candidates):
            raise GatewayError(
                503,
                f"every provider target of {features.model!r} is failing and paused "
                "(circuit open); retry later",
                type="server_error",
                code=Reason.NO_TARGET.value,
                retry_after_s=max(1.0, min(cloud_waits)),
            )
        message = f"no engine serving {features.model!r} is ready yet; retry shortly"
        if features.privacy is Privacy.LOCAL_ONLY and cloud_waits:
            message = (
                f"no engine serving {features.model!r} is ready yet, and this request may not "
                "leave the box (marked on-prem or carries personal data), so it was not sent "
                "to a cloud provider; retry shortly"
            )
        raise GatewayError(
            503, message, type="server_error", code=Reason.NO_TARGET.value, retry_after_s=5
        )

    def _gap_error(
        self, features: RequestFeatures, decision: Decision, payload: dict[str, Any]
    ) -> GatewayError:
        """The route's models cannot do it, and the request may not (or cannot) go elsewhere."""
        window = decision.explain.get("max_context")
        what, param = {
            Reason.MODEL_NOT_LOCAL: (
                f"model {features.model!r} is not served on this box",
                "model",
            ),
            Reason.CONTEXT_TOO_LONG: (
                f"the prompt (up to {features.prompt_tokens_max} tokens) plus max_tokens "
                f"({features.max_tokens}) exceeds the model's {window}-token context window",
                _context_param(features, payload, window),
            ),
            Reason.TOOLS_UNSUPPORTED: ("the model does not support tools", "tools"),
            Reason.IMAGES_UNSUPPORTED: (
                "the model does not accept images",
                _PROMPT_PARAM.get(features.endpoint, "input"),
            ),
            Reason.JSON_SCHEMA_UNSUPPORTED: (
                "the model does not support json_schema",
                "response_format",
            ),
        }[decision.reason]
        code = decision.reason.value
        if decision.explain.get("blocked") == "budget":
            return GatewayError(
                429,
                f"{what}, and this key's cloud budget is spent",
                type="insufficient_quota",
                code="cloud_budget_exhausted",
            )
        if decision.explain.get("blocked") == "private":
            why = "this request may not leave the box (marked on-prem or carries personal data)"
            return GatewayError(400, f"{what}, and {why}", code=code, param=param)
        return GatewayError(
            400,
            f"{what}, and no other target of {features.model!r} can take it",
            code=code,
            param=param,
        )


class FastPath:
    """Sends the OpenAI POST endpoints straight to their handlers, everything else to FastAPI.

    Starlette's middleware and router cost about 15% of a proxied request's CPU at high
    concurrency (docs/performance.md); the hot endpoints need none of it.
    """

    def __init__(self, app: FastAPI, handlers: dict[str, Handler]) -> None:
        self.app = app
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = self.handlers.get(scope["path"])
            if handler is not None:
                await handler(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(gateway: Gateway) -> FastPath:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app = FastAPI(title="Spillgate", version=__version__, lifespan=lifespan)
    app.include_router(admin_router(gateway))
    app.include_router(console(gateway))
    # The OpenAI endpoints are raw ASGI handlers: FastAPI's validation layer would parse
    # every body a second time on the hot path. The routes stay registered so that a wrong
    # method gets FastAPI's 405, answered in OpenAI's shape below.
    handlers = {f"/v1/{e.value}": Handler(gateway, e) for e in Endpoint}
    for path, handler in handlers.items():
        app.router.routes.append(Route(path, handler, methods=["POST"]))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # Unknown paths and wrong methods answer in the API's error shape too.
        message = f"{request.method} {request.url.path}: {exc.detail}"
        err = GatewayError(exc.status_code, message, code=str(exc.detail).lower().replace(" ", "_"))
        return _error_response(err, _request_id(request), _api_of(request.url.path))

    messages = handlers[f"/v1/{Endpoint.MESSAGES.value}"]

    @app.post("/v1/messages/count_tokens")
    async def count_tokens(request: Request) -> Response:
        try:
            tokens = await messages.planner.count_tokens(request.headers, request)
        except GatewayError as err:
            return _error_response(err, _request_id(request), Endpoint.MESSAGES)
        return Response(orjson.dumps({"input_tokens": tokens}), media_type="application/json")

    def gpus() -> tuple[GpuState, ...]:
        return gateway.monitor.gpus if gateway.monitor is not None else ()

    @app.post("/admin/route/explain")
    async def route_explain(request: Request) -> Response:
        planners = {path: handler.planner for path, handler in handlers.items()}
        return await explain(planners, gateway.config.admin.token, gpus, request)

    def models_for(request: Request) -> list[str]:
        """The models the caller's key may use; as OpenAI's, the listing needs a key."""
        key = gateway.access.authenticate(credential(request.headers))
        return [m for m in gateway.model_ids() if key is None or key.may_use(m)]

    @app.get("/v1/models")
    async def list_models(request: Request) -> Response:
        try:
            models = models_for(request)
        except GatewayError as err:
            return _error_response(err, _request_id(request))
        created = int(time.time())
        data = [
            {"id": m, "object": "model", "created": created, "owned_by": "spillgate"}
            for m in models
        ]
        return Response(
            orjson.dumps({"object": "list", "data": data}), media_type="application/json"
        )

    @app.get("/v1/models/{model:path}")
    async def retrieve_model(request: Request, model: str) -> Response:
        try:
            models = models_for(request)
        except GatewayError as err:
            return _error_response(err, _request_id(request))
        if model not in models:
            return _error_response(unknown_model(model, models), _request_id(request))
        created = int(time.time())
        body = {"id": model, "object": "model", "created": created, "owned_by": "spillgate"}
        return Response(orjson.dumps(body), media_type="application/json")

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"alive"}', media_type="application/json")

    @app.get("/readyz")
    async def readyz() -> Response:
        engines = {e.name: e.ready for e in gateway.engines}
        cloud = {name: t.ready for name, t in gateway.cloud_targets.items()}
        ready = gateway.any_ready
        body = orjson.dumps({"ready": ready, "engines": engines, "cloud_targets": cloud})
        headers = {} if ready else {"retry-after": "5"}
        return Response(body, 200 if ready else 503, headers=headers, media_type="application/json")

    metrics_token = gateway.config.server.metrics_token

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        given = request.headers.get("authorization")
        if metrics_token is not None and not bearer_matches(given, metrics_token):
            err = GatewayError(
                401,
                "/metrics needs `Authorization: Bearer <server.metrics_token>`",
                code="invalid_metrics_token",
            )
            return _error_response(err, _request_id(request))
        return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return FastPath(app, handlers)
