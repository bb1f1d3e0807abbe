"""Through Spillgate's one endpoint, the unchanged `openai` client against Anthropic and Gemini.

One gateway process; the fake Anthropic and the fake Gemini run as their own processes on
loopback, each checking what it receives against its provider's documented schema. Routes
map client model ids to `provider/model`; each route of one kind falls over to the other
kind. Per kind: a chat with tools and an image, streamed and not; the tool results sent
back; the cost header; `drop_params` and the kind's options reaching the wire; a passing
overload that fails over; a rate limit that outlasts the retries. The last test greps the
whole run's logs for the keys.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from harness import FakeProviderProcess, GatewayProcess

KEYS = {"anthropic": "sk-ant-e2e-5f4e3d2c1b0a9988", "gemini": "AIzaE2eGeminiKey-77665544"}
MODELS = {"anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}
# Per kind: its provider name, the route that tries it first, and its single-target route.
PROVIDER = {"anthropic": "claude", "gemini": "gem"}
ROUTE = {"anthropic": "claude-smart", "gemini": "gemini-smart"}
STRICT = {"anthropic": "claude-strict", "gemini": "gemini-strict"}
OTHER = {"anthropic": "gemini", "gemini": "anthropic"}
# List prices in fallback/prices.json, USD per 1M tokens: input, cached input, output.
PRICES = {"anthropic": (3.0, 0.3, 15.0), "gemini": (0.3, 0.03, 2.5)}
DEFAULT_ANSWER = {
    "anthropic": "Hello from the fake Anthropic.",
    "gemini": "Hello from the fake Gemini.",
}
KINDS = ["anthropic", "gemini"]

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
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
IMAGE_URL = "https://example.com/street.jpg"
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5E"
    "rkJggg=="
)
USER_TURN: Any = {
    "role": "user",
    "content": [
        {"type": "text", "text": "Where was this taken? Weather and time there?"},
        {"type": "image_url", "image_url": {"url": IMAGE_URL}},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ],
}
SIGNATURE = base64.b64encode(b"gemini-thought-signature").decode()
CALLS = [("get_weather", {"city": "Paris"}), ("get_time", {"tz": "Europe/Paris"})]
FINAL = "Sunny and 24C; it is noon in Paris."

# The first answer, in each provider's wire form: some text, then both tool calls.
TOOL_CALL_ANSWER: dict[str, Any] = {
    "anthropic": {
        "content": [
            {"type": "text", "text": "That is Paris; let me check."},
            {"type": "tool_use", "id": "toolu_01A", "name": CALLS[0][0], "input": CALLS[0][1]},
            {"type": "tool_use", "id": "toolu_01B", "name": CALLS[1][0], "input": CALLS[1][1]},
        ],
        "stop_reason": "tool_use",
        "usage": {
            "input_tokens": 900,
            "output_tokens": 31,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 200,
        },
    },
    "gemini": {
        "response": {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"text": "That is Paris; let me check."},
                            {
                                "functionCall": {"name": CALLS[0][0], "args": CALLS[0][1]},
                                "thoughtSignature": SIGNATURE,
                            },
                            {"functionCall": {"name": CALLS[1][0], "args": CALLS[1][1]}},
                        ],
                    },
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 300,
                "cachedContentTokenCount": 100,
                "candidatesTokenCount": 20,
                "thoughtsTokenCount": 10,
                "totalTokenCount": 330,
            },
            "modelVersion": "gemini-2.5-flash",
            "responseId": "e2e-tools",
        }
    },
}
# (prompt tokens, of which cached, completion tokens) the client is told for that answer.
TOOL_CALL_USAGE = {"anthropic": (1100, 200, 31), "gemini": (300, 100, 30)}
FINAL_ANSWER: dict[str, Any] = {
    "anthropic": {"content": [{"type": "text", "text": FINAL}]},
    "gemini": {
        "response": {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": FINAL}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ]
        }
    },
}
OVERLOADED: dict[str, Any] = {
    "anthropic": {"status": 529, "error_type": "overloaded_error", "message": "Overloaded"},
    "gemini": {"status": 503, "status_name": "UNAVAILABLE", "times": 2},
}
RATE_LIMITED: dict[str, Any] = {
    "anthropic": {"status": 429, "error_type": "rate_limit_error", "retry_after": "1"},
    "gemini": {
        "status": 429,
        "status_name": "RESOURCE_EXHAUSTED",
        "retry_after": "1",
        "times": 2,
    },
}
RESILIENCE = {
    # High: targets fail here on purpose; the breaker has its own tests.
    "breaker": {"failure_threshold": 100},
    "retries": {"max_attempts": 2, "backoff_base_s": 0.05, "backoff_max_s": 0.1,
                "max_retry_after_s": 2},
}  # fmt: skip


class Cloud:
    def __init__(self, gateway: GatewayProcess, fakes: dict[str, FakeProviderProcess]) -> None:
        self.gateway = gateway
        self.fakes = fakes
        self.client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)

    def fail(self, kind: str, fault: dict[str, Any]) -> None:
        # The Anthropic fake scripts one fault per request, Gemini's counts `times`.
        for _ in range(1 if kind == "gemini" else 2):
            self.fakes[kind].fail(fault)

    def bodies(self, kind: str) -> list[Any]:
        return [r["body"] for r in self.fakes[kind].received()]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    workdir = tmp_path_factory.mktemp("cloud-e2e-native")
    fakes = {
        "anthropic": FakeProviderProcess("anthropic_server.py", KEYS["anthropic"], workdir),
        "gemini": FakeProviderProcess("gemini_server.py", KEYS["gemini"], workdir),
    }
    try:
        for fake in fakes.values():
            fake.start()
        claude = {
            "kind": "anthropic",
            "base_url": fakes["anthropic"].url,
            "api_key": "${E2E_ANTHROPIC_KEY}",
            **RESILIENCE,
        }
        gem = {
            "kind": "gemini",
            "base_url": fakes["gemini"].url,
            "api_key": "${E2E_GEMINI_KEY}",
            **RESILIENCE,
        }
        providers = [
            {"name": "claude", **claude, "drop_params": ["logit_bias"],
             "options": {"default_max_tokens": 2048}},
            {"name": "gem", **gem, "drop_params": ["logit_bias"],
             "options": {"api_version": "v1"}},
            {"name": "claude-strict", **claude},
            {"name": "gem-strict", **gem},
        ]  # fmt: skip
        claude_target = f"claude/{MODELS['anthropic']}"
        gem_target = f"gem/{MODELS['gemini']}"
        routes = {
            "claude-smart": [claude_target, gem_target],
            "gemini-smart": [gem_target, claude_target],
            "claude-strict": [f"claude-strict/{MODELS['anthropic']}"],
            "gemini-strict": [f"gem-strict/{MODELS['gemini']}"],
        }
        env = {"E2E_ANTHROPIC_KEY": KEYS["anthropic"], "E2E_GEMINI_KEY": KEYS["gemini"]}
        gateway = GatewayProcess({"providers": providers, "routes": routes}, workdir, env=env)
        with gateway:
            yield Cloud(gateway, fakes)
    finally:
        for fake in fakes.values():
            fake.stop()


@pytest.fixture(autouse=True)
def _fresh_fakes(cloud: Cloud) -> None:
    for fake in cloud.fakes.values():
        fake.reset()


def _cost(kind: str, prompt: int, cached: int, completion: int) -> float:
    price_in, price_cached, price_out = PRICES[kind]
    return ((prompt - cached) * price_in + cached * price_cached + completion * price_out) / 1e6


def _assert_question_arrived(kind: str, body: dict[str, Any]) -> None:
    """The image in both forms and the tools, as the provider's schema spells them."""
    if kind == "anthropic":
        blocks = body["messages"][0]["content"]
        assert blocks[1]["source"] == {"type": "url", "url": IMAGE_URL}
        assert blocks[2]["source"] == {"type": "base64", "media_type": "image/png", "data": PNG}
        assert [t["name"] for t in body["tools"]] == ["get_weather", "get_time"]
        assert body["tools"][0]["input_schema"]["required"] == ["city"]
    else:
        parts = body["contents"][0]["parts"]
        assert parts[1]["fileData"] == {"mimeType": "image/jpeg", "fileUri": IMAGE_URL}
        assert parts[2]["inlineData"] == {"mimeType": "image/png", "data": PNG}
        declarations = body["tools"][0]["functionDeclarations"]
        assert [d["name"] for d in declarations] == ["get_weather", "get_time"]


@pytest.mark.parametrize("kind", KINDS)
def test_chat_with_tools_and_an_image(cloud: Cloud, kind: str) -> None:
    cloud.fakes[kind].answer(TOOL_CALL_ANSWER[kind])
    raw = cloud.client.chat.completions.with_raw_response.create(
        model=ROUTE[kind], messages=[USER_TURN], tools=TOOLS
    )
    answer = raw.parse()
    assert raw.headers["x-spillgate-route"] == f"{PROVIDER[kind]}/{MODELS[kind]}"
    assert answer.model == ROUTE[kind], "the client sees the model id it asked for"
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "That is Paris; let me check."
    calls = choice.message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == CALLS  # type: ignore[union-attr]
    assert len({c.id for c in calls}) == 2

    (received,) = cloud.fakes[kind].received()
    _assert_question_arrived(kind, received["body"])
    if kind == "anthropic":
        assert received["body"]["model"] == MODELS[kind]
        assert received["headers"]["x-api-key"] == KEYS[kind]
    else:
        assert received["model"] == MODELS[kind] and received["problems"] == []
        assert received["headers"]["x-goog-api-key"] == KEYS[kind]

    usage = answer.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    cached = usage.prompt_tokens_details.cached_tokens or 0
    assert (usage.prompt_tokens, cached, usage.completion_tokens) == TOOL_CALL_USAGE[kind]
    expected = _cost(kind, *TOOL_CALL_USAGE[kind])
    assert float(raw.headers["x-spillgate-cost-usd"]) == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize("kind", KINDS)
def test_streamed_chat_with_tools_and_an_image(cloud: Cloud, kind: str) -> None:
    cloud.fakes[kind].answer(TOOL_CALL_ANSWER[kind])
    chunks = list(
        cloud.client.chat.completions.create(
            model=ROUTE[kind],
            messages=[USER_TURN],
            tools=TOOLS,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = ""
    calls: dict[int, dict[str, str]] = {}
    finishes = []
    for chunk in chunks:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"name": "", "arguments": ""})
                if delta.function and delta.function.name:
                    call["name"] = delta.function.name
                if delta.function and delta.function.arguments:
                    call["arguments"] += delta.function.arguments
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    assert text == "That is Paris; let me check."
    assert [(calls[i]["name"], json.loads(calls[i]["arguments"])) for i in sorted(calls)] == CALLS
    assert finishes == ["tool_calls"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == TOOL_CALL_USAGE[kind][0]
    (received,) = cloud.fakes[kind].received()
    _assert_question_arrived(kind, received["body"])
    if kind == "anthropic":
        assert received["body"]["stream"] is True
    else:
        assert (received["action"], received["query"]) == ("streamGenerateContent", {"alt": "sse"})


@pytest.mark.parametrize("kind", KINDS)
def test_tool_results_go_back_to_the_provider(cloud: Cloud, kind: str) -> None:
    fake = cloud.fakes[kind]
    fake.answer(TOOL_CALL_ANSWER[kind])
    fake.answer(FINAL_ANSWER[kind])
    first = cloud.client.chat.completions.create(
        model=ROUTE[kind], messages=[USER_TURN], tools=TOOLS
    )
    message = first.choices[0].message
    calls = message.tool_calls or []
    results = ["sunny, 24C", "12:00"]
    history: list[Any] = [
        USER_TURN,
        message.model_dump(exclude_none=True),
        *(
            {"role": "tool", "tool_call_id": c.id, "content": result}
            for c, result in zip(calls, results, strict=True)
        ),
    ]
    second = cloud.client.chat.completions.create(model=ROUTE[kind], messages=history, tools=TOOLS)
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == FINAL

    sent = fake.received()[-1]["body"]
    if kind == "anthropic":
        turns = sent["messages"]
        assert [t["role"] for t in turns] == ["user", "assistant", "user"]
        assert [(b["tool_use_id"], b["content"]) for b in turns[2]["content"]] == [
            ("toolu_01A", "sunny, 24C"),
            ("toolu_01B", "12:00"),
        ]
    else:
        contents = sent["contents"]
        assert [c["role"] for c in contents] == ["user", "model", "user"]
        assert contents[1]["parts"][1]["thoughtSignature"] == SIGNATURE
        responses = [p["functionResponse"] for p in contents[2]["parts"]]
        assert [r["name"] for r in responses] == ["get_weather", "get_time"]


def test_each_kinds_options_reach_the_wire(cloud: Cloud) -> None:
    hello: Any = [{"role": "user", "content": "Hello"}]
    for kind in KINDS:
        cloud.client.chat.completions.create(model=ROUTE[kind], messages=hello)
    (claude,) = cloud.fakes["anthropic"].received()
    assert claude["body"]["max_tokens"] == 2048, "options.default_max_tokens"
    (gemini,) = cloud.fakes["gemini"].received()
    assert gemini["version"] == "v1", "options.api_version"


@pytest.mark.parametrize("kind", KINDS)
def test_drop_params_in_config_drops_it(cloud: Cloud, kind: str) -> None:
    answer = cloud.client.chat.completions.create(
        model=ROUTE[kind], messages=[{"role": "user", "content": "Hi"}], logit_bias={"1": 5}
    )
    assert answer.choices[0].message.content == DEFAULT_ANSWER[kind]
    assert "logit_bias" not in json.dumps(cloud.bodies(kind))


@pytest.mark.parametrize("kind", KINDS)
def test_a_parameter_the_kind_lacks_is_a_400_that_names_drop_params(
    cloud: Cloud, kind: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        cloud.client.chat.completions.create(
            model=STRICT[kind], messages=[{"role": "user", "content": "Hi"}], logit_bias={"1": 5}
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["param"] == "logit_bias" and error["code"] == "unsupported_parameter"
    assert "drop_params" in error["message"]
    assert cloud.fakes[kind].received() == [], "nothing was sent to the provider"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("kind", KINDS)
def test_an_overloaded_provider_fails_over_to_the_routes_next_target(
    cloud: Cloud, kind: str, stream: bool
) -> None:
    cloud.fail(kind, OVERLOADED[kind])
    raw = cloud.client.chat.completions.with_raw_response.create(
        model=ROUTE[kind], messages=[{"role": "user", "content": "Hi"}], stream=stream
    )
    other = OTHER[kind]
    assert raw.headers["x-spillgate-route"] == f"{PROVIDER[other]}/{MODELS[other]}"
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    else:
        text = raw.parse().choices[0].message.content or ""
        assert float(raw.headers["x-spillgate-cost-usd"]) > 0
    assert text == DEFAULT_ANSWER[other]
    assert len(cloud.fakes[kind].received()) == 2, "tried, retried, then moved on"
    assert len(cloud.fakes[other].received()) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_a_rate_limit_that_outlasts_the_retries_is_a_429_with_retry_after(
    cloud: Cloud, kind: str
) -> None:
    cloud.fail(kind, RATE_LIMITED[kind])
    with pytest.raises(openai.RateLimitError) as caught:
        cloud.client.chat.completions.create(
            model=STRICT[kind], messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "1"
    assert f"{PROVIDER[kind]}-strict" in caught.value.message
    assert len(cloud.fakes[kind].received()) == 2, "the short Retry-After was waited out once"


def test_no_provider_key_nor_prompt_in_logs_metrics_or_models_after_the_run(cloud: Cloud) -> None:
    # Runs last in this module: the logs hold every request above, retries and fail-overs.
    logs = cloud.gateway.logs()
    assert "retrying cloud target" in logs and '"status":429' in logs, "the run had failures"
    exposed = logs + httpx.get(f"{cloud.gateway.url}/metrics").text
    exposed += httpx.get(f"{cloud.gateway.url}/v1/models").text
    exposed += json.dumps(httpx.get(f"{cloud.gateway.url}/readyz").json())
    for key in KEYS.values():
        assert key not in exposed
        assert key[-8:] not in exposed, "not even the tail of a key"
    assert "Where was this taken" not in logs and FINAL not in logs, "nor a prompt or an answer"
