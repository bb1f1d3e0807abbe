"""The seam every provider module fills: translate an OpenAI request out, the answer back.

A provider package (`fallback/openai/`, `fallback/anthropic/`, ...) implements
`ProviderAdapter` as pure translation, no I/O. `CloudTarget` does the HTTP around it, so
every provider gets the same timeouts, retries, circuit breaker, pricing and stream handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import aiohttp
import orjson

from spillgate.errors import ErrorCode, GatewayError, UpstreamError
from spillgate.fallback.breaker import CircuitBreaker
from spillgate.fallback.dialects import DialectStream, dialect_for
from spillgate.fallback.prices import Price, cost_usd
from spillgate.fallback.resilience import RetryPolicy, Timeouts, is_upstream_fault
from spillgate.protocol import (
    DIALECTS,
    Endpoint,
    TargetKind,
    UpstreamReply,
    UpstreamRequest,
    Usage,
)
from spillgate.sse import error_event

log = logging.getLogger("spillgate.fallback")


@dataclass(frozen=True)
class ProviderSettings:
    """One configured provider account. `api_key` never appears in repr, logs or errors."""

    name: str
    kind: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    headers: dict[str, str] = field(default_factory=dict)
    #: Provider-specific options (Azure's api_version, ...).
    options: dict[str, Any] = field(default_factory=dict)
    #: Request parameters to remove silently instead of refusing them with a 400.
    drop_params: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ProviderCall:
    """The HTTP request an adapter wants sent."""

    url: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Translated:
    """A whole (non-streamed) answer in OpenAI's format."""

    body: bytes
    usage: Usage | None


class StreamTranslator(Protocol):
    """Turns a provider's stream bytes into OpenAI SSE bytes, one read at a time."""

    def feed(self, data: bytes) -> bytes:
        """Bytes as read from the provider; returns OpenAI SSE bytes (maybe empty)."""
        ...

    def finish(self) -> bytes:
        """The provider's stream ended: returns the closing bytes (usage chunk, `[DONE]`)."""
        ...

    @property
    def usage(self) -> Usage | None: ...


class ProviderAdapter(Protocol):
    settings: ProviderSettings
    #: The inbound APIs besides chat (Responses, Messages) this provider is sent as they
    #: are; `CloudTarget` sends it the others as chat (see `spillgate.fallback.dialects`).
    native: frozenset[Endpoint]

    def build(self, request: UpstreamRequest) -> ProviderCall:
        """Translate the OpenAI request; raise `GatewayError(400, ...)` for what cannot be."""
        ...

    def translate(self, request: UpstreamRequest, body: bytes) -> Translated:
        """Translate a successful whole answer into an OpenAI response body."""
        ...

    def stream(self, request: UpstreamRequest) -> StreamTranslator: ...

    def error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
        """Map a provider error answer to an OpenAI-style error (retryable where it should be).

        `headers` has lower-case names. Set `retry_after_s` from the provider's Retry-After.
        """
        ...


class EgressCheck(Protocol):
    """The last look at what leaves: raises `spillgate.errors.EgressRefused` to keep the
    body home. The server's privacy guard implements it; every CloudTarget has one."""

    async def __call__(
        self, request: UpstreamRequest, target: str, kind: str, call: ProviderCall
    ) -> None: ...


class CloudTarget:
    """One model at one provider as a backend: `name` is `provider/model`, as routes write it.

    Around the adapter's translation it owns the call's resilience: timeouts, retries at
    this target with backoff, and the circuit breaker that takes the target out of the
    scheduler's choices while it keeps failing. Nothing is retried once `open` has
    returned, because from then on the client may have bytes. Nothing is sent before
    `egress` has read the exact body the adapter built.
    """

    kind = TargetKind.CLOUD

    def __init__(
        self,
        provider_model: str,
        adapter: ProviderAdapter,
        session: aiohttp.ClientSession,
        *,
        egress: EgressCheck,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        price: Price | None = None,
    ) -> None:
        self.name = f"{adapter.settings.name}/{provider_model}"
        self.provider_model = provider_model
        self.adapter = adapter
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self.breaker = breaker or CircuitBreaker()
        self.price = price
        self.egress = egress
        self._session = session

    @property
    def ready(self) -> bool:
        return self.breaker.allows_request()

    @property
    def retry_in_s(self) -> float:
        return self.breaker.seconds_until_retry()

    def cost_of(self, usage: Usage | None) -> float | None:
        if usage is None or self.price is None:
            return None
        return cost_usd(self.price, usage)

    async def open(self, request: UpstreamRequest) -> UpstreamReply:
        if request.endpoint in DIALECTS and request.endpoint not in self.adapter.native:
            return await self._through_chat(request)
        try:
            call = self.adapter.build(request)
        except UpstreamError:
            raise
        except GatewayError as err:
            raise _not_here(err) from None
        await self.egress(request, self.name, self.adapter.settings.kind, call)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeouts.total_s
        attempt = 0
        while True:
            self.breaker.on_attempt()
            try:
                reply = await self._attempt(request, call, deadline)
            except UpstreamError as err:
                self._record(err)
                wait = self.retry.delay(attempt, err, deadline - loop.time())
                if wait is None:
                    if err.retry_after_s:
                        self.breaker.hold(err.retry_after_s)
                    raise
                log.info(
                    "retrying cloud target",
                    extra={"request_id": request.request_id, "route": self.name,
                           "status": err.status, "code": err.code, "wait_s": round(wait, 3)},
                )  # fmt: skip
                await asyncio.sleep(wait)
                attempt += 1
                continue
            self.breaker.record_success()
            return reply

    async def _through_chat(self, request: UpstreamRequest) -> UpstreamReply:
        """A Responses or Messages request to a provider that does not speak that API: sent
        as chat (the egress guard reads the chat body built from it), answered back in the
        API's shape, whole or streamed."""
        dialect = dialect_for(request.endpoint)
        chat = dataclasses.replace(
            request, endpoint=Endpoint.CHAT, payload=dialect.to_chat(request.payload), body=b""
        )
        reply = await self.open(chat)
        if reply.chunks is None:
            answer = orjson.loads(reply.body or b"{}")
            reply.body = orjson.dumps(dialect.from_chat(request.payload, answer))
            return reply
        chunks = cast(AsyncGenerator[bytes, None], reply.chunks)
        reply.chunks = _restreamed(chunks, dialect.stream_from_chat(request.payload))
        return reply

    def _record(self, err: UpstreamError) -> None:
        # One client's bad request must not take the provider out for every client.
        if is_upstream_fault(err):
            self.breaker.record_failure()
        else:
            self.breaker.record_inconclusive()

    async def _attempt(
        self, request: UpstreamRequest, call: ProviderCall, deadline: float
    ) -> UpstreamReply:
        t = self.timeouts
        remaining = max(0.001, deadline - asyncio.get_running_loop().time())
        timeout = aiohttp.ClientTimeout(
            total=remaining, sock_connect=t.connect_s, sock_read=t.first_byte_s
        )
        try:
            resp = await self._session.post(
                call.url, data=call.body, headers=call.headers, timeout=timeout
            )
        except TimeoutError as exc:
            raise self._timeout("did not start answering") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamError(
                503,
                f"{self.name} is unreachable ({type(exc).__name__})",
                code=ErrorCode.PROVIDER_UNREACHABLE,
            ) from exc
        if resp.status >= 400:
            body = await _read_quietly(resp)
            resp.release()
            headers = {k.lower(): v for k, v in resp.headers.items()}
            raise self.adapter.error(resp.status, body, headers)
        if not request.stream:
            return await self._whole(request, resp)
        if resp.content_type == "application/json":
            resp.close()
            raise UpstreamError(
                502,
                f"{self.name} answered a stream request whole, not as a stream",
                code=ErrorCode.PROVIDER_NOT_STREAMING,
            )
        return await self._start_stream(request, resp)

    async def _whole(self, request: UpstreamRequest, resp: aiohttp.ClientResponse) -> UpstreamReply:
        try:
            body = await resp.read()
        except TimeoutError as exc:
            resp.close()
            raise self._timeout("did not finish its answer") from exc
        except aiohttp.ClientError as exc:
            resp.close()
            raise self._broke_off("its answer") from exc
        resp.release()
        translated = self.adapter.translate(request, body)
        reply = UpstreamReply(status=200, body=translated.body, usage=translated.usage)
        reply.cost_usd = self.cost_of(reply.usage)
        if reply.cost_usd is not None:
            reply.headers["x-spillgate-cost-usd"] = f"{reply.cost_usd:.8f}"
        return reply

    async def _start_stream(
        self, request: UpstreamRequest, resp: aiohttp.ClientResponse
    ) -> UpstreamReply:
        """Read until the translator has bytes for the client: until then a failure is still
        a failure before the first byte, which the executor may retry elsewhere."""
        translator = self.adapter.stream(request)
        first = b""
        ended = False
        try:
            while not first:
                data = await resp.content.readany()
                if not data:
                    first, ended = translator.finish(), True
                    break
                first = translator.feed(data)
        except TimeoutError as exc:
            resp.close()
            raise self._timeout("sent no stream event") from exc
        except aiohttp.ClientError as exc:
            resp.close()
            raise self._broke_off("before its first event") from exc
        except UpstreamError:
            resp.close()
            raise
        reply = UpstreamReply(status=200, content_type="text/event-stream")

        async def close() -> None:
            if resp.content.at_eof():
                resp.release()
            else:
                resp.close()  # cancels the provider call

        reply.close = close
        reply.chunks = self._relay(request, resp, translator, reply, first, ended)
        return reply

    async def _relay(
        self,
        request: UpstreamRequest,
        resp: aiohttp.ClientResponse,
        translator: StreamTranslator,
        reply: UpstreamReply,
        first: bytes,
        ended: bool,
    ) -> AsyncIterator[bytes]:
        provider_failed = False  # a client that leaves early is not the provider's fault
        endpoint = request.endpoint

        def failed(message: str, code: str | None, type: str = "upstream_error") -> bytes:
            # A Responses stream numbers its events: the error takes the next number.
            number = getattr(translator, "next_sequence", 0)
            return error_event(message, type, code, endpoint, sequence_number=number)

        try:
            yield first
            if not ended:
                async for data in resp.content.iter_any():
                    out = translator.feed(data)
                    if out:
                        yield out
                yield translator.finish()
        except TimeoutError:
            provider_failed = True
            yield failed(
                f"{self.name} went silent mid-stream (timeouts.first_byte_s, timeouts.total_s)",
                ErrorCode.PROVIDER_TIMEOUT,
            )
        except aiohttp.ClientError:
            provider_failed = True
            yield failed(f"{self.name} stopped mid-stream", ErrorCode.PROVIDER_STREAM_CUT)
        except UpstreamError as err:  # a malformed event, or a provider `error` event
            provider_failed = is_upstream_fault(err)
            yield failed(err.message, err.code, err.type)
        finally:
            if provider_failed:
                self.breaker.record_failure()
            reply.usage = translator.usage
            reply.cost_usd = self.cost_of(reply.usage)
            await reply.aclose()

    def _broke_off(self, when: str) -> UpstreamError:
        return UpstreamError(
            502, f"{self.name} broke off {when}", code=ErrorCode.PROVIDER_STREAM_CUT
        )

    def _timeout(self, what: str) -> UpstreamError:
        t = self.timeouts
        return UpstreamError(
            504,
            f"{self.name} {what} in time (timeouts: connect_s {t.connect_s}, "
            f"first_byte_s {t.first_byte_s}, total_s {t.total_s})",
            code=ErrorCode.PROVIDER_TIMEOUT,
        )


async def _restreamed(
    chunks: AsyncGenerator[bytes, None], dialect: DialectStream
) -> AsyncIterator[bytes]:
    """A chat stream's bytes, rewritten into the inbound API's events as they pass. Closing
    this closes the chat stream, whose end settles the usage and releases the provider."""
    async with contextlib.aclosing(chunks):
        async for data in chunks:
            out = dialect.feed(data)
            if out:
                yield out
    closing = dialect.finish()
    if closing:
        yield closing


def _not_here(err: GatewayError) -> UpstreamError:
    """A request this provider cannot take: the route's next target may, so it is retryable."""
    moved = UpstreamError(
        err.status, err.message, type=err.type, code=err.code or ErrorCode.UNSUPPORTED_PARAMETER
    )
    moved.param = err.param
    return moved


async def _read_quietly(resp: aiohttp.ClientResponse) -> bytes:
    try:
        return await resp.read()
    except (TimeoutError, aiohttp.ClientError):
        return b""
