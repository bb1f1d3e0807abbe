"""The Responses and Messages APIs on the local path, through their official SDKs.

One gateway (keys on) in front of a launched stand-in engine that speaks both APIs as vLLM
does, and a recording fake OpenAI provider behind the same route. A request on either API
runs on the engine as sent; the SDKs read the answers, whole and streamed; every request
is accounted (ledger, metrics), explained, kept on the box when marked private, and held to
its key's rate.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest
from dialect_clients import anthropic_client, anthropic_error, openai_client, openai_error
from fakes.openai_server import FakeOpenAIServer
from harness import GatewayProcess, standin_engine_config
from services import ADMIN, ADMIN_TOKEN, create_key, metric, sqlite_rows, wait_for
from standin_engine import count_chat

MODEL = "standin-model"
MIXED = "mixed"  # the engine first, the fake cloud behind it
CLOUD_KEY = "sk-dialects-local-provider-7a6b5c4d"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, Any, str]]:
    fake = FakeOpenAIServer("openai", CLOUD_KEY).start()
    engine = standin_engine_config("standin", [MODEL])
    config = {
        "engines": [engine],
        "providers": [
            # Sent Responses and Messages requests as chat, which the fake serves.
            {
                "name": "oai",
                "kind": "openai-compatible",
                "base_url": fake.base_url,
                "api_key": CLOUD_KEY,
            }
        ],
        "routes": {MIXED: [MODEL, "oai/gpt-4o-mini"]},
        "auth": {"enabled": True},
        "admin": {"token": ADMIN_TOKEN},
        "ledger": {"flush_interval_s": 0.05},
        # A private request waits this long for a down engine before it is refused.
        "server": {"ready_wait_s": 1.0},
    }
    try:
        with GatewayProcess(config, tmp_path_factory.mktemp("dialects")) as gateway:
            gateway.wait_engine_ready("standin")
            yield gateway, fake, f"http://127.0.0.1:{engine['port']}"
    finally:
        fake.stop()


@pytest.fixture
def gateway(setup: tuple[GatewayProcess, Any, str]) -> GatewayProcess:
    _, fake, standin = setup
    httpx.post(f"{standin}/_standin/mode", json={}).raise_for_status()
    fake.reset()
    return setup[0]


def _key(gateway: GatewayProcess, **fields: Any) -> str:
    key: str = create_key(gateway.url, name=f"dialects-{secrets.token_hex(4)}", **fields)["key"]
    return key


def _engine_saw(standin: str) -> dict[str, Any]:
    seen: dict[str, Any] = orjson.loads(httpx.get(f"{standin}/_standin/stats").json()["last_body"])
    return seen


def _bearer(key: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", **(extra or {})}


# -- OpenAI's Responses API -----------------------------------------------------------------


def test_responses_create_runs_on_the_engine_as_sent(setup, gateway: GatewayProcess) -> None:
    client = openai_client(gateway.url, _key(gateway))
    raw = client.responses.with_raw_response.create(model=MODEL, input="hello from codex")
    response = raw.parse()
    assert raw.headers["x-spillgate-route"] == "standin"
    assert raw.headers["x-spillgate-reason"] == "local"
    assert raw.headers["x-request-id"]
    assert response.output_text == "You said: hello from codex"
    assert response.status == "completed"
    assert response.usage is not None
    assert response.usage.input_tokens > 0
    assert response.usage.output_tokens == len(response.output_text.split())
    # Passed through, not rewritten as chat.
    assert _engine_saw(setup[2]) == {"model": MODEL, "input": "hello from codex"}


def test_responses_stream_events_arrive_in_order(gateway: GatewayProcess) -> None:
    client = openai_client(gateway.url, _key(gateway))
    raw = client.responses.with_raw_response.create(
        model=MODEL, input=[{"role": "user", "content": "stream me"}], stream=True
    )
    assert raw.headers["x-spillgate-route"] == "standin"
    events = list(raw.parse())
    assert [e.type for e in events[:2]] == ["response.created", "response.in_progress"]
    assert events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "You said: stream me"
    final = events[-1].response
    assert final.output_text == text
    assert final.usage is not None and final.usage.output_tokens == len(text.split())


def test_responses_stream_helper_gives_the_final_response(gateway: GatewayProcess) -> None:
    client = openai_client(gateway.url, _key(gateway))
    with client.responses.stream(model=MODEL, input="helper please") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "You said: helper please"
    assert final.usage is not None and final.usage.total_tokens > final.usage.output_tokens


def _cut_stream(setup, gateway: GatewayProcess) -> list[Any]:
    """A Responses stream whose engine drops the connection after two pieces of text."""
    httpx.post(f"{setup[2]}/_standin/mode", json={"cut_after_chunks": 2}).raise_for_status()
    client = openai_client(gateway.url, _key(gateway))
    return list(client.responses.create(model=MODEL, input="cut me short", stream=True))


def test_an_engine_cut_mid_stream_ends_it_with_a_responses_error_event(
    setup, gateway: GatewayProcess
) -> None:
    events = _cut_stream(setup, gateway)
    assert events[-1].type == "error"
    assert events[-1].code == "engine_died"
    assert "stopped mid-stream" in events[-1].message
    assert "response.completed" not in {e.type for e in events}
    assert sum(e.type == "response.output_text.delta" for e in events) == 2


def test_the_error_event_of_a_cut_responses_stream_is_numbered_in_sequence(
    setup, gateway: GatewayProcess
) -> None:
    events = _cut_stream(setup, gateway)
    assert [e.sequence_number for e in events] == list(range(len(events)))


# -- Anthropic's Messages API ---------------------------------------------------------------


def test_messages_create_with_the_key_as_x_api_key(setup, gateway: GatewayProcess) -> None:
    client = anthropic_client(gateway.url, _key(gateway))
    raw = client.messages.with_raw_response.create(
        model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hello from claude"}]
    )
    message = raw.parse()
    assert raw.headers["x-spillgate-route"] == "standin"
    assert message.content[0].type == "text"
    assert message.content[0].text == "You said: hello from claude"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0
    assert message.usage.output_tokens == len(message.content[0].text.split())
    assert _engine_saw(setup[2])["messages"] == [{"role": "user", "content": "hello from claude"}]


def test_messages_stream_text_and_final_message(gateway: GatewayProcess) -> None:
    client = anthropic_client(gateway.url, _key(gateway))
    asked = [{"role": "user", "content": [{"type": "text", "text": "stream claude"}]}]
    with client.messages.stream(model=MODEL, max_tokens=64, messages=asked) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "You said: stream claude"
    assert final.content[0].type == "text" and final.content[0].text == text
    assert final.usage.input_tokens > 0 and final.usage.output_tokens == len(text.split())


def test_an_engine_cut_mid_stream_raises_in_the_anthropic_sdk(
    setup, gateway: GatewayProcess
) -> None:
    httpx.post(f"{setup[2]}/_standin/mode", json={"cut_after_chunks": 2}).raise_for_status()
    client = anthropic_client(gateway.url, _key(gateway))
    asked = [{"role": "user", "content": "cut me short"}]
    got = []
    stream = client.messages.stream(model=MODEL, max_tokens=64, messages=asked)
    with pytest.raises(anthropic.APIStatusError) as failed, stream as events:
        got.extend(events.text_stream)
    text, whole = "".join(got), "You said: cut me short"
    assert text and whole.startswith(text) and text != whole  # what came before the cut
    assert failed.value.body == {
        "type": "error",
        "error": {"type": "api_error", "message": failed.value.body["error"]["message"]},
    }
    assert "stopped mid-stream" in failed.value.body["error"]["message"]


def test_messages_take_the_key_as_a_bearer_token_too(gateway: GatewayProcess) -> None:
    key = _key(gateway)
    client = anthropic_client(gateway.url, key, bearer=True)
    message = client.messages.create(
        model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "bearer"}]
    )
    assert message.content[0].type == "text" and message.content[0].text == "You said: bearer"
    # The same key is refused when wrong, whichever header carries it.
    with pytest.raises(anthropic.AuthenticationError):
        anthropic_client(gateway.url, key + "x", bearer=True).messages.create(
            model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "bearer"}]
        )


def test_count_tokens_is_the_engine_tokenizer_count(setup, gateway: GatewayProcess) -> None:
    standin = setup[2]
    client = anthropic_client(gateway.url, _key(gateway))
    before = httpx.get(f"{standin}/_standin/stats").json()
    counts = []
    for text in ("one two three", "one two three " * 40):
        counted = client.messages.count_tokens(
            model=MODEL, messages=[{"role": "user", "content": text}]
        )
        counts.append(counted.input_tokens)
        assert counted.input_tokens == count_chat([{"role": "user", "content": text}], True)
    assert 0 < counts[0] < counts[1]
    after = httpx.get(f"{standin}/_standin/stats").json()
    assert after["tokenize_requests"] >= before["tokenize_requests"] + 2
    assert after["requests"] == before["requests"], "counting generates nothing"


# -- accounting, explanation, privacy, limits -----------------------------------------------


def _records(gateway: GatewayProcess, key_id: str) -> list[dict[str, Any]]:
    columns = ("endpoint", "target", "reason", "status", "streamed", "prompt_tokens",
               "completion_tokens")  # fmt: skip
    sql = (
        f"SELECT {', '.join(columns)} FROM usage_records WHERE key_id = '{key_id}' "
        "ORDER BY endpoint, streamed"
    )
    rows = sqlite_rows(Path(gateway.config["home"]), sql)
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _served(gateway: GatewayProcess, endpoint: str) -> float:
    labels = f'endpoint="{endpoint}",reason="local",route="standin",status="200"'
    try:
        return metric(gateway.url, "spillgate_requests_total", labels)
    except KeyError:
        return 0.0


def test_each_request_leaves_a_ledger_record_and_a_metric(gateway: GatewayProcess) -> None:
    created = create_key(gateway.url, name="dialects-ledger")
    before = {api: _served(gateway, api) for api in ("responses", "messages")}
    oai = openai_client(gateway.url, created["key"])
    claude = anthropic_client(gateway.url, created["key"])
    whole = oai.responses.create(model=MODEL, input="count me")
    streamed = [e for e in oai.responses.create(model=MODEL, input="me too", stream=True)]
    message = claude.messages.create(
        model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "and me"}]
    )
    with claude.messages.stream(
        model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "me as well"}]
    ) as stream:
        final = stream.get_final_message()
    usages = [
        (message.usage.input_tokens, message.usage.output_tokens),
        (final.usage.input_tokens, final.usage.output_tokens),
    ]
    for response in (whole, streamed[-1].response):
        assert response.usage is not None
        usages.append((response.usage.input_tokens, response.usage.output_tokens))

    wait_for(lambda: len(_records(gateway, created["id"])) == 4, what="four ledger records")
    records = _records(gateway, created["id"])
    assert [(r["endpoint"], r["streamed"]) for r in records] == [
        ("messages", 0), ("messages", 1), ("responses", 0), ("responses", 1)
    ]  # fmt: skip
    assert [(r["prompt_tokens"], r["completion_tokens"]) for r in records] == usages
    assert {(r["target"], r["reason"], r["status"]) for r in records} == {("standin", "local", 200)}
    for api in ("responses", "messages"):
        assert _served(gateway, api) == before[api] + 2


def test_route_explain_reads_both_apis(gateway: GatewayProcess) -> None:
    key = {"authorization": f"Bearer {_key(gateway)}"}
    asked = {
        "responses": {"model": MIXED, "input": "explain me " * 50},
        "messages": {
            "model": MIXED,
            "max_tokens": 300,
            "messages": [{"role": "user", "content": "explain me " * 50}],
        },
    }
    for endpoint, request in asked.items():
        resp = httpx.post(
            f"{gateway.url}/admin/route/explain",
            json={"endpoint": endpoint, "request": request, "headers": key},
            headers=ADMIN,
        )
        assert resp.status_code == 200, resp.text
        answer = resp.json()
        assert answer["decision"]["reason"] == "local", answer
        assert answer["features"]["prompt_tokens"] > 50, answer["features"]
    bad = httpx.post(
        f"{gateway.url}/admin/route/explain",
        json={
            "endpoint": "messages",
            "request": {"model": MIXED, "messages": [{"role": "user", "content": "x"}]},
            "headers": key,
        },
        headers=ADMIN,
    )
    assert openai_error(bad, 400)["param"] == "max_tokens"


@pytest.fixture
def engine_down(setup: tuple[GatewayProcess, Any, str]) -> Iterator[GatewayProcess]:
    """The engine says it is unhealthy: the gateway stops sending it requests."""
    gateway, _, standin = setup

    def engine_ready() -> bool:
        return bool(httpx.get(f"{gateway.url}/readyz").json()["engines"]["standin"])

    httpx.post(f"{standin}/_standin/mode", json={"healthy": False}).raise_for_status()
    wait_for(lambda: not engine_ready(), what="the engine marked down")
    try:
        yield gateway
    finally:
        httpx.post(f"{standin}/_standin/mode", json={}).raise_for_status()
        wait_for(engine_ready, what="the engine back")


def test_an_on_prem_request_never_leaves_the_box(setup, engine_down: GatewayProcess) -> None:
    gateway, fake, _ = setup
    key = _key(gateway)
    private = {"x-spillgate-data": "on-prem"}
    # Unmarked, the same requests spill to the cloud target behind the down engine...
    oai, claude = openai_client(gateway.url, key), anthropic_client(gateway.url, key)
    spilled = oai.responses.with_raw_response.create(model=MIXED, input="public")
    assert spilled.headers["x-spillgate-route"] == "oai/gpt-4o-mini"
    assert len(fake.requests) == 1
    # ...marked private, they wait for the engine and are refused in each API's shape.
    body = {"model": MIXED, "input": "secret plan"}
    resp = httpx.post(f"{gateway.url}/v1/responses", json=body, headers=_bearer(key, private))
    openai_error(resp, 503)
    assert resp.headers["x-spillgate-route"] == "none"
    body = {"model": MIXED, "max_tokens": 16, "messages": [{"role": "user", "content": "secret"}]}
    resp = httpx.post(
        f"{gateway.url}/v1/messages", json=body, headers={"x-api-key": key, **private}
    )
    anthropic_error(resp, 503)
    with pytest.raises(anthropic.InternalServerError):  # 503: the SDK's server-side error
        claude.messages.create(**body, extra_headers=private)  # type: ignore[arg-type]
    assert len(fake.requests) == 1, "nothing marked on-prem reached the cloud"


def test_a_key_over_its_rate_gets_429_on_responses(gateway: GatewayProcess) -> None:
    key = _key(gateway, rpm=2)
    client = openai_client(gateway.url, key)
    for _ in range(2):
        client.responses.create(model=MODEL, input="within my rate")
    with pytest.raises(openai.RateLimitError) as refused:
        client.responses.create(model=MODEL, input="over my rate")
    assert refused.value.response.headers.get("retry-after")
    body = {"model": MODEL, "input": "over my rate"}
    openai_error(httpx.post(f"{gateway.url}/v1/responses", json=body, headers=_bearer(key)), 429)


def test_a_key_over_its_rate_gets_429_on_messages(gateway: GatewayProcess) -> None:
    key = _key(gateway, rpm=2)
    client = anthropic_client(gateway.url, key)
    asked = [{"role": "user", "content": "within my rate"}]
    for _ in range(2):
        client.messages.create(model=MODEL, max_tokens=16, messages=asked)
    with pytest.raises(anthropic.RateLimitError) as refused:
        client.messages.create(model=MODEL, max_tokens=16, messages=asked)
    assert refused.value.response.headers.get("retry-after")
    body = {"model": MODEL, "max_tokens": 16, "messages": asked}
    resp = httpx.post(f"{gateway.url}/v1/messages", json=body, headers={"x-api-key": key})
    anthropic_error(resp, 429)
