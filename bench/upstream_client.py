"""Spillgate with aiohttp vs httpx as its upstream client, same gateway, same run.

The design card names httpx; the performance guide measured httpx's AsyncClient far behind
aiohttp's in a 15-line proxy. This runs the whole gateway both ways: the httpx variant
replaces `LocalEngine.open` with an httpx implementation (here only, never shipped), the
rest of the gateway unchanged. Gateway on core 0, fake upstream and wrk on core 1.

    python bench/upstream_client.py [--duration 8]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from gateway_overhead import (  # noqa: E402
    GATEWAY_CORE,
    LOAD_CORE,
    SHARED_TOOLS,
    free_port,
    lua_script,
    start,
    wait_up,
    wrk,
)


def serve(client: str, config: str) -> None:
    """Run the gateway in this process, with `client` as the upstream client."""
    if client == "httpx":
        _use_httpx()
    from spillgate.server.cli import main

    sys.exit(main(["serve", "--config", config]))


def _use_httpx() -> None:
    import httpx

    from spillgate.models import engine as engine_module
    from spillgate.protocol import UpstreamReply, UpstreamRequest
    from spillgate.sse import UsageTap

    client = httpx.AsyncClient(limits=httpx.Limits(max_connections=None), timeout=600)

    async def open_with_httpx(self, request: UpstreamRequest) -> UpstreamReply:
        url = f"{self.base_url}/{request.endpoint.value}"
        headers = {"content-type": "application/json", "x-request-id": request.request_id}
        resp = await client.send(
            client.build_request("POST", url, content=request.body, headers=headers),
            stream=True,
        )
        content_type = resp.headers.get("content-type", "application/json")
        if not request.stream:
            data = await resp.aread()
            await resp.aclose()
            usage = engine_module._usage_of(data)
            return UpstreamReply(resp.status_code, content_type, body=data, usage=usage)
        reply = UpstreamReply(resp.status_code, content_type, close=resp.aclose)

        async def chunks():
            tap = UsageTap()
            try:
                async for data in resp.aiter_raw():
                    tap.feed(data)
                    yield data
            finally:
                reply.usage = tap.usage
                await reply.aclose()

        reply.chunks = chunks()
        return reply

    engine_module.LocalEngine.open = open_with_httpx  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--serve", choices=["aiohttp", "httpx"], help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.config)
        return
    work = Path(tempfile.mkdtemp(prefix="spillgate-client-"))
    up_port = free_port()
    upstream = start(
        [sys.executable, str(SHARED_TOOLS / "fake_upstream.py"), "--port", str(up_port)],
        LOAD_CORE,
        work / "up.log",
    )
    wait_up(f"http://127.0.0.1:{up_port}/health")
    script = lua_script(
        work / "chat.lua",
        {"model": "fake", "messages": [{"role": "user", "content": "Say hello."}]},
        "unused",
    )
    rows = {}
    try:
        for client in ("aiohttp", "httpx"):
            port = free_port()
            config = work / f"{client}.yaml"
            config.write_text(
                json.dumps(
                    {
                        "server": {"port": port},
                        "home": str(work / client),
                        "auth": {"enabled": False},
                        "engines": [
                            {
                                "name": "fake",
                                "url": f"http://127.0.0.1:{up_port}/v1",
                                "served_model_names": ["fake"],
                            }
                        ],
                    }
                )
            )
            cmd = [sys.executable, __file__, "--serve", client, "--config", str(config)]
            gateway = start(cmd, GATEWAY_CORE, work / f"{client}.log")
            try:
                url = f"http://127.0.0.1:{port}"
                wait_up(f"{url}/readyz")
                wrk(f"{url}/v1/chat/completions", script, 16, 2)  # warm-up
                rows[client] = {
                    c: wrk(f"{url}/v1/chat/completions", script, c, args.duration)
                    for c in (1, 16, 64)
                }
            finally:
                gateway.terminate()
                gateway.wait(10)
    finally:
        upstream.terminate()
    print("| upstream client | c=1 p50 ms | c=16 req/s | c=16 p99 ms | c=64 req/s |")
    print("|---|---|---|---|---|")
    for client, r in rows.items():
        print(
            f"| {client} | {r[1]['p50_ms']:.2f} | {r[16]['rps']:.0f} | {r[16]['p99_ms']:.1f} "
            f"| {r[64]['rps']:.0f} |"
        )


if __name__ == "__main__":
    main()
