"""An ASGI response that relays a stream chunk by chunk and always releases the upstream.

Starlette's StreamingResponse would do for the happy path, but uvicorn silently drops
writes after a client has gone, so a stream nobody reads would keep pulling tokens from
the engine. Here a watcher cancels the relay on `http.disconnect`, and `finally` closes
the upstream call, which is what makes vLLM abort the request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from starlette.types import Receive, Scope, Send


class StreamRelay:
    def __init__(
        self,
        first: bytes,
        chunks: AsyncIterator[bytes],
        headers: list[tuple[bytes, bytes]],
        on_done: Callable[[bool], None],
        release: Callable[[], object],
    ) -> None:
        self.first = first
        self.chunks = chunks
        self.headers = headers
        self.on_done = on_done  # called with True when the stream completed
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        relay = asyncio.current_task()
        assert relay is not None
        gone = False

        async def watch_disconnect() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass
            gone = True
            relay.cancel()

        watcher = asyncio.create_task(watch_disconnect())
        completed = False
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.headers})
            if self.first:
                await send({"type": "http.response.body", "body": self.first, "more_body": True})
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            completed = True
        except asyncio.CancelledError:
            if not gone:
                raise
            relay.uncancel()
        except OSError:
            pass  # the client's socket broke under us: same as a disconnect
        finally:
            watcher.cancel()
            with contextlib.suppress(BaseException):
                await watcher
            aclose = getattr(self.chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
            await self.release()  # type: ignore[misc]
            self.on_done(completed)
