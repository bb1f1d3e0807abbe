"""Budgets that hold, and a queue no key can jump without bound.

- A request's worst case (prompt tokens at the input price, `n` answers of `max_tokens` at
  the output price) is held against its key's cloud budget while it runs at a cloud target:
  one large request, or many at once, cannot run past the budget. A worst case that does not
  fit is refused (429 `cloud_budget_exhausted`) or, where the local engine may serve, kept
  local (`kept_local_budget`), as for a spent budget. At the end the hold is given back and
  the real cost charged.
- `x-spillgate-data: on-prem` keeps a request home and lets it wait ahead of spillable ones,
  but one key only up to its share of the engine's slots (`scheduler.private_share_per_key`).

A gateway process in front of a stand-in engine with one slot and a fake provider
(gpt-4o-mini: $0.15 in, $0.60 out per 1M tokens).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fakes.openai_server import FakeOpenAIServer, Fault
from harness import GatewayProcess, standin_engine_config
from services import ADMIN, ADMIN_TOKEN, create_key

from spillgate.protocol import Endpoint
from spillgate.server.budgets import BudgetBook, OutputAsked, may_spend
from spillgate.server.keys import ApiKey
from spillgate.server.observe import Metrics

PROVIDER_KEY = "sk-reservation-provider-9012"
#: 20 answers of 1000 tokens at $0.60 per 1M: $0.012 at worst, over a $0.01 budget.
LARGE = {"n": 20, "max_tokens": 1000}


class Setup:
    def __init__(
        self, gateway: GatewayProcess, fakes: dict[str, FakeOpenAIServer], standin: str
    ) -> None:
        self.gateway = gateway
        self.fake = fakes["oai"]
        #: A provider of its own for slow answers: the scheduler learns how slow a target is.
        self.slow = fakes["slow"]
        self.standin = standin

    def key(self, name: str, **rules: Any) -> str:
        return str(create_key(self.gateway.url, name=name, **rules)["key"])

    def chat(self, key: str, model: str, text: str, **extra: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}", **extra.pop("headers", {})}
        body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
        return httpx.post(
            f"{self.gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=60
        )

    def spend(self, name: str) -> float:
        key = httpx.get(f"{self.gateway.url}/admin/keys/{name}", headers=ADMIN).json()
        return float(key["spend"]["day_usd"])

    def slow_engine(self, seconds: float) -> None:
        httpx.post(f"{self.standin}/_standin/mode", json={"first_byte_delay_s": seconds})


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    fakes = {name: FakeOpenAIServer("openai", PROVIDER_KEY).start() for name in ("oai", "slow")}
    engine = standin_engine_config("local", ["small"], scheduling={"max_concurrency": 1})
    config = {
        "engines": [engine],
        "providers": [
            {"name": name, "kind": "openai", "base_url": fake.base_url, "api_key": PROVIDER_KEY}
            for name, fake in fakes.items()
        ],
        "routes": {
            "cloud": ["oai/gpt-4o-mini"],
            "slow-cloud": ["slow/gpt-4o-mini"],
            "smart": ["small", "oai/gpt-4o-mini"],
        },
        "scheduler": {"latency_budget_ms": 1000, "max_queue_wait_s": 30},
        "auth": {"enabled": True},
        "admin": {"token": ADMIN_TOKEN},
    }
    try:
        with GatewayProcess(config, tmp_path_factory.mktemp("reservation")) as gateway:
            gateway.wait_engine_ready("local")
            yield Setup(gateway, fakes, f"http://127.0.0.1:{engine['port']}")
    finally:
        for fake in fakes.values():
            fake.stop()


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest) -> Iterator[None]:
    if "setup" not in request.fixturenames:
        yield  # a test of the pieces: no gateway
        return
    setup: Setup = request.getfixturevalue("setup")
    setup.fake.reset()
    setup.slow.reset()
    yield
    setup.slow_engine(0)


def test_a_worst_case_over_the_budget_is_refused_before_anything_is_sent(setup: Setup) -> None:
    key = setup.key("large-asker", budget_day_usd=0.01)
    refused = setup.chat(key, "cloud", "a big ask", **LARGE)
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "cloud_budget_exhausted")
    assert "lower max_tokens or n" in error["message"]
    assert setup.fake.requests == []
    small = setup.chat(key, "cloud", "a small ask", max_tokens=100)
    assert small.status_code == 200, "a worst case that fits still goes"
    assert 0 < setup.spend("large-asker") < 0.001, "the real cost is charged, not the hold"


def test_parallel_requests_see_each_others_holds(setup: Setup) -> None:
    """Each may cost $0.003 at worst: three fit a $0.01 budget at once, a fourth does not."""
    key = setup.key("parallel", budget_day_usd=0.01)
    setup.slow.fail_next(*[Fault(first_byte_delay_s=2.0)] * 6)
    with ThreadPoolExecutor(6) as pool:
        answers = list(
            pool.map(lambda i: setup.chat(key, "slow-cloud", f"ask {i}", max_tokens=5000), range(6))
        )
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(200) <= 3 and statuses.count(429) >= 3, statuses
    assert len(setup.slow.requests) == statuses.count(200)
    # Settled: the holds are given back, only the few real tokens stay charged.
    assert setup.chat(key, "slow-cloud", "after", max_tokens=5000).status_code == 200


def _while_engine_busy(setup: Setup, key: str, action: Callable[[], httpx.Response]):
    """Run `action` while a slow request holds the engine's only slot."""
    setup.slow_engine(1.5)
    holder = threading.Thread(target=setup.chat, args=(key, "small", "hold the slot"))
    holder.start()
    time.sleep(0.3)
    try:
        return action()
    finally:
        holder.join()


def test_an_overloaded_request_whose_worst_case_does_not_fit_stays_local(setup: Setup) -> None:
    key = setup.key("overloaded", budget_day_usd=0.01)
    kept = _while_engine_busy(setup, key, lambda: setup.chat(key, "smart", "large", **LARGE))
    assert kept.status_code == 200, kept.text
    assert kept.headers["x-spillgate-route"] == "local"
    assert kept.headers["x-spillgate-reason"] == "kept_local_budget"
    assert setup.fake.requests == []


def test_one_keys_on_prem_marks_do_not_push_other_keys_to_the_back(setup: Setup) -> None:
    marker = setup.key("marks-everything")
    other = setup.key("patient-other")
    setup.slow_engine(1.5)
    finished: list[str] = []

    def send(name: str, key: str, headers: dict[str, str]) -> None:
        resp = setup.chat(key, "smart", name, headers=headers)
        assert resp.status_code == 200 and resp.headers["x-spillgate-route"] == "local"
        finished.append(name)

    on_prem = {"x-spillgate-data": "on-prem"}
    threads = [threading.Thread(target=send, args=("marked0", marker, on_prem))]
    threads[0].start()
    time.sleep(0.3)  # marked0 holds the engine's only slot
    for i in (1, 2):
        threads.append(threading.Thread(target=send, args=(f"marked{i}", marker, on_prem)))
        threads[-1].start()
    time.sleep(0.3)
    # Patient enough to wait for the engine rather than spill.
    patient = {"x-spillgate-max-ttft-ms": "60000"}
    threads.append(threading.Thread(target=send, args=("other", other, patient)))
    threads[-1].start()
    for thread in threads:
        thread.join()
    # Behind one marked request at most, not behind all three (served one at a time).
    assert finished.index("other") < 3, finished
    assert setup.fake.requests == []


# -- the pieces ----------------------------------------------------------------------------


def test_billable_output_counts_every_answer_and_the_models_limit() -> None:
    asked = OutputAsked.of({"n": 3, "max_tokens": 100}, Endpoint.CHAT)
    assert asked.at_most(None, 4096) == 300
    assert asked.at_most(50, 4096) == 150, "the target lowers max_tokens to its limit"
    unset = OutputAsked.of({}, Endpoint.CHAT)
    assert unset.at_most(16384, 4096) == 16384, "the model's own limit, where documented"
    assert unset.at_most(None, 4096) == 4096
    assert OutputAsked.of({"best_of": 5, "n": 2}, Endpoint.COMPLETIONS).answers == 5
    assert OutputAsked.of({"input": "x"}, Endpoint.EMBEDDINGS).at_most(None, 4096) == 0


def test_holds_count_as_spent_until_given_back() -> None:
    key = ApiKey(id="k1", name="team", prefix="sk-sg-abcd", budget_day_usd=1.0)
    book = BudgetBook(Metrics())
    now = time.time()
    first = book.hold("k1", 0.6, now)
    assert book.spent("k1", now).day_usd == pytest.approx(0.6)
    verdict = may_spend(key, book.spent("k1", now), 0.6)
    assert not verdict.allowed and "lower max_tokens or n" in (verdict.message or "")
    book.unhold(first)
    assert may_spend(key, book.spent("k1", now), 0.6).allowed
