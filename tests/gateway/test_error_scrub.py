"""Upstream error text leaves without our keys and without the prompt it quoted back.

A fake provider echoes the gateway's provider key and the prompt in its 400 body (as an
OpenAI-family server that passes pydantic errors through does); a stand-in engine quotes the
request in its 500. Neither the client's answer, nor the gateway's log, nor a span carries
either of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fakes.openai_server import FakeOpenAIServer, Fault
from harness import GatewayProcess, standin_engine_config
from services import wait_for
from test_tracing import Collector

from spillgate.scrub import REDACTED, error_message, remember, safe_detail, scrub

PROVIDER_KEY = "sk-leaky-provider-key-0123456789abcdef"
PROMPT = "zebra-canary-4f1e9d: the quarterly figures before they are public"
MESSAGES = [{"role": "user", "content": PROMPT}]


@pytest.fixture(scope="module")
def leaky() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer("openai", PROVIDER_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.server.shutdown()


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, leaky: FakeOpenAIServer, collector: Collector
) -> Iterator[GatewayProcess]:
    config: dict[str, Any] = {
        "engines": [standin_engine_config("standin", ["standin-model"])],
        "providers": [
            {"name": "leaky", "kind": "openai", "base_url": leaky.base_url,
             "api_key": PROVIDER_KEY, "retries": {"max_attempts": 1}},
        ],
        "routes": {"cloud": ["leaky/gpt-4o-mini"]},
        "privacy": {"detect": False},
        "tracing": {"otlp_endpoint": collector.url},
    }  # fmt: skip
    with GatewayProcess(config, tmp_path_factory.mktemp("scrub")) as gw:
        # The engine test talks to the stand-in itself: it must be up, not just launched.
        gw.wait_engine_ready("standin")
        yield gw


def chat(gateway: GatewayProcess, model: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": model, "messages": MESSAGES},
        timeout=30,
    )


def assert_clean(text: str) -> None:
    assert PROVIDER_KEY not in text
    assert "zebra-canary" not in text


def span_texts(collector: Collector) -> str:
    texts = []
    for span in collector.spans:
        texts.append(span.status.message)
        texts += [str(a.value) for a in span.attributes]
    return "\n".join(texts)


def test_a_provider_400_echoing_key_and_prompt_reaches_no_one(
    gateway: GatewayProcess, leaky: FakeOpenAIServer, collector: Collector
) -> None:
    leaky.fail_next(Fault(status=400, echo_request=True))
    resp = chat(gateway, "cloud")
    assert resp.status_code == 400
    message = resp.json()["error"]["message"]
    assert "provider 'leaky' rejected the request" in message
    assert "messages.0.content" in message  # the part that says what to change stays
    assert_clean(resp.text)
    wait_for(lambda: "sk-leaky" in str(leaky.requests[-1].headers), what="the provider call")
    wait_for(
        lambda: any(s.status.message for s in collector.by_name("spillgate.upstream")),
        what="the failed upstream span",
    )
    assert_clean(span_texts(collector))
    assert_clean(gateway.logs())


def test_an_engine_500_quoting_the_request_is_logged_without_it(
    gateway: GatewayProcess,
) -> None:
    standin = f"http://127.0.0.1:{gateway.config['engines'][0]['port']}"
    httpx.post(f"{standin}/_standin/mode", json={"status": 500, "echo_errors": True})
    try:
        resp = chat(gateway, "standin-model")
    finally:
        httpx.post(f"{standin}/_standin/mode", json={})
    assert resp.status_code >= 500
    assert_clean(resp.text)
    wait_for(lambda: "answered 500" in gateway.logs(), what="the engine failure in the log")
    assert_clean(gateway.logs())


# -- the rules themselves --------------------------------------------------------------------


def test_a_remembered_secret_is_replaced_everywhere_in_a_text() -> None:
    remember("sk-unit-secret-aaaa1111")
    remember("short")  # too short to be a key: left alone, or every line would be garbled
    text = "key sk-unit-secret-aaaa1111 and again sk-unit-secret-aaaa1111; short"
    assert scrub(text) == f"key {REDACTED} and again {REDACTED}; short"


@pytest.mark.parametrize(
    "body",
    [
        b'{"error": {"message": "1 validation error\\n  Input should be a valid string '
        b"[type=string_type, input_value='zebra-canary secret', input_type=str]\"}}",
        b'{"object": "error", "message": "1 validation error:\\n  {\'type\': \'value_error\', '
        b"'loc': ('body',), 'input': {'messages': [{'content': 'zebra-canary'}]}}\"}",
        b'{"detail": [{"loc": ["body", "messages"], "msg": "field required", '
        b'"input": "zebra-canary"}]}',
    ],
)
def test_an_upstream_error_keeps_its_message_but_not_the_input_it_quotes(body: bytes) -> None:
    message = error_message(body)
    assert message is not None
    assert "zebra-canary" not in message


def test_an_upstream_message_is_cut_short() -> None:
    assert len(safe_detail("x" * 10_000)) <= 500
