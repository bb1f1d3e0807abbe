"""Provider faults through the gateway: each ends in the right status or a transparent fail-over.

One gateway process, fake providers on loopback told to fail request by request: 429 with
Retry-After, 500, a timeout before the first byte, a stream cut before or after its first
event, a malformed event, an error event, a client that leaves, a breaker that opens and
closes again, a provider refusing our key. The last test greps the whole run's logs for keys.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from fakes.openai_server import FakeOpenAIServer, Fault
from harness import GatewayProcess

KEYS = {
    "primary": "sk-fault-primary-aaaa1111",
    "backup": "sk-fault-backup-bbbb2222",
    "single": "sk-fault-single-cccc3333",
    "held": "sk-fault-held-dddd4444",
    "flaky": "sk-fault-flaky-eeee5555",
}
WRONG_KEY = "sk-fault-wrong-ffff6666"
MODEL = "gpt-4o-mini"
TIGHT = {
    "timeouts": {"connect_s": 2, "first_byte_s": 1.0, "total_s": 20},
    # High: these targets fail on purpose test after test; the breaker has its own test.
    "breaker": {"failure_threshold": 100},
    "retries": {"max_attempts": 2, "backoff_base_s": 0.05, "backoff_max_s": 0.1,
                "max_retry_after_s": 2},
}  # fmt: skip
HELLO: Any = [{"role": "user", "content": "Hello there"}]


class Faults:
    def __init__(self, gateway: GatewayProcess, fakes: dict[str, FakeOpenAIServer]) -> None:
        self.gateway = gateway
        self.fakes = fakes
        self.client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)

    def chat(self, route: str, **extra: Any) -> Any:
        return self.client.chat.completions.with_raw_response.create(
            model=route, messages=HELLO, **extra
        )

    def circuit(self, target: str) -> float | None:
        for line in httpx.get(f"{self.gateway.url}/metrics").text.splitlines():
            if line.startswith(f'spillgate_circuit_state{{target="{target}"}}'):
                return float(line.rsplit(" ", 1)[1])
        return None


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    fakes = {name: FakeOpenAIServer("openai", key).start() for name, key in KEYS.items()}

    def provider(name: str, **extra: Any) -> dict[str, Any]:
        base = {"name": name, "kind": "openai", "base_url": fakes[name].base_url}
        return {**base, "api_key": KEYS[name], **extra}

    providers = [
        provider("primary", **TIGHT),
        provider("backup"),
        provider("single", **TIGHT),
        provider("held", **TIGHT),
        provider("flaky", retries={"max_attempts": 1},
                 breaker={"failure_threshold": 2, "cooldown_s": 1.5}),
        {"name": "wrongkey", "kind": "openai", "base_url": fakes["backup"].base_url,
         "api_key": WRONG_KEY},
    ]  # fmt: skip
    routes = {
        "failover": [f"primary/{MODEL}", f"backup/{MODEL}"],
        "alone": [f"single/{MODEL}"],
        "held": [f"held/{MODEL}"],
        "flaky": [f"flaky/{MODEL}", f"backup/{MODEL}"],
        "badkey": [f"wrongkey/{MODEL}"],
    }
    workdir = tmp_path_factory.mktemp("cloud-faults")
    gateway = GatewayProcess({"providers": providers, "routes": routes}, workdir)
    try:
        with gateway:
            yield Faults(gateway, fakes)
    finally:
        for fake in fakes.values():
            fake.stop()


@pytest.fixture(autouse=True)
def _fresh_fakes(faults: Faults) -> None:
    for fake in faults.fakes.values():
        fake.reset()


def _wait_for(check: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.05)


def test_429_with_a_short_retry_after_is_waited_out(faults: Faults) -> None:
    faults.fakes["primary"].fail_next(Fault(status=429, headers={"retry-after": "1"}))
    raw = faults.chat("failover")
    assert raw.headers["x-spillgate-route"] == f"primary/{MODEL}"
    assert len(faults.fakes["primary"].requests) == 2
    assert faults.fakes["backup"].requests == []


def test_429_with_a_long_retry_after_reaches_the_client_and_holds_the_target(
    faults: Faults,
) -> None:
    faults.fakes["held"].fail_next(Fault(status=429, headers={"retry-after": "120"}))
    with pytest.raises(openai.RateLimitError) as caught:
        faults.chat("held")
    assert caught.value.response.headers["retry-after"] == "120"
    assert len(faults.fakes["held"].requests) == 1, "a long Retry-After is not waited out"
    # The provider asked for two minutes: the target sits out, the fake sees nothing more.
    with pytest.raises(openai.InternalServerError) as again:
        faults.chat("held")
    assert again.value.status_code == 503
    assert int(again.value.response.headers["retry-after"]) > 100
    assert len(faults.fakes["held"].requests) == 1
    assert faults.circuit(f"held/{MODEL}") == 2.0


def test_500_fails_over_to_the_next_target(faults: Faults) -> None:
    faults.fakes["primary"].fail_next(Fault(status=500), Fault(status=500))
    raw = faults.chat("failover")
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-spillgate-route"] == f"backup/{MODEL}"
    assert len(faults.fakes["primary"].requests) == 2, "tried, retried, then moved on"


def test_500_at_the_only_target_is_a_502(faults: Faults) -> None:
    faults.fakes["single"].fail_next(Fault(status=500), Fault(status=500))
    with pytest.raises(openai.InternalServerError) as caught:
        faults.chat("alone")
    assert caught.value.status_code == 502
    assert caught.value.code == "provider_server_error"


def test_a_timeout_before_the_first_byte_fails_over(faults: Faults) -> None:
    slow = Fault(first_byte_delay_s=3)
    faults.fakes["primary"].fail_next(slow, slow)
    raw = faults.chat("failover")
    assert raw.headers["x-spillgate-route"] == f"backup/{MODEL}"


def test_a_timeout_at_the_only_target_is_a_504(faults: Faults) -> None:
    slow = Fault(first_byte_delay_s=3)
    faults.fakes["single"].fail_next(slow, slow)
    with pytest.raises(openai.APIStatusError) as caught:
        faults.chat("alone")
    assert caught.value.status_code == 504
    assert caught.value.code == "provider_timeout"
    assert "first_byte_s" in caught.value.message


def _stream_text(faults: Faults, route: str) -> tuple[str, Any]:
    raw = faults.client.chat.completions.with_raw_response.create(
        model=route, messages=HELLO, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    return text, raw.headers


def test_a_stream_cut_before_its_first_event_fails_over(faults: Faults) -> None:
    faults.fakes["primary"].fail_next(Fault(cut_after_chunks=0), Fault(cut_after_chunks=0))
    text, headers = _stream_text(faults, "failover")
    assert text == "fake answer: 2 words, 0 images, 0 tool results"
    assert headers["x-spillgate-route"] == f"backup/{MODEL}"


def test_a_stream_cut_midway_ends_in_an_error_and_is_not_retried(faults: Faults) -> None:
    faults.fakes["primary"].fail_next(Fault(cut_after_chunks=3))
    received = ""
    with pytest.raises(openai.APIError) as caught:
        stream = faults.client.chat.completions.create(
            model="failover", messages=HELLO, stream=True
        )
        for chunk in stream:
            received += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert received == "fake answer:", "the client had its first bytes"
    assert "stopped mid-stream" in caught.value.message
    assert len(faults.fakes["primary"].requests) == 1
    assert faults.fakes["backup"].requests == [], "no retry once the client has bytes"


def test_a_malformed_first_event_fails_over(faults: Faults) -> None:
    broken = Fault(malformed_after_chunks=0)
    faults.fakes["primary"].fail_next(broken, broken)
    text, headers = _stream_text(faults, "failover")
    assert headers["x-spillgate-route"] == f"backup/{MODEL}"
    assert text.startswith("fake answer")


def test_a_malformed_event_midway_ends_in_an_error(faults: Faults) -> None:
    faults.fakes["primary"].fail_next(Fault(malformed_after_chunks=3))
    with pytest.raises(openai.APIError) as caught:
        _stream_text(faults, "failover")
    assert "malformed stream event" in caught.value.message
    assert faults.fakes["backup"].requests == []


def test_a_provider_error_event_midway_ends_in_an_error(faults: Faults) -> None:
    faults.fakes["primary"].fail_next(Fault(error_event_after_chunks=2))
    with pytest.raises(openai.APIError) as caught:
        _stream_text(faults, "failover")
    assert "reported an error mid-stream" in caught.value.message


def test_a_client_that_leaves_cancels_the_provider_call(faults: Faults) -> None:
    fake = faults.fakes["primary"]
    fake.fail_next(Fault(chunk_delay_s=0.1, extra_words=300))
    body = {"model": "failover", "messages": HELLO, "stream": True}
    with httpx.stream("POST", f"{faults.gateway.url}/v1/chat/completions", json=body) as resp:
        lines = resp.iter_lines()
        assert next(lines).startswith("data: ")
    _wait_for(lambda: fake.cancelled_streams == 1)
    assert fake.completed_streams == 0


def test_the_breaker_opens_skips_the_target_then_closes_after_a_good_probe(
    faults: Faults,
) -> None:
    flaky = faults.fakes["flaky"]
    flaky.fail_next(Fault(status=500), Fault(status=500))
    for _ in range(2):
        assert faults.chat("flaky").headers["x-spillgate-route"] == f"backup/{MODEL}"
    assert faults.circuit(f"flaky/{MODEL}") == 2.0, "open after two failures in a row"
    assert faults.chat("flaky").headers["x-spillgate-route"] == f"backup/{MODEL}"
    assert len(flaky.requests) == 2, "an open circuit sends nothing to the provider"
    _wait_for(lambda: faults.circuit(f"flaky/{MODEL}") == 1.0)  # half-open after the cooldown
    assert faults.chat("flaky").headers["x-spillgate-route"] == f"flaky/{MODEL}"
    assert faults.circuit(f"flaky/{MODEL}") == 0.0


def test_a_provider_refusing_our_key_is_a_502_that_does_not_repeat_it(faults: Faults) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        faults.chat("badkey")
    assert caught.value.status_code == 502
    assert caught.value.code == "provider_auth_failed"
    assert WRONG_KEY not in caught.value.response.text


def test_no_provider_key_in_logs_metrics_or_models_after_the_run(faults: Faults) -> None:
    # Runs last in this module: the logs hold every fault above (retries, fail-overs, a 401
    # whose provider message echoed the key).
    stream = faults.client.chat.completions.create(model="failover", messages=HELLO, stream=True)
    assert list(stream)
    logs = faults.gateway.logs()
    assert '"status":502' in logs and "retrying cloud target" in logs, "the run had failures"
    exposed = logs + httpx.get(f"{faults.gateway.url}/metrics").text
    exposed += httpx.get(f"{faults.gateway.url}/v1/models").text
    exposed += json.dumps(httpx.get(f"{faults.gateway.url}/readyz").json())
    for key in [*KEYS.values(), WRONG_KEY]:
        assert key not in exposed
        assert key[-8:] not in exposed, "not even the tail of a key"


def test_a_client_leaving_a_whole_answer_cancels_the_provider_call(tmp_path) -> None:
    from fakes.openai_server import FakeOpenAIServer, Fault
    from harness import GatewayProcess

    fake = FakeOpenAIServer("openai", "sk-leave-1234567890").start()
    config = {
        "providers": [
            {
                "name": "oai",
                "kind": "openai",
                "base_url": fake.base_url,
                "api_key": "sk-leave-1234567890",
            }
        ],
        "routes": {"gpt": ["oai/gpt-4o-mini"]},
    }
    try:
        with GatewayProcess(config, tmp_path) as gateway:
            fake.fail_next(Fault(first_byte_delay_s=2.0))
            body = {"model": "gpt", "messages": [{"role": "user", "content": "slow"}]}
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=0.5)
            deadline = time.monotonic() + 10
            while fake.abandoned == 0 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert fake.abandoned == 1, "the provider call outlived the client"
            metrics = httpx.get(f"{gateway.url}/metrics").text
            assert 'status="499"' in metrics
    finally:
        fake.stop()
