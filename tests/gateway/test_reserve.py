"""The reserve for requests that may not spill, through the whole gateway.

Two stand-in engines of two slots each behind one gateway, each with a recording fake cloud
behind it on its route. On one, marked (on-prem) requests have been seen, so a slot is kept
for them: a plain request that would take the last free slot spills, a marked one takes
it. The other has seen no marked request: plain requests stay local up to its capacity.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fakes.openai_server import FakeOpenAIServer
from harness import GatewayProcess, standin_engine_config

KEY = "sk-reserve-provider-key-1234"
ADMIN = "admin-token-for-reserve-tests"
ON_PREM = {"x-spillgate-data": "on-prem"}
CLOUD = "oai/gpt-4o-mini"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, Any, dict]]:
    fake = FakeOpenAIServer("openai", KEY).start()
    engines = {
        name: standin_engine_config(
            name, [f"{name}-model"], args=["--max-num-seqs", "2"],
            scheduling={"max_concurrency": 2},
        )
        for name in ("private", "plain")
    }  # fmt: skip
    config = {
        "engines": list(engines.values()),
        "providers": [{"name": "oai", "kind": "openai", "base_url": fake.base_url, "api_key": KEY}],
        "routes": {name: [f"{name}-model", CLOUD] for name in engines},
        # One marked request holding a slot 2-5 s measures 0.07-0.17 Erlangs: a 15% blocking
        # target keeps one slot for it.
        "scheduler": {"latency_budget_ms": 1000, "max_queue_wait_s": 10, "reserve_blocking": 0.15},
        "admin": {"token": ADMIN},
    }
    try:
        with GatewayProcess(config, tmp_path_factory.mktemp("reserve")) as gateway:
            for name in engines:
                gateway.wait_engine_ready(name)
            urls = {name: f"http://127.0.0.1:{e['port']}" for name, e in engines.items()}
            yield gateway, fake, urls
    finally:
        fake.stop()


def _chat(gateway: GatewayProcess, route: str, text: str, headers: dict[str, str] | None = None):
    body = {"model": route, "messages": [{"role": "user", "content": text}], "max_tokens": 10}
    return httpx.post(
        f"{gateway.url}/v1/chat/completions", json=body, headers=headers or {}, timeout=30
    )


def _explain(gateway: GatewayProcess, route: str, headers: dict[str, str] | None = None):
    request = {"model": route, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(
        f"{gateway.url}/admin/route/explain",
        json={"request": request, "headers": headers or {}},
        headers={"authorization": f"Bearer {ADMIN}"},
    ).json()


def _slow(url: str, seconds: float) -> None:
    httpx.post(f"{url}/_standin/mode", json={"first_byte_delay_s": seconds})


def test_with_private_traffic_a_plain_request_leaves_the_last_slot_to_a_marked_one(setup) -> None:
    gateway, fake, urls = setup
    fake.reset()
    _slow(urls["private"], 2.0)
    # A marked request measures the private class: its arrival and how long it holds a slot.
    assert _chat(gateway, "private", "marked warm-up", ON_PREM).status_code == 200
    assert _explain(gateway, "private")["local"][0]["reserve"] == 1

    holder = ThreadPoolExecutor(1).submit(_chat, gateway, "private", "plain holder")
    deadline = time.monotonic() + 10
    while _explain(gateway, "private")["local"][0]["in_flight"] < 1:
        assert time.monotonic() < deadline, "the plain request never took its slot"
        time.sleep(0.05)

    plain = _explain(gateway, "private")
    assert plain["decision"]["reason"] == "overload"
    assert plain["decision"]["numbers"]["reserve_applied"] is True
    marked = _explain(gateway, "private", ON_PREM)
    assert marked["decision"]["targets"] == ["private"]
    assert marked["decision"]["numbers"]["reserve_applied"] is False

    with ThreadPoolExecutor(2) as pool:
        spilled = pool.submit(_chat, gateway, "private", "plain marker-spill")
        kept = pool.submit(_chat, gateway, "private", "marked marker-kept", ON_PREM)
        spilled_resp, kept_resp = spilled.result(), kept.result()
    assert spilled_resp.headers["x-spillgate-route"] == CLOUD
    assert spilled_resp.headers["x-spillgate-reason"] == "overload"
    assert kept_resp.status_code == 200 and kept_resp.headers["x-spillgate-route"] == "private"
    assert holder.result().headers["x-spillgate-route"] == "private"
    seen = str([r.body for r in fake.requests])
    assert "marker-spill" in seen and "marker-kept" not in seen


def test_without_private_traffic_plain_requests_stay_local_up_to_capacity(setup) -> None:
    gateway, fake, urls = setup
    fake.reset()
    _slow(urls["plain"], 1.0)
    assert _explain(gateway, "plain")["local"][0]["reserve"] == 0
    barrier = threading.Barrier(2)

    def together(text: str) -> httpx.Response:
        barrier.wait()
        return _chat(gateway, "plain", text)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(together, ["plain one", "plain two"]))
    assert [r.headers["x-spillgate-route"] for r in results] == ["plain", "plain"]
    assert fake.requests == []
