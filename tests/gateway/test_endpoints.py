"""The OpenAI surface through the gateway to a launched stand-in engine, via the openai client."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import orjson
import pytest
from harness import GatewayProcess


@pytest.fixture
def client(standin_gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{standin_gateway.url}/v1", api_key="unused", max_retries=0)


def test_chat_completion_answers_with_route_and_request_id(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="standin-model",
        messages=[{"role": "user", "content": "ping"}],
        extra_headers={"x-request-id": "req-abc-123"},
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "You said: ping"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert raw.headers["x-request-id"] == "req-abc-123"
    assert raw.headers["x-spillgate-route"] == "standin"
    assert raw.headers["x-spillgate-reason"] == "local"


def test_request_id_is_generated_when_absent(standin_gateway: GatewayProcess) -> None:
    body = {"model": "standin-model", "messages": [{"role": "user", "content": "x"}]}
    first = httpx.post(f"{standin_gateway.url}/v1/chat/completions", json=body)
    second = httpx.post(f"{standin_gateway.url}/v1/chat/completions", json=body)
    assert first.headers["x-request-id"] and second.headers["x-request-id"]
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


def test_chat_stream_arrives_in_chunks_with_usage(
    client: openai.OpenAI, standin_gateway: GatewayProcess
) -> None:
    with client.chat.completions.with_streaming_response.create(
        extra_headers={"x-request-id": "stream-usage-1"},
        model="standin-model",
        messages=[{"role": "user", "content": "stream me please"}],
        stream=True,
        stream_options={"include_usage": True},
    ) as response:
        assert response.headers["x-spillgate-route"] == "standin"
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You said: stream me please"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    # The gateway took the usage from the final chunk for its own accounting; its access-log
    # line is written once the stream has closed, which may be just after the client's last read.
    entry = _access_log_entry(standin_gateway, "stream-usage-1")
    assert entry["streamed"] is True and entry["completion_tokens"] == 5


def _access_log_entry(gateway: GatewayProcess, request_id: str, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        lines = [orjson.loads(x) for x in gateway.logs().splitlines() if x.startswith("{")]
        found = [x for x in lines if x.get("request_id") == request_id and "streamed" in x]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no access-log line for {request_id}"
        time.sleep(0.05)


def test_alias_reaches_the_engine_under_its_own_name(
    client: openai.OpenAI, standin_url: str
) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "via alias"}]
    )
    assert completion.choices[0].message.content == "You said: via alias"
    seen = orjson.loads(httpx.get(f"{standin_url}/_standin/stats").json()["last_body"])
    assert seen["model"] == "standin-model"


def test_body_passes_through_byte_for_byte(
    standin_gateway: GatewayProcess, standin_url: str
) -> None:
    # Fields the gateway does not know must reach the engine untouched, in the same bytes.
    body = (
        b'{"model":"standin-model","messages":[{"role":"user","content":"t"}],'
        b'"tools":[{"type":"function","function":{"name":"f","parameters":{}}}],'
        b'"response_format":{"type":"json_object"},"logprobs":true,"seed":7,'
        b'"vllm_extension":{"priority":3}}'
    )
    resp = httpx.post(
        f"{standin_gateway.url}/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 200
    assert httpx.get(f"{standin_url}/_standin/stats").json()["last_body"] == body.decode()


def test_completions_and_stream(client: openai.OpenAI) -> None:
    completion = client.completions.create(model="standin-model", prompt="once upon")
    assert completion.choices[0].text == " and then once upon"
    streamed = client.completions.create(model="standin-model", prompt="a time", stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == " and then a time"


def test_embeddings(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="standin-model", input=["a", "bcd"])
    assert [len(d.embedding) for d in result.data] == [3, 3]
    assert result.data[1].embedding[0] == pytest.approx(0.3)


def test_models_lists_served_names_and_aliases(client: openai.OpenAI) -> None:
    assert sorted(m.id for m in client.models.list()) == ["gpt-4o-mini", "standin-model"]


def test_model_retrieved_by_name_or_404(client: openai.OpenAI) -> None:
    model = client.models.retrieve("gpt-4o-mini")
    assert (model.id, model.object, model.owned_by) == ("gpt-4o-mini", "model", "spillgate")
    with pytest.raises(openai.NotFoundError) as refused:
        client.models.retrieve("llama-9000")
    assert refused.value.code == "model_not_found"
    assert "standin-model" in refused.value.message


def test_health_ready_and_metrics(standin_gateway: GatewayProcess, client: openai.OpenAI) -> None:
    client.chat.completions.create(
        model="standin-model", messages=[{"role": "user", "content": "m"}]
    )
    assert httpx.get(f"{standin_gateway.url}/healthz").status_code == 200
    ready = httpx.get(f"{standin_gateway.url}/readyz")
    assert ready.status_code == 200 and ready.json()["engines"] == {"standin": True}
    metrics = httpx.get(f"{standin_gateway.url}/metrics").text
    assert (
        'spillgate_requests_total{endpoint="chat/completions",reason="local",route="standin",status="200"}'
        in (metrics)
    )
    assert 'spillgate_engine_up{engine="standin"} 1.0' in metrics
    assert 'spillgate_decisions_total{reason="local"}' in metrics
    tasks = next(line for line in metrics.splitlines() if line.startswith("spillgate_asyncio_"))
    assert float(tasks.split()[1]) >= 1  # at least the one answering this scrape


def test_access_log_has_request_fields_but_no_prompt(
    standin_gateway: GatewayProcess, client: openai.OpenAI
) -> None:
    secret_prompt = "my-very-private-prompt-text"
    client.chat.completions.create(
        model="standin-model",
        messages=[{"role": "user", "content": secret_prompt}],
        extra_headers={"x-request-id": "log-check-1"},
    )
    lines = [orjson.loads(x) for x in standin_gateway.logs().splitlines() if x.startswith("{")]
    entry = next(x for x in lines if x.get("request_id") == "log-check-1")
    assert entry["route"] == "standin" and entry["status"] == 200
    assert secret_prompt not in standin_gateway.logs()
