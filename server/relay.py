"""An ASGI response that relays a stream chunk by chunk and always releases the upstream.

Starlette's StreamingResponse would do for the happy path, but uvicorn silently drops
writes after a client has gone, so a stream nobody reads would keep pulling tokens from
the engine. Here a watcher cancels the relay on `http.disconnect`, and `finally` closes
the upstream call, which is what makes vLLM abort the request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from starlette.types import Receive, Scope, Send

from spillgate.protocol import UpstreamReply


class StreamRelay:
    """Sends a streamed reply to the client: the one owner of its upstream connection.

    Whatever ends the stream (its last chunk, an error event from an upstream failing
    midway, the client leaving, a bug of ours), `finally` releases the upstream once: it
    closes the chunk iterator (a wrapper closes the one beneath it, down to the backend's,
    whose own `finally` reads the usage and lets the connection go), then calls the
    idempotent `reply.aclose()`, which lets it go where the iterator never started. Only
    then is the request accounted (`on_done`). Nothing else in the server closes a
    streamed reply; a backend releases a whole answer's connection before returning it.
    """

    def __init__(
        self,
        reply: UpstreamReply,
        headers: list[tuple[bytes, bytes]],
        on_chunk: Callable[[bytes], None],
        on_done: Callable[[bool], None],
    ) -> None:
        assert reply.chunks is not None
        self.reply = reply
        self.headers = headers
        self.on_chunk = on_chunk  # sees each chunk before the client does
        self.on_done = on_done  # called with True when the stream completed

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
        chunks, on_chunk, on_first = self.reply.chunks, self.on_chunk, self.reply.on_first_chunk
        assert chunks is not None
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.headers})
            async for chunk in chunks:
                if on_first is not None:
                    on_first()
                    on_first = None
                on_chunk(chunk)
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
            try:
                await self._release()
            finally:
                self.on_done(completed)

    async def _release(self) -> None:
        aclose = getattr(self.reply.chunks, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
        await self.reply.aclose()
