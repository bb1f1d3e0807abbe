"""The open-loop load client of bench/hot_path.py, in its own process on the load core.

    python bench/trace_client.py SPEC.json

SPEC: `url`, `key`, `requests` ([seconds after start, prompt tokens, max_tokens], ...),
`announce` (print `OPEN n` once every stream has its first chunk, for the memory test) and
`open_timeout_s`. Prints `START` when the first request is due, then one JSON line of
results: answered, failed, routes seen, time to first chunk, seconds, lateness.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

#: The route every gateway in bench/hot_path.py serves (Spillgate's has a cloud target).
MODEL = "chat"
PROSE = "the gateway forwards each request to a local engine unless it is full "
SYSTEM = "You are a careful code reviewer."


def prompt(i: int, tokens: int) -> str:
    """About `tokens` tokens of prose (~4 characters each), different in each request."""
    text = f"Request {i}. " + PROSE * (tokens * 4 // len(PROSE) + 1)
    return text[: tokens * 4]


async def client(spec: dict[str, Any]) -> dict[str, Any]:
    """Send each request at its scheduled time (open loop), read every stream to the end."""
    loop = asyncio.get_running_loop()
    headers = {"content-type": "application/json", "authorization": f"Bearer {spec['key']}"}
    stats: dict[str, Any] = {"ok": 0, "failed": 0, "errors": [], "routes": {}, "ttft_ms": []}
    expected, opened = len(spec["requests"]), 0
    all_open = asyncio.Event()

    async def one(session: aiohttp.ClientSession, i: int, tokens: int, max_tokens: int) -> None:
        nonlocal opened
        request = {
            "model": MODEL,
            "stream": True,
            "max_tokens": max_tokens,
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": prompt(i, tokens)},
            ],
        }
        body = json.dumps(request).encode()
        began = loop.time()
        try:
            async with session.post(spec["url"], data=body, headers=headers) as resp:
                route = resp.headers.get("x-spillgate-route", "-")
                stats["routes"][route] = stats["routes"].get(route, 0) + 1
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}: {(await resp.read())[:200]!r}")
                tail, first = b"", True
                async for chunk in resp.content.iter_any():
                    if first:
                        stats["ttft_ms"].append(1000 * (loop.time() - began))
                        first, opened = False, opened + 1
                        if opened == expected:
                            all_open.set()
                    tail = (tail + chunk)[-64:]
                if b"[DONE]" not in tail:
                    raise RuntimeError("stream ended without [DONE]")
            stats["ok"] += 1
        except Exception as err:  # counted and reported, the run goes on
            stats["failed"] += 1
            if len(stats["errors"]) < 5:
                stats["errors"].append(f"{type(err).__name__}: {err}")

    async def announce() -> None:
        """For the memory test: say on stdout when every stream has its first chunk."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_open.wait(), spec["open_timeout_s"])
        print(f"OPEN {opened}", flush=True)

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        watcher = asyncio.create_task(announce()) if spec.get("announce") else None
        print("START", flush=True)  # the caller's CPU window opens here, not at our import
        t0, late, tasks = loop.time() + 0.1, 0.0, []
        started = time.monotonic()
        for i, (at, tokens, max_tokens) in enumerate(spec["requests"]):
            delay = t0 + at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            late = max(late, -delay)
            tasks.append(asyncio.create_task(one(session, i, tokens, max_tokens)))
        await asyncio.gather(*tasks)
        if watcher:
            await watcher
    stats["seconds"] = time.monotonic() - started
    stats["max_late_ms"] = 1000 * late
    return stats


if __name__ == "__main__":
    spec = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(asyncio.run(client(spec))))
