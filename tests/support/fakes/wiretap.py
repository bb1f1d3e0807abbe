"""A wiretap: a recording reverse proxy on loopback, in front of a fake provider.

It records every request exactly as it arrived (method, path, query, headers, the raw body
bytes), then forwards it to the fake and relays the fake's answer. The fakes record only
the requests their routes serve, parsed; the tap records every byte that left the gateway
for that provider, on any path, so a test of the privacy boundary sees all of it.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import aiohttp
from aiohttp import web

# Hop-by-hop and framing headers: aiohttp sets its own.
_NOT_RELAYED = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}


async def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(auto_decompress=False)


class Wiretap:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        #: (method, path, query string, headers, body), in arrival order.
        self.seen: list[tuple[str, str, str, dict[str, str], bytes]] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        self.seen.clear()

    def start(self) -> Wiretap:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._relay)
            runner = web.AppRunner(app, handle_signals=False)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self._session = loop.run_until_complete(_session())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._session.close())
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="wiretap", daemon=True)
        self._thread.start()
        assert ready.wait(10), "the wiretap did not start"
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    async def _relay(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_RELAYED}
        self.seen.append((request.method, request.path, request.query_string, headers, body))
        assert self._session is not None
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body
        ) as answer:
            reply: dict[str, Any] = {
                k: v for k, v in answer.headers.items() if k.lower() not in _NOT_RELAYED
            }
            relayed = web.StreamResponse(status=answer.status, headers=reply)
            await relayed.prepare(request)
            async for piece in answer.content.iter_any():
                await relayed.write(piece)
            await relayed.write_eof()
            return relayed
