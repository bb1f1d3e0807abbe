"""A route that lists a local model first: local while the engine is ready, cloud when not."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from fakes.openai_server import FakeOpenAIServer
from harness import GatewayProcess, standin_engine_config

KEY = "sk-routes-1234abcd"


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, Any]]:
    fake = FakeOpenAIServer("openai", KEY).start()
    engine = standin_engine_config("local", ["standin-model"])
    config = {
        "engines": [engine],
        "providers": [{"name": "oai", "kind": "openai", "base_url": fake.base_url, "api_key": KEY}],
        "routes": {"hybrid": ["standin-model", "oai/gpt-4o-mini"]},
    }
    try:
        with GatewayProcess(config, tmp_path_factory.mktemp("hybrid")) as gateway:
            yield gateway, fake
    finally:
        fake.stop()


def test_local_first_then_cloud_when_the_engine_is_not_ready(
    hybrid: tuple[GatewayProcess, Any],
) -> None:
    gateway, fake = hybrid
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    messages: Any = [{"role": "user", "content": "hi"}]
    # /readyz is ready as soon as the cloud target is; the engine starts in its own time.
    _wait_until(gateway, local_ready=True)
    raw = client.chat.completions.with_raw_response.create(model="hybrid", messages=messages)
    assert raw.headers["x-spillgate-route"] == "local"
    assert raw.headers["x-spillgate-reason"] == "local"
    assert "x-spillgate-cost-usd" not in raw.headers, "local answers are not priced"
    standin = f"http://127.0.0.1:{gateway.config['engines'][0]['port']}"
    last = httpx.get(f"{standin}/_standin/stats").json()["last_body"]
    assert '"model":"standin-model"' in last.replace(" ", ""), "the engine's own model name"
    assert fake.requests == []

    httpx.post(f"{standin}/_standin/mode", json={"healthy": False})
    _wait_until(gateway, local_ready=False)
    raw = client.chat.completions.with_raw_response.create(model="hybrid", messages=messages)
    assert raw.headers["x-spillgate-route"] == "oai/gpt-4o-mini"
    assert raw.headers["x-spillgate-reason"] == "local_down"
    assert fake.requests[-1].body["model"] == "gpt-4o-mini"
    httpx.post(f"{standin}/_standin/mode", json={"healthy": True})


def _wait_until(gateway: GatewayProcess, local_ready: bool) -> None:
    deadline = time.monotonic() + 30
    while httpx.get(f"{gateway.url}/readyz").json()["engines"]["local"] is not local_ready:
        assert time.monotonic() < deadline, f"the engine never became ready={local_ready}"
        time.sleep(0.05)
