"""Prefix affinity through the whole gateway: two stand-in engines serve one model.

Requests that share a long system prompt go to the same engine (vLLM's prefix cache then
hits there) while it is within its load bound; other prefixes spread over both engines;
with `scheduler.prefix_affinity: false` the least predicted wait picks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import GatewayProcess, standin_engine_config

ADMIN = "admin-token-for-affinity-tests"
# ~1.6 KB; its prefix hashes to e2, which an idle tie without affinity never picks.
SYSTEM = "You are the support assistant of a busy hardware shop. " * 30


def _gateway(workdir: Path, affinity: bool) -> GatewayProcess:
    engines = [
        standin_engine_config(name, ["shared"], scheduling={"max_concurrency": 4})
        for name in ("e1", "e2")
    ]
    config = {
        "engines": engines,
        "scheduler": {"prefix_affinity": affinity},
        "admin": {"token": ADMIN},
    }
    return GatewayProcess(config, workdir)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with _gateway(tmp_path_factory.mktemp("affinity"), affinity=True) as gateway:
        for name in ("e1", "e2"):
            gateway.wait_engine_ready(name)
        yield gateway


def _messages(system: str, question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]


def _route(gateway: GatewayProcess, system: str, question: str) -> str:
    body = {"model": "shared", "messages": _messages(system, question), "max_tokens": 5}
    resp = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.headers["x-spillgate-route"]


def _picked(gateway: GatewayProcess, system: str) -> str:
    request = {"model": "shared", "messages": _messages(system, "hi")}
    answer = httpx.post(
        f"{gateway.url}/admin/route/explain",
        json={"request": request},
        headers={"authorization": f"Bearer {ADMIN}"},
    ).json()
    return str(answer["decision"]["numbers"]["picked"])


def test_a_shared_system_prompt_keeps_to_one_engine(gateway: GatewayProcess) -> None:
    routes = {_route(gateway, SYSTEM, f"question {i}") for i in range(8)}
    assert routes == {"e2"}
    assert _picked(gateway, SYSTEM) == "affinity"


def test_different_prefixes_spread_over_both_engines(gateway: GatewayProcess) -> None:
    routes = {_route(gateway, f"system prompt number {i}", "hello") for i in range(12)}
    assert routes == {"e1", "e2"}


def test_without_affinity_the_least_wait_picks(tmp_path: Path) -> None:
    with _gateway(tmp_path, affinity=False) as gateway:
        for name in ("e1", "e2"):
            gateway.wait_engine_ready(name)
        assert _picked(gateway, SYSTEM) == "least_wait"
        # Idle engines tie on the predicted wait: the pick no longer follows the prefix.
        routes = {_route(gateway, SYSTEM, f"question {i}") for i in range(8)}
        assert routes == {"e1"}, "idle engines tie: the lower name, not the prefix's e2"
