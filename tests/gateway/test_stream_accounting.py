"""Accounting holds whatever an upstream reports, and counts what a stream relayed.

- Usage that is not a token count (negative, a string, a list, beyond any model, the wrong
  type), or none at all, never turns an answer into a 500 nor loses its record: the answer
  reaches the client, the record counts what the answer carried, and the anomaly is logged
  without the prompt and counted on /metrics.
- A stream cut before its usage chunk (by the provider, the engine or the client) counts
  the completion tokens of the deltas relayed and the prompt as estimated, and costs them.
- A local stream whose client did not ask for usage is still counted (the gateway asks the
  engine for it, and drops the usage chunk on the way back): its tokens reach TPM.

One gateway process in front of a stand-in engine and a fake provider; the ledger is read
from its SQLite file.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fakes.openai_server import FakeOpenAIServer, Fault
from harness import GatewayProcess, standin_engine_config
from services import ADMIN_TOKEN, create_key, metric, sqlite_rows, wait_for

from spillgate.server.tally import StreamTally, text_tokens
from spillgate.sse import UsageTap

PROVIDER_KEY = "sk-accounting-provider-5678"
CLOUD = "oai/gpt-4o-mini"
PROMPT_MARKER = "marker-prompt-text-7f3a"
COLUMNS = ("prompt_tokens", "completion_tokens", "cost_usd", "status", "complete", "target")

BAD_USAGE: list[Any] = [
    {"prompt_tokens": -5, "completion_tokens": -7, "total_tokens": -12},
    {"prompt_tokens": "12abc", "completion_tokens": [1], "total_tokens": None},
    {"prompt_tokens": 2**62, "completion_tokens": 1e30},
    {"prompt_tokens": 3.5, "completion_tokens": True},
    {"prompt_tokens": 4, "completion_tokens": 2, "prompt_tokens_details": "none"},
    {"prompt_tokens": 4, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 9}},
    "not an object",
    [1, 2, 3],
]


class Setup:
    def __init__(self, gateway: GatewayProcess, fake: FakeOpenAIServer, standin: str) -> None:
        self.gateway = gateway
        self.fake = fake
        self.standin = standin
        self.key = create_key(gateway.url, name="counted")["key"]

    def chat(self, model: str, key: str | None = None, **extra: Any) -> tuple[str, httpx.Response]:
        rid = uuid.uuid4().hex
        body = {"model": model, "messages": [{"role": "user", "content": PROMPT_MARKER}], **extra}
        resp = httpx.post(
            f"{self.gateway.url}/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {key or self.key}", "x-request-id": rid},
            timeout=30,
        )
        return rid, resp

    def record(self, rid: str) -> dict[str, Any]:
        """The request's final ledger record."""
        home = Path(self.gateway.config["home"])
        sql = (
            f"SELECT {', '.join(COLUMNS)} FROM usage_records "
            f"WHERE request_id = '{rid}' AND complete = 1"
        )
        rows: list[Any] = []

        def written() -> bool:
            rows[:] = sqlite_rows(home, sql)
            return bool(rows)

        wait_for(written, what=f"the ledger record of {rid}")
        return dict(zip(COLUMNS, rows[0], strict=True))

    def anomalies(self, route: str, problem: str) -> float:
        labels = f'problem="{problem}",route="{route}"'
        try:
            return metric(self.gateway.url, "spillgate_usage_anomalies_total", labels)
        except KeyError:
            return 0.0

    def standin_mode(self, **mode: Any) -> None:
        httpx.post(f"{self.standin}/_standin/mode", json=mode).raise_for_status()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    fake = FakeOpenAIServer("openai", PROVIDER_KEY).start()
    engine = standin_engine_config("local", ["small"])
    config = {
        "engines": [engine],
        "providers": [
            {"name": "oai", "kind": "openai", "base_url": fake.base_url, "api_key": PROVIDER_KEY}
        ],
        "routes": {"cloud": [CLOUD]},
        "auth": {"enabled": True},
        "admin": {"token": ADMIN_TOKEN},
        "ledger": {"flush_interval_s": 0.05},
    }
    try:
        with GatewayProcess(config, tmp_path_factory.mktemp("accounting")) as gateway:
            gateway.wait_engine_ready("local")
            yield Setup(gateway, fake, f"http://127.0.0.1:{engine['port']}")
    finally:
        fake.stop()


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest) -> Iterator[None]:
    if "setup" not in request.fixturenames:
        yield  # a test of the pieces: no gateway
        return
    setup: Setup = request.getfixturevalue("setup")
    setup.fake.reset()
    yield
    setup.standin_mode()


def _events(resp: httpx.Response) -> list[Any]:
    return [
        orjson.loads(line[6:])
        for line in resp.text.splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]


# -- usage that is not a token count -----------------------------------------------------


@pytest.mark.parametrize("usage", BAD_USAGE, ids=range(len(BAD_USAGE)))
def test_a_providers_bad_usage_is_answered_and_counted(setup: Setup, usage: Any) -> None:
    setup.fake.fail_next(Fault(usage=usage), Fault(usage=usage))
    before_invalid = setup.anomalies(CLOUD, "invalid")
    before_missing = setup.anomalies(CLOUD, "missing")
    whole_id, whole = setup.chat("cloud")
    assert whole.status_code == 200, whole.text
    assert whole.json()["choices"][0]["message"]["content"]
    stream_id, stream = setup.chat("cloud", stream=True)
    assert stream.status_code == 200 and stream.text.rstrip().endswith("data: [DONE]")
    for rid in (whole_id, stream_id):
        record = setup.record(rid)
        assert record["status"] == 200
        assert 0 < record["prompt_tokens"] < 1000
        assert 0 < record["completion_tokens"] < 1000
        assert 0 < record["cost_usd"] < 0.01
    counted = setup.anomalies(CLOUD, "invalid") + setup.anomalies(CLOUD, "missing")
    assert counted == before_invalid + before_missing + 2
    logs = setup.gateway.logs()
    assert "counted the tokens the answer carried instead" in logs
    assert PROMPT_MARKER not in logs


def test_an_engines_negative_usage_is_answered_and_counted(setup: Setup) -> None:
    setup.standin_mode(usage={"prompt_tokens": -3, "completion_tokens": -9})
    rid, resp = setup.chat("small")
    assert resp.status_code == 200, resp.text
    record = setup.record(rid)
    assert record["prompt_tokens"] > 0 and record["completion_tokens"] > 0
    assert setup.anomalies("local", "invalid") >= 1


def test_a_missing_usage_is_counted_from_the_answer(setup: Setup) -> None:
    setup.fake.fail_next(Fault(omit_usage=True))
    rid, resp = setup.chat("cloud", stream=True, stream_options={"include_usage": True})
    assert resp.status_code == 200
    assert not [e for e in _events(resp) if e.get("usage")]
    record = setup.record(rid)
    assert record["completion_tokens"] > 0 and record["cost_usd"] > 0
    assert setup.anomalies(CLOUD, "missing") >= 1


# -- streams cut before their usage chunk ------------------------------------------------


def test_a_provider_stream_cut_before_its_usage_counts_what_was_relayed(setup: Setup) -> None:
    setup.fake.fail_next(Fault(cut_after_chunks=4, extra_words=20))
    rid, resp = setup.chat("cloud", stream=True)
    deltas = [e for e in _events(resp) if e.get("choices") and e["choices"][0]["delta"]]
    assert resp.status_code == 200 and _events(resp)[-1].get("error"), "ended by an error"
    record = setup.record(rid)
    assert record["completion_tokens"] >= len(deltas) - 1 > 0  # the role delta has no text
    assert record["prompt_tokens"] > 0
    assert record["cost_usd"] > 0


def test_a_stream_the_client_leaves_counts_what_was_relayed(setup: Setup) -> None:
    setup.fake.fail_next(Fault(extra_words=400, chunk_delay_s=0.02))
    rid = uuid.uuid4().hex
    body = {"model": "cloud", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    headers = {"authorization": f"Bearer {setup.key}", "x-request-id": rid}
    with httpx.stream(
        "POST", f"{setup.gateway.url}/v1/chat/completions", json=body, headers=headers
    ) as resp:
        received = 0
        for line in resp.iter_lines():
            received += line.startswith("data: ")
            if received == 6:
                break  # and hang up
    record = setup.record(rid)
    assert record["status"] == 499
    assert 0 < record["completion_tokens"] < 400
    assert record["cost_usd"] > 0


def test_an_engine_stream_cut_counts_what_was_relayed(setup: Setup) -> None:
    setup.standin_mode(cut_after_chunks=5)
    rid, resp = setup.chat("small", stream=True)
    assert resp.status_code == 200
    record = setup.record(rid)
    assert record["completion_tokens"] >= 5
    assert record["prompt_tokens"] > 0


# -- local streams are always counted ----------------------------------------------------


def test_a_local_stream_without_include_usage_is_counted_and_not_shown_usage(
    setup: Setup,
) -> None:
    rid, resp = setup.chat("small", stream=True)
    events = _events(resp)
    assert events and all(e.get("choices") for e in events), "no usage chunk for the client"
    assert not any("usage" in e for e in events)
    sent = orjson.loads(httpx.get(f"{setup.standin}/_standin/stats").json()["last_body"])
    assert sent["stream_options"] == {"include_usage": True}
    record = setup.record(rid)
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events)
    assert record["completion_tokens"] == len(text.split(" "))  # the stand-in's own count
    assert record["prompt_tokens"] > 0


def test_a_local_stream_that_asks_for_usage_still_gets_it(setup: Setup) -> None:
    _, resp = setup.chat("small", stream=True, stream_options={"include_usage": True})
    usage = [e for e in _events(resp) if e.get("usage")]
    assert len(usage) == 1 and usage[0]["choices"] == []


def test_local_streamed_tokens_count_toward_tpm(setup: Setup) -> None:
    limited = create_key(setup.gateway.url, name="tpm-limited", tpm=5)["key"]
    _, first = setup.chat("small", key=limited, stream=True)
    assert first.status_code == 200
    deadline = time.monotonic() + 10
    while True:  # the tokens are counted when the stream's record is written
        _, second = setup.chat("small", key=limited, stream=True)
        if second.status_code == 429 or time.monotonic() > deadline:
            break
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "tpm_limit_exceeded"


# -- the pieces ----------------------------------------------------------------------------


@pytest.mark.parametrize("framing", [b"\n\n", b"\r\n\r\n"])
@pytest.mark.parametrize("read_size", [7, 64, 1 << 16])
def test_the_usage_tap_drops_only_the_usage_chunk_and_keeps_partial_events(
    framing: bytes, read_size: int
) -> None:
    role = b'data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}' + framing
    word = b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}' + framing
    # vLLM's continuous usage: a chunk with choices and usage is an answer chunk, kept.
    counted = b'data: {"choices":[{"index":0,"delta":{}}],"usage": {"prompt_tokens":3}}' + framing
    usage = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}' + framing
    done = b"data: [DONE]" + framing
    stream = role + word + counted + usage + done
    reads = [stream[i : i + read_size] for i in range(0, len(stream), read_size)]
    tap = UsageTap(strip=True)
    out = b"".join(tap.feed(r) for r in reads) + tap.rest()
    assert out == role + word + counted + done
    assert tap.usage is not None and tap.usage.completion_tokens == 1
    keep = UsageTap()
    assert b"".join(keep.feed(r) for r in reads) + keep.rest() == stream
    assert keep.usage is not None and keep.usage.completion_tokens == 1


def test_the_tally_counts_text_of_every_kind() -> None:
    tally = StreamTally()
    events = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {"choices": [{"index": 0, "delta": {"content": " the"}}]},
        {"choices": [{"index": 1, "text": " word"}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"function": {"arguments": "{}"}}]}}]},
        {"choices": [{"index": 0, "delta": {"content": "x" * 40}}]},
        {"choices": [{"index": 0, "delta": {"content": 'say "hi"'}}]},
        {"choices": [], "usage": {"prompt_tokens": 1}},
    ]
    stream = b"".join(b"data: " + orjson.dumps(e) + b"\r\n\r\n" for e in events)
    for i in range(0, len(stream), 5):
        tally.feed(stream[i : i + 5])
    assert tally.completion_tokens == 1 + 1 + 1 + 10 + 3  # 'say \"hi\"' is 10 bytes
    whole = {"choices": [{"message": {"content": "x" * 8, "refusal": None}}]}
    assert text_tokens(orjson.dumps(whole)) == 2
    assert text_tokens(b"not json") == 0
