"""A huge `max_tokens` (10^9, 2^64-1) never reaches a provider as sent: a cloud target whose
model documents its output limit gets that limit instead, one that documents none gets a
400 naming the field, and a local engine is held to its context window (a gap: another
target, or a 400 `context_too_long`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fakes.openai_server import FakeOpenAIServer
from harness import GatewayProcess, standin_engine_config

from spillgate.errors import UpstreamError
from spillgate.fallback.prices import PriceBook
from spillgate.protocol import Endpoint, UpstreamRequest
from spillgate.server.requests import LARGEST_OUTPUT_TOKENS, within_output_limit

KEY = "sk-output-limits-5150"
HUGE = [10**9, 2**64 - 1]


def _request(**fields: Any) -> UpstreamRequest:
    payload = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    return UpstreamRequest(Endpoint.CHAT, "m", "m", b"", payload, False, "limits")


@pytest.mark.parametrize("asked", HUGE)
def test_a_known_limit_lowers_both_length_fields(asked: int) -> None:
    capped = within_output_limit(_request(max_tokens=asked, max_completion_tokens=asked), 16384)
    assert (capped.payload["max_tokens"], capped.payload["max_completion_tokens"]) == (16384, 16384)


def test_a_length_within_the_limit_is_sent_as_asked() -> None:
    request = _request(max_tokens=100)
    assert within_output_limit(request, 16384) is request
    assert within_output_limit(request, None) is request
    limit = _request(max_completion_tokens=LARGEST_OUTPUT_TOKENS)
    assert within_output_limit(limit, None) is limit


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_without_a_known_limit_a_length_no_model_reaches_is_refused(field: str) -> None:
    with pytest.raises(UpstreamError) as caught:
        within_output_limit(_request(**{field: LARGEST_OUTPUT_TOKENS + 1}), None)
    err = caught.value
    assert (err.status, err.type, err.param) == (400, "invalid_request_error", field)
    assert err.code == "integer_above_max_value"
    assert err.retryable, "the route's next target may know its limit"


def test_the_shipped_table_knows_the_documented_output_limits() -> None:
    book = PriceBook.shipped()
    assert book.max_output("openai", "gpt-4o-mini-2024-07-18") == 16384
    assert book.max_output("anthropic", "claude-sonnet-4-5-20250929") == 64000
    assert book.max_output("gemini", "models/gemini-2.5-flash") == 65536
    assert book.max_output("mistral", "mistral-large-latest") is None  # not documented


# -- through the gateway ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limits(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[GatewayProcess, FakeOpenAIServer]]:
    fake = FakeOpenAIServer("openai", KEY).start()
    provider = {"base_url": fake.base_url, "api_key": KEY}
    config = {
        "engines": [standin_engine_config("local", ["standin-model"])],
        "providers": [
            {"name": "oai", "kind": "openai", **provider},
            {"name": "compat", "kind": "openai-compatible", **provider},
        ],
        "routes": {
            "hybrid": ["standin-model", "oai/gpt-4o-mini"],
            "mystery": ["compat/mystery-model"],
        },
    }
    try:
        with GatewayProcess(config, tmp_path_factory.mktemp("limits")) as gateway:
            gateway.wait_engine_ready("local")
            yield gateway, fake
    finally:
        fake.stop()


def _chat(gateway: GatewayProcess, model: str, **fields: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **fields}
    return httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=30)


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("asked", HUGE)
def test_a_spilled_request_gets_the_providers_documented_limit(
    limits: tuple[GatewayProcess, FakeOpenAIServer], field: str, asked: int
) -> None:
    gateway, fake = limits
    deadline = time.monotonic() + 15  # until the engine's context window has been read
    while True:
        fake.reset()
        resp = _chat(gateway, "hybrid", **{field: asked})
        if resp.headers.get("x-spillgate-reason") != "local" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-spillgate-route"] == "oai/gpt-4o-mini"
    assert resp.headers["x-spillgate-reason"] == "context_too_long"
    assert fake.requests[-1].body[field] == 16384


@pytest.mark.parametrize("asked", HUGE)
def test_a_provider_without_a_documented_limit_is_not_sent_a_huge_one(
    limits: tuple[GatewayProcess, FakeOpenAIServer], asked: int
) -> None:
    gateway, fake = limits
    fake.reset()
    resp = _chat(gateway, "mystery", max_tokens=asked)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert (error["param"], error["code"]) == ("max_tokens", "integer_above_max_value")
    assert fake.requests == []


def test_a_plausible_length_reaches_a_provider_without_a_documented_limit(
    limits: tuple[GatewayProcess, FakeOpenAIServer],
) -> None:
    gateway, fake = limits
    fake.reset()
    assert _chat(gateway, "mystery", max_tokens=5000).status_code == 200
    assert fake.requests[-1].body["max_tokens"] == 5000
