"""A local vLLM engine as a backend: bytes pass through, streams are forwarded as they arrive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import orjson

from spillgate.errors import UpstreamError
from spillgate.models.vllm_responses import ResponsesConformer, conform_body
from spillgate.protocol import Endpoint, TargetKind, UpstreamReply, UpstreamRequest, Usage
from spillgate.scrub import error_message, scrub_bytes
from spillgate.sse import UsageTap, client_wants_usage, error_event, with_usage_requested

_JSON = {"content-type": "application/json"}


class LocalEngine:
    """An OpenAI-compatible engine reached over HTTP (a supervised vLLM child or an attached one).

    `base_url` ends in `/v1`. The client's body is forwarded byte for byte unless the
    engine knows the model under another name (the `model` field is rewritten), or it is a
    stream that does not ask for its usage (`stream_options.include_usage` is added, and the
    usage chunk dropped again on the way back).
    """

    kind = TargetKind.LOCAL

    def __init__(
        self,
        name: str,
        base_url: str,
        session: aiohttp.ClientSession,
        *,
        served_models: frozenset[str],
        first_byte_timeout_s: float = 600.0,
        api_key: str | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.root_url = self.base_url.removesuffix("/v1")
        self.served_models = served_models
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=None, sock_read=first_byte_timeout_s)
        #: Sent on every call to the engine: a launched vLLM takes only the gateway's key.
        self.auth_headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._headers = {**_JSON, **self.auth_headers}
        self.healthy = False
        self.in_flight = 0
        self.ready_event = asyncio.Event()

    @property
    def ready(self) -> bool:
        return self.healthy

    def set_health(self, healthy: bool) -> None:
        self.healthy = healthy
        if healthy:
            self.ready_event.set()
        else:
            self.ready_event.clear()

    async def open(self, request: UpstreamRequest) -> UpstreamReply:
        body = request.body
        # A stream's tokens are counted from its usage chunk: ask for it always.
        ask_usage = (
            request.stream
            and request.endpoint in _USAGE_ASKED
            and not client_wants_usage(request.payload)
        )
        if ask_usage or request.target_model != request.model:
            payload = {**request.payload, "model": request.target_model}
            body = orjson.dumps(with_usage_requested(payload) if ask_usage else payload)
        headers = {**self._headers, "x-request-id": request.request_id}
        url = f"{self.base_url}/{request.endpoint.value}"
        try:
            resp = await self._session.post(url, data=body, headers=headers, timeout=self._timeout)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self.set_health(False)
            raise UpstreamError(
                503, f"local engine {self.name} is unreachable ({type(exc).__name__})"
            ) from exc
        self.in_flight += 1
        released = False

        async def close() -> None:
            nonlocal released
            if not released:
                released = True
                self.in_flight -= 1
                # A fully read answer hands its connection back to the pool; a cut-short one
                # closes it, which is how vLLM learns to abort the request.
                if resp.content.at_eof():
                    resp.release()
                else:
                    resp.close()

        if resp.status in (401, 403):
            await close()
            raise UpstreamError(
                502,
                f"local engine {self.name} refused the gateway's key (HTTP {resp.status}); "
                "check engines[].api_key in the configuration",
                code="engine_auth_failed",
            )
        if resp.status >= 500 or resp.status == 429:
            detail = error_message(await _read_quietly(resp)) or "no error message"
            await close()
            raise UpstreamError(
                resp.status,
                f"local engine {self.name} answered {resp.status}: {detail}",
                retryable=True,
            )
        content_type = resp.headers.get("content-type", "application/json")
        if resp.status >= 400 or not request.stream or "text/event-stream" not in content_type:
            try:
                data = await resp.read()
            except (TimeoutError, aiohttp.ClientError) as exc:
                await close()
                raise UpstreamError(502, f"local engine {self.name} broke off its answer") from exc
            await close()
            if resp.status >= 400:
                data = scrub_bytes(data)  # the client's own error, less any key we hold
            elif request.endpoint is Endpoint.RESPONSES:
                data = conform_body(data)
            usage = _usage_of(data, request.endpoint) if resp.status < 400 else None
            return UpstreamReply(
                status=resp.status, content_type=content_type, body=data, usage=usage
            )
        reply = UpstreamReply(status=resp.status, content_type=content_type, close=close)
        tap = UsageTap(ask_usage, request.endpoint)
        passer = ResponsesConformer(tap) if request.endpoint is Endpoint.RESPONSES else tap
        reply.chunks = self._relay(resp, reply, passer)
        return reply

    async def _relay(
        self,
        resp: aiohttp.ClientResponse,
        reply: UpstreamReply,
        passer: UsageTap | ResponsesConformer,
    ) -> AsyncIterator[bytes]:
        try:
            async for data in resp.content.iter_any():
                out = passer.feed(data)
                if out:
                    yield out
            rest = passer.rest()
            if rest:
                yield rest
        except (TimeoutError, aiohttp.ClientError):
            # The engine died or stalled mid-stream: end the client's stream with an error
            # event instead of leaving it hanging (numbered, in a Responses stream).
            number = passer.next_sequence if isinstance(passer, ResponsesConformer) else 0
            yield self._died(passer.endpoint, number)
        finally:
            reply.usage = passer.usage
            await reply.aclose()

    def _died(self, endpoint: Endpoint, sequence_number: int = 0) -> bytes:
        self.set_health(False)
        return error_event(
            f"local engine {self.name} stopped mid-stream",
            code="engine_died",
            endpoint=endpoint,
            sequence_number=sequence_number,
        )


#: The endpoints whose streams report usage only when asked (`stream_options`); Responses
#: and Messages streams always do.
_USAGE_ASKED = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS})


def _usage_of(body: bytes, endpoint: Endpoint) -> Usage | None:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict):
        return None
    usage = parsed.get("usage")
    if endpoint is Endpoint.RESPONSES:
        return Usage.from_responses(usage)
    if endpoint is Endpoint.MESSAGES:
        return Usage.from_anthropic(usage)
    return Usage.from_openai(usage)


async def _read_quietly(resp: aiohttp.ClientResponse) -> bytes:
    try:
        return await resp.read()
    except (TimeoutError, aiohttp.ClientError):
        return b""
