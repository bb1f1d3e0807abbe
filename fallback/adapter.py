"""The seam every provider module fills: translate an OpenAI request out, the answer back.

A provider module (`fallback/openai.py`, `fallback/anthropic.py`, ...) implements
`ProviderAdapter` as pure translation, no I/O. `CloudTarget` does the HTTP around it, so
every provider gets the same timeouts, error mapping and stream handling.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from spillgate.errors import UpstreamError
from spillgate.protocol import TargetKind, UpstreamReply, UpstreamRequest, Usage
from spillgate.sse import error_event


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

    def build(self, request: UpstreamRequest) -> ProviderCall:
        """Translate the OpenAI request; raise `GatewayError(400, ...)` for what cannot be."""
        ...

    def translate(self, request: UpstreamRequest, body: bytes) -> Translated:
        """Translate a successful whole answer into an OpenAI response body."""
        ...

    def stream(self, request: UpstreamRequest) -> StreamTranslator: ...

    def error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
        """Map a provider error answer to an OpenAI-style error (retryable where it should be)."""
        ...


class CloudTarget:
    """A provider model as a backend: one adapter, one HTTP session."""

    kind = TargetKind.CLOUD

    def __init__(
        self,
        name: str,
        adapter: ProviderAdapter,
        session: aiohttp.ClientSession,
        *,
        first_byte_timeout_s: float = 60.0,
    ) -> None:
        self.name = name
        self.adapter = adapter
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=None, sock_read=first_byte_timeout_s)
        self.in_flight = 0

    @property
    def ready(self) -> bool:
        return True

    async def open(self, request: UpstreamRequest) -> UpstreamReply:
        call = self.adapter.build(request)
        try:
            resp = await self._session.post(
                call.url, data=call.body, headers=call.headers, timeout=self._timeout
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise UpstreamError(
                503,
                f"{self.name} is unreachable ({type(exc).__name__})",
                code="provider_unreachable",
            ) from exc
        if resp.status >= 400:
            try:
                body = await resp.read()
            except (TimeoutError, aiohttp.ClientError):
                body = b""
            resp.release()
            raise self.adapter.error(resp.status, body, dict(resp.headers))
        if not request.stream:
            try:
                body = await resp.read()
            except (TimeoutError, aiohttp.ClientError) as exc:
                resp.close()
                raise UpstreamError(502, f"{self.name} broke off its answer") from exc
            resp.release()
            translated = self.adapter.translate(request, body)
            return UpstreamReply(status=200, body=translated.body, usage=translated.usage)
        self.in_flight += 1
        reply = UpstreamReply(status=200, content_type="text/event-stream")

        async def close() -> None:
            self.in_flight -= 1
            if resp.content.at_eof():
                resp.release()
            else:
                resp.close()  # cancels the provider call

        reply.close = close
        reply.chunks = self._relay(resp, self.adapter.stream(request), reply)
        return reply

    async def _relay(
        self, resp: aiohttp.ClientResponse, translator: StreamTranslator, reply: UpstreamReply
    ) -> AsyncIterator[bytes]:
        try:
            async for data in resp.content.iter_any():
                out = translator.feed(data)
                if out:
                    yield out
            yield translator.finish()
        except (TimeoutError, aiohttp.ClientError):
            yield error_event(f"{self.name} stopped mid-stream", code="provider_stream_cut")
        except UpstreamError as err:  # a provider `error` event mid-stream
            yield error_event(err.message, type=err.type, code=err.code)
        finally:
            reply.usage = translator.usage
            await reply.aclose()
