"""Keys meet the scheduler: a spent cloud budget or an on-prem key keeps requests local,
the key's own latency budget applies, and usage prices what local serving saved."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from fakes.openai_server import FakeOpenAIServer
from harness import GatewayProcess, standin_engine_config

PROVIDER_KEY = "sk-budget-provider-key-4242"
ADMIN = "admin-token-for-budget-tests"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, Any, str]]:
    fake = FakeOpenAIServer("openai", PROVIDER_KEY).start()
    engine = standin_engine_config("local", ["small"], scheduling={"max_concurrency": 1})
    config = {
        "engines": [engine],
        "providers": [
            {"name": "oai", "kind": "openai", "base_url": fake.base_url, "api_key": PROVIDER_KEY}
        ],
        "routes": {"smart": ["small", "oai/gpt-4o-mini"]},
        # The on-prem key's requests would size a reserve on this one-slot engine and send
        # the other keys' plain requests to the cloud (tests/gateway/test_reserve.py).
        "scheduler": {"latency_budget_ms": 1000, "max_queue_wait_s": 10, "reserve_blocking": 1},
        "auth": {"enabled": True},
        "admin": {"token": ADMIN},
    }
    try:
        with GatewayProcess(config, tmp_path_factory.mktemp("budget")) as gateway:
            gateway.wait_engine_ready("local")
            yield gateway, fake, f"http://127.0.0.1:{engine['port']}"
    finally:
        fake.stop()


def _key(gateway: GatewayProcess, name: str, **rules: Any) -> str:
    resp = httpx.post(
        f"{gateway.url}/admin/keys",
        json={"name": name, **rules},
        headers={"authorization": f"Bearer {ADMIN}"},
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["key"])


def _chat(gateway: GatewayProcess, key: str, text: str, **headers: str) -> httpx.Response:
    body = {"model": "smart", "messages": [{"role": "user", "content": text}]}
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {key}", **headers},
        timeout=30,
    )


def _while_busy(gateway: GatewayProcess, standin: str, key: str, action):
    """Run `action` while a slow request holds the engine's only slot."""
    httpx.post(f"{standin}/_standin/mode", json={"first_byte_delay_s": 1.5})
    holder = threading.Thread(target=_chat, args=(gateway, key, "hold the slot"))
    holder.start()
    time.sleep(0.3)
    try:
        return action()
    finally:
        holder.join()
        httpx.post(f"{standin}/_standin/mode", json={})


def test_spent_budget_keeps_the_request_local(setup) -> None:
    gateway, fake, standin = setup
    free = _key(gateway, "free-spender")
    broke = _key(gateway, "broke", budget_day_usd=0.0)
    fake.reset()
    spilled = _while_busy(gateway, standin, free, lambda: _chat(gateway, free, "marker-free"))
    assert spilled.headers["x-spillgate-reason"] == "overload"
    kept = _while_busy(gateway, standin, free, lambda: _chat(gateway, broke, "marker-broke"))
    assert kept.status_code == 200
    assert kept.headers["x-spillgate-route"] == "local"
    assert kept.headers["x-spillgate-reason"] == "kept_local_budget"
    seen = orjson.dumps([r.body for r in fake.requests]).decode()
    assert "marker-free" in seen and "marker-broke" not in seen


def test_on_prem_key_never_spills(setup) -> None:
    gateway, fake, standin = setup
    onprem = _key(gateway, "vault", onprem_only=True)
    fake.reset()
    kept = _while_busy(gateway, standin, onprem, lambda: _chat(gateway, onprem, "marker-vault"))
    assert kept.headers["x-spillgate-route"] == "local"
    assert kept.headers["x-spillgate-reason"] == "kept_local_private"
    assert "marker-vault" not in orjson.dumps([r.body for r in fake.requests]).decode()


def test_the_keys_latency_budget_decides(setup) -> None:
    gateway, _, standin = setup
    patient = _key(gateway, "patient", latency_budget_ms=60_000)
    waited = _while_busy(gateway, standin, patient, lambda: _chat(gateway, patient, "wait"))
    assert waited.headers["x-spillgate-route"] == "local"
    assert waited.headers["x-spillgate-reason"] == "local"


def test_usage_prices_what_local_serving_saved(setup) -> None:
    gateway, _, _ = setup
    saver = _key(gateway, "saver")
    assert _chat(gateway, saver, "served at home").headers["x-spillgate-route"] == "local"
    deadline = time.monotonic() + 10
    while True:  # the ledger writes in batches, off the request path
        rows = httpx.get(
            f"{gateway.url}/admin/usage",
            params={"group_by": "key", "key": "saver"},
            headers={"authorization": f"Bearer {ADMIN}"},
        ).json()["data"]
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert rows and rows[0]["local_requests"] == 1
    assert rows[0]["saved_usd"] > 0, "gpt-4o-mini's list price should price the local tokens"
