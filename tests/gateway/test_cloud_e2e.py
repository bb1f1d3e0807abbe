"""Through Spillgate's one endpoint, the unchanged `openai` client against each provider kind.

One gateway process with a route per kind, each to its fake provider: a chat with tools and
an image, streamed and not; the tool results sent back; what the provider received; the
cost header, metric and log line; /v1/models.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from fakes.openai_server import FakeOpenAIServer
from harness import GatewayProcess

from spillgate.fallback.mistral.request import mistral_tool_call_id

KEYS = {
    "openai": "sk-e2e-openai-9f8e7d6c5b4a",
    "azure": "az-e2e-key-1234567890abcdef",
    "mistral": "mis-e2e-key-0a1b2c3d4e5f",
    "openai-compatible": "gsk-e2e-groq-5566778899",
}
# route id -> (dialect of its fake, provider name, provider model)
ROUTES = {
    "cloud-openai": ("openai", "oai", "gpt-4o-mini"),
    "cloud-azure": ("azure", "az", "gpt-4o-mini"),
    "cloud-mistral": ("mistral", "mis", "mistral-small-latest"),
    "cloud-compatible": ("openai-compatible", "groq", "llama-3.1-8b-instant"),
}
# USD per 1M tokens: list prices for the first three, the config's for the compatible one.
PRICES = {
    "cloud-openai": (0.15, 0.075, 0.6),
    "cloud-azure": (0.15, 0.075, 0.6),
    "cloud-mistral": (0.1, 0.1, 0.3),
    "cloud-compatible": (0.05, 0.05, 0.08),
}
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
        },
    },
]
IMAGE_URL = "https://example.com/photo.jpg"
DATA_URL = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
USER_TURN: Any = {
    "role": "user",
    "content": [
        {"type": "text", "text": "What is the weather where this was taken?"},
        {"type": "image_url", "image_url": {"url": IMAGE_URL}},
        {"type": "image_url", "image_url": {"url": DATA_URL}},
    ],
}


class Cloud:
    def __init__(self, gateway: GatewayProcess, fakes: dict[str, FakeOpenAIServer]) -> None:
        self.gateway = gateway
        self.fakes = fakes
        self.client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)

    def fake(self, route: str) -> FakeOpenAIServer:
        return self.fakes[ROUTES[route][0]]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    workdir = tmp_path_factory.mktemp("cloud-e2e")
    dialects = {"openai": "openai", "azure": "azure", "mistral": "mistral"}
    fakes = {
        kind: FakeOpenAIServer(dialects.get(kind, "openai"), KEYS[kind]).start() for kind in KEYS
    }
    key_file = workdir / "azure.key"
    key_file.write_text(KEYS["azure"] + "\n")
    providers: list[dict[str, Any]] = [
        {"name": "oai", "kind": "openai", "base_url": fakes["openai"].base_url,
         "api_key": "${E2E_OPENAI_KEY}", "models": ["gpt-4o-mini"]},
        {"name": "az", "kind": "azure", "base_url": fakes["azure"].base_url,
         "api_key_file": str(key_file), "options": {"api_version": "2024-10-21"}},
        {"name": "mis", "kind": "mistral", "base_url": fakes["mistral"].base_url,
         "api_key": KEYS["mistral"]},
        {"name": "mis-lenient", "kind": "mistral", "base_url": fakes["mistral"].base_url,
         "api_key": KEYS["mistral"], "drop_params": ["logit_bias"]},
        {"name": "groq", "kind": "openai-compatible",
         "base_url": fakes["openai-compatible"].base_url,
         "api_key": KEYS["openai-compatible"], "headers": {"x-team": "spillgate-tests"},
         "prices": {"llama-3.1-8b-instant": {"input": 0.05, "output": 0.08}}},
    ]  # fmt: skip
    routes = {route: [f"{name}/{model}"] for route, (_, name, model) in ROUTES.items()}
    routes["mistral-lenient"] = ["mis-lenient/mistral-small-latest"]
    routes["strict-then-openai"] = ["mis/mistral-small-latest", "oai/gpt-4o-mini"]
    config = {"providers": providers, "routes": routes}
    gateway = GatewayProcess(config, workdir, env={"E2E_OPENAI_KEY": KEYS["openai"]})
    try:
        with gateway:
            yield Cloud(gateway, fakes)
    finally:
        for fake in fakes.values():
            fake.stop()


@pytest.fixture(autouse=True)
def _fresh_fakes(cloud: Cloud) -> None:
    for fake in cloud.fakes.values():
        fake.reset()


def _cost(route: str, prompt: int, cached: int, completion: int) -> float:
    price_in, price_cached, price_out = PRICES[route]
    return ((prompt - cached) * price_in + cached * price_cached + completion * price_out) / 1e6


@pytest.mark.parametrize("route", ROUTES)
def test_chat_with_tools_and_an_image(cloud: Cloud, route: str) -> None:
    cloud.fake(route).cached_tokens = 16
    raw = cloud.client.chat.completions.with_raw_response.create(
        model=route, messages=[USER_TURN], tools=TOOLS
    )
    answer = raw.parse()
    assert raw.headers["x-spillgate-route"] == "/".join(ROUTES[route][1:])
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]

    received = cloud.fake(route).requests[-1]
    assert received.body["model"] == ROUTES[route][2]
    parts = received.body["messages"][0]["content"]
    assert [p["image_url"]["url"] for p in parts[1:]] == [IMAGE_URL, DATA_URL]
    assert cloud.fake(route).rejected == []

    usage = answer.usage
    assert usage is not None
    cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
    expected = _cost(route, usage.prompt_tokens, cached or 0, usage.completion_tokens)
    assert float(raw.headers["x-spillgate-cost-usd"]) == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("include_usage", [True, False])
def test_streamed_chat_with_tools_and_an_image(
    cloud: Cloud, route: str, include_usage: bool
) -> None:
    options: Any = {"include_usage": True} if include_usage else openai.NOT_GIVEN
    stream = cloud.client.chat.completions.create(
        model=route, messages=[USER_TURN], tools=TOOLS, stream=True, stream_options=options
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    chunks = list(stream)
    for chunk in chunks:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"name": "", "arguments": ""})
                if delta.function and delta.function.name:
                    call["name"] = delta.function.name
                if delta.function and delta.function.arguments:
                    call["arguments"] += delta.function.arguments
            finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
    assert json.loads(calls[1]["arguments"]) == {"tz": "Paris"}
    usage_chunks = [c for c in chunks if c.usage is not None]
    if include_usage:
        assert len(usage_chunks) == 1 and chunks[-1].choices == []
        assert usage_chunks[0].usage.completion_tokens == 20  # type: ignore[union-attr]
    else:
        assert usage_chunks == [] and all(c.choices for c in chunks)
    assert cloud.fake(route).rejected == []


@pytest.mark.parametrize("route", ROUTES)
def test_tool_results_go_back_to_the_provider(cloud: Cloud, route: str) -> None:
    first = cloud.client.chat.completions.create(model=route, messages=[USER_TURN], tools=TOOLS)
    message = first.choices[0].message
    calls = message.tool_calls or []
    history: list[Any] = [
        USER_TURN,
        message.model_dump(exclude_none=True),
        *({"role": "tool", "tool_call_id": c.id, "content": "18C, sunny"} for c in calls),
    ]
    second = cloud.client.chat.completions.create(model=route, messages=history, tools=TOOLS)
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "fake answer: 12 words, 2 images, 2 tool results"
    assert cloud.fake(route).rejected == []


def test_tool_call_ids_from_another_provider_are_accepted_by_mistral(cloud: Cloud) -> None:
    foreign = "call_9aZbYcXdWeVfUgTh"
    history: list[Any] = [
        USER_TURN,
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": foreign,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": foreign, "content": "18C"},
    ]
    answer = cloud.client.chat.completions.create(model="cloud-mistral", messages=history)
    assert answer.choices[0].message.content == "fake answer: 9 words, 2 images, 1 tool results"
    sent = cloud.fakes["mistral"].requests[-1].body["messages"]
    assert (
        sent[1]["tool_calls"][0]["id"] == sent[2]["tool_call_id"] == mistral_tool_call_id(foreign)
    )


def test_sampling_parameters_reach_the_provider(cloud: Cloud) -> None:
    answer = cloud.client.chat.completions.create(
        model="cloud-openai",
        messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        temperature=0.1,
        top_p=0.5,
        seed=3,
        n=2,
        stop=["zzz"],
        max_completion_tokens=3,
    )
    assert [c.finish_reason for c in answer.choices] == ["length", "length"]
    body = cloud.fakes["openai"].requests[-1].body
    assert {k: body[k] for k in ("temperature", "top_p", "seed", "n", "stop")} == {
        "temperature": 0.1, "top_p": 0.5, "seed": 3, "n": 2, "stop": ["zzz"],
    }  # fmt: skip


def test_mistral_gets_its_own_parameter_names(cloud: Cloud) -> None:
    answer = cloud.client.chat.completions.create(
        model="cloud-mistral",
        messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        tools=TOOLS,
        tool_choice="required",
        seed=11,
        max_completion_tokens=40,
        response_format={"type": "json_object"},
    )
    assert answer.choices[0].finish_reason == "tool_calls"
    body = cloud.fakes["mistral"].requests[-1].body
    assert (body["random_seed"], body["max_tokens"], body["tool_choice"]) == (11, 40, "any")
    assert body["messages"][0]["role"] == "system"
    assert "seed" not in body and "max_completion_tokens" not in body


def test_json_schema_response_format(cloud: Cloud) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["name", "population"],
        "additionalProperties": False,
    }
    for route in ROUTES:
        answer = cloud.client.chat.completions.create(
            model=route,
            messages=[{"role": "user", "content": "Largest city in France?"}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "city", "schema": schema, "strict": True},
            },
        )
        assert json.loads(answer.choices[0].message.content or "") == {
            "name": "Paris", "population": 1,
        }, route  # fmt: skip


def test_a_parameter_mistral_cannot_honour_is_a_clear_400(cloud: Cloud) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        cloud.client.chat.completions.create(
            model="cloud-mistral",
            messages=[{"role": "user", "content": "Hi"}],
            logit_bias={"1": 5},
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["param"] == "logit_bias" and error["code"] == "unsupported_parameter"
    assert "drop_params" in error["message"]
    assert cloud.fakes["mistral"].requests == [], "nothing was sent to the provider"


def test_drop_params_in_config_drops_it(cloud: Cloud) -> None:
    answer = cloud.client.chat.completions.create(
        model="mistral-lenient", messages=[{"role": "user", "content": "Hi"}], logit_bias={"1": 5}
    )
    assert answer.choices[0].message.content
    assert "logit_bias" not in cloud.fakes["mistral"].requests[-1].body


def test_what_one_provider_cannot_honour_fails_over_to_the_next(cloud: Cloud) -> None:
    raw = cloud.client.chat.completions.with_raw_response.create(
        model="strict-then-openai",
        messages=[{"role": "user", "content": "Hi"}],
        logit_bias={"1": 5},
    )
    assert raw.headers["x-spillgate-route"] == "oai/gpt-4o-mini"
    assert cloud.fakes["openai"].requests[-1].body["logit_bias"] == {"1": 5}


def test_provider_specific_wire_details(cloud: Cloud) -> None:
    for route in ROUTES:
        cloud.client.chat.completions.create(
            model=route, messages=[{"role": "user", "content": "x"}]
        )
    azure = cloud.fakes["azure"].requests[-1]
    assert azure.path == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert azure.query == {"api-version": "2024-10-21"}
    assert azure.headers["api-key"] == KEYS["azure"] and "Authorization" not in azure.headers
    compat = cloud.fakes["openai-compatible"].requests[-1]
    assert compat.headers["x-team"] == "spillgate-tests"
    assert compat.headers["Authorization"] == f"Bearer {KEYS['openai-compatible']}"


def test_embeddings_through_an_openai_compatible_route(cloud: Cloud) -> None:
    result = cloud.client.embeddings.create(model="cloud-compatible", input=["one two", "three"])
    assert [d.index for d in result.data] == [0, 1]
    assert cloud.fakes["openai-compatible"].requests[-1].body["model"] == "llama-3.1-8b-instant"


def test_models_lists_routes_and_no_key(cloud: Cloud) -> None:
    listing = httpx.get(f"{cloud.gateway.url}/v1/models").text
    ids = {m["id"] for m in json.loads(listing)["data"]}
    assert set(ROUTES) <= ids
    for key in KEYS.values():
        assert key not in listing


def test_stream_cost_goes_to_the_metrics_and_the_access_log(cloud: Cloud) -> None:
    stream = cloud.client.chat.completions.create(
        model="cloud-openai", messages=[{"role": "user", "content": "Hello there"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    metrics = httpx.get(f"{cloud.gateway.url}/metrics").text
    assert 'spillgate_cost_usd_total{route="oai/gpt-4o-mini"}' in metrics
    assert 'spillgate_circuit_state{target="oai/gpt-4o-mini"} 0.0' in metrics
    lines = [
        json.loads(line)
        for line in cloud.gateway.logs().splitlines()
        if '"spillgate.access"' in line
    ]
    streamed = [e for e in lines if e["streamed"] and e["route"] == "oai/gpt-4o-mini"]
    assert streamed and streamed[-1]["cost_usd"] > 0


def test_cloud_only_gateway_is_ready(cloud: Cloud) -> None:
    ready = httpx.get(f"{cloud.gateway.url}/readyz").json()
    assert ready["ready"] is True
    assert ready["cloud_targets"]["oai/gpt-4o-mini"] is True
