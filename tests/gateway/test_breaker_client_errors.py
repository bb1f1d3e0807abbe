"""One client's bad request never opens a provider's circuit for every client.

Only upstream faults count against a cloud target's breaker: refused connections,
timeouts, 5xx, 429, a stream cut short. A client's own mistakes do not: `stream` on
embeddings (refused with a 400 before anything is sent), a 4xx the provider answered, a
stream request the provider answered whole. A gateway process in front of fake providers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fakes.openai_server import FakeOpenAIServer, Fault
from harness import GatewayProcess

from spillgate.errors import UpstreamError
from spillgate.fallback.breaker import BreakerState, CircuitBreaker
from spillgate.fallback.resilience import is_upstream_fault

MODEL = "gpt-4o-mini"
THRESHOLD = 3
PROVIDERS = ("oai", "mixed", "throttled")
HELLO = [{"role": "user", "content": "Hello there"}]


class Setup:
    def __init__(self, gateway: GatewayProcess, fakes: dict[str, FakeOpenAIServer]) -> None:
        self.gateway = gateway
        self.fakes = fakes

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{self.gateway.url}/v1/{path}", json=body, timeout=30)

    def chat(self, route: str, **extra: Any) -> httpx.Response:
        return self.post("chat/completions", {"model": route, "messages": HELLO, **extra})

    def circuit(self, provider: str) -> float:
        target = f"{provider}/{MODEL}"
        for line in httpx.get(f"{self.gateway.url}/metrics").text.splitlines():
            if line.startswith(f'spillgate_circuit_state{{target="{target}"}}'):
                return float(line.rsplit(" ", 1)[1])
        raise KeyError(target)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    fakes = {
        name: FakeOpenAIServer("openai", f"sk-breaker-{name}-0000").start() for name in PROVIDERS
    }
    providers = [
        {
            "name": name,
            "kind": "openai",
            "base_url": fake.base_url,
            "api_key": fake.api_key,
            "retries": {"max_attempts": 1},
            "breaker": {"failure_threshold": THRESHOLD, "cooldown_s": 120},
        }
        for name, fake in fakes.items()
    ]
    routes = {name: [f"{name}/{MODEL}"] for name in PROVIDERS}
    gateway = GatewayProcess(
        {"providers": providers, "routes": routes}, tmp_path_factory.mktemp("breaker")
    )
    try:
        with gateway:
            yield Setup(gateway, fakes)
    finally:
        for fake in fakes.values():
            fake.stop()


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest) -> None:
    if "setup" in request.fixturenames:
        for fake in request.getfixturevalue("setup").fakes.values():
            fake.reset()


def test_stream_on_embeddings_is_refused_and_never_counts(setup: Setup) -> None:
    for _ in range(2 * THRESHOLD):
        resp = setup.post("embeddings", {"model": "oai", "input": "hello", "stream": True})
        assert resp.status_code == 400, resp.text
        error = resp.json()["error"]
        assert error["param"] == "stream" and "remove it" in error["message"]
    assert setup.fakes["oai"].requests == [], "nothing was sent to the provider"
    assert setup.chat("oai").status_code == 200
    assert setup.circuit("oai") == 0.0


def test_a_stream_request_answered_whole_is_not_a_cut_stream(setup: Setup) -> None:
    setup.fakes["oai"].fail_next(*[Fault(whole_for_stream=True)] * (2 * THRESHOLD))
    for _ in range(2 * THRESHOLD):
        resp = setup.chat("oai", stream=True)
        assert resp.status_code == 502
        assert resp.json()["error"]["code"] == "provider_not_streaming"
    assert setup.circuit("oai") == 0.0
    assert setup.chat("oai").status_code == 200


@pytest.mark.parametrize("status", [400, 404, 413, 422])
def test_client_errors_the_provider_answers_never_open_the_circuit(
    setup: Setup, status: int
) -> None:
    setup.fakes["oai"].fail_next(*[Fault(status=status)] * (2 * THRESHOLD))
    for _ in range(2 * THRESHOLD):
        assert setup.chat("oai").status_code in (400, 413, 502)
    assert setup.circuit("oai") == 0.0
    assert setup.chat("oai").status_code == 200, "other clients' chat still flows"


def test_a_clients_bad_requests_do_not_hide_a_failing_provider(setup: Setup) -> None:
    """A 4xx says nothing about the provider: it neither counts nor clears its failures."""
    statuses = [500, 400, 500, 400, 500]
    setup.fakes["mixed"].fail_next(*[Fault(status=s) for s in statuses])
    for _ in statuses:
        setup.chat("mixed")
    assert setup.circuit("mixed") == 2.0, "three 5xx in a row, with 400s between, open it"


def test_429s_count_as_upstream_faults(setup: Setup) -> None:
    setup.fakes["throttled"].fail_next(*[Fault(status=429)] * THRESHOLD)
    for _ in range(THRESHOLD):
        assert setup.chat("throttled").status_code == 429
    assert setup.circuit("throttled") == 2.0
    resp = setup.chat("throttled")
    assert resp.status_code == 503 and "circuit open" in resp.json()["error"]["message"]
    assert len(setup.fakes["throttled"].requests) == THRESHOLD, "the open circuit sent nothing"


# -- the pieces ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "fault"),
    [
        (503, "provider_unreachable", True),
        (504, "provider_timeout", True),
        (502, "provider_server_error", True),
        (502, "provider_stream_cut", True),
        (429, "provider_rate_limited", True),
        (502, "provider_auth_failed", True),
        (400, None, False),
        (413, None, False),
        (502, "provider_model_not_found", False),
        (502, "provider_not_streaming", False),
    ],
)
def test_which_errors_are_the_providers_fault(status: int, code: str | None, fault: bool) -> None:
    assert is_upstream_fault(UpstreamError(status, "x", code=code)) is fault


def test_an_inconclusive_answer_ends_a_probe_without_a_verdict() -> None:
    now = [1000.0]
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=10, clock=lambda: now[0])
    breaker.record_failure()
    breaker.record_inconclusive()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN, "the 4xx between did not clear the count"
    now[0] += 10
    breaker.on_attempt()
    assert not breaker.allows_request()
    breaker.record_inconclusive()
    assert breaker.state is BreakerState.HALF_OPEN and breaker.allows_request()
