"""The HTTP/1.1 server side of the bench upstreams: raw asyncio, keep-alive, next to free.

The upstreams answer on the load core, so they must cost it little: no framework, requests
framed by their Content-Length (the gateways under test send no chunked bodies), each
handed to `handle` as it completes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

#: An engine's /metrics with vLLM's names, nothing running or waiting.
IDLE_METRICS = b"vllm:num_requests_running 0\nvllm:num_requests_waiting 0\n"


class RawHttp(asyncio.Protocol):
    """One connection: parse each request, call `handle(method, path, query, body)`."""

    buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.buf[:end].decode("latin1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            path, _, query = target.partition("?")
            fields = dict(q.split("=", 1) for q in query.split("&") if "=" in q)
            self.handle(method, path, fields, body)

    def send(self, ctype: bytes, payload: bytes) -> None:
        head = b"HTTP/1.1 200 OK\r\ncontent-type: " + ctype + b"\r\ncontent-length: "
        self.transport.write(head + str(len(payload)).encode() + b"\r\n\r\n" + payload)

    def engine_page(self, path: str, model: dict[str, Any]) -> None:
        """What an engine answers besides completions: its model list (`model` alone), its
        idle metrics, and `{}` for the rest (/health)."""
        if path.startswith("/v1/models"):
            self.send(b"application/json", json.dumps({"object": "list", "data": [model]}).encode())
        elif path.startswith("/metrics"):
            self.send(b"text/plain", IDLE_METRICS)
        else:
            self.send(b"application/json", b"{}")

    def handle(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        """Each upstream answers its own requests (an abstract method)."""
        raise NotImplementedError


async def serve(protocol: Callable[[], RawHttp], port: int) -> None:
    """Serve `protocol` on 127.0.0.1:`port` until cancelled."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(protocol, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()
