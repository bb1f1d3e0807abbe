"""One gateway whose models spill to a fake provider of every kind, for the Responses and
Messages end-to-end tests (tests/gateway/test_dialects_spill.py).

`to-<kind>`: a route whose only target is that kind's provider (no local engine: every
request spills). `rl-<api>-<kind>`: the same fake behind a provider entry of its own, for
the rate-limit tests (a 429 may hold its target; the main routes must stay open).
`guarded`: a local engine that is down (attached to a port nobody listens on) ahead of a
target of every kind: a clean request spills at once, a private one may only wait for the
engine. The OpenAI-family fakes run in this process; Anthropic's and Gemini's as their own.
Also here: the tools and turns the tests send, and the checks of a private request's refusal.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import openai
import orjson
from fakes.openai_server import FakeOpenAIServer, Fault
from harness import FakeProviderProcess, GatewayProcess, free_port

from spillgate.fallback.prices import Price, PriceBook, cost_usd
from spillgate.fallback.registry import KINDS as REGISTRY
from spillgate.protocol import Usage

KINDS = ["openai", "azure", "mistral", "openai-compatible", "anthropic", "gemini"]
KEYS = {
    "openai": "sk-dialect-openai-9f8e7d6c5b4a3921",
    "azure": "az-dialect-key-1234567890abcdef",
    "mistral": "mis-dialect-key-0a1b2c3d4e5f6a7b",
    "openai-compatible": "gsk-dialect-groq-5566778899aabb",
    "anthropic": "sk-ant-dialect-5f4e3d2c1b0a9988",
    "gemini": "AIzaDialectGeminiKey-7766554433",
}
PROVIDER = {"openai": "oai", "azure": "az", "mistral": "mis", "openai-compatible": "groq",
            "anthropic": "claude", "gemini": "gem"}  # fmt: skip
MODEL = {"openai": "gpt-4o-mini", "azure": "gpt-4o-mini", "mistral": "mistral-small-latest",
         "openai-compatible": "llama-3.1-8b-instant", "anthropic": "claude-sonnet-4-5",
         "gemini": "gemini-2.5-flash"}  # fmt: skip
COMPATIBLE_PRICE = Price(input=0.05, output=0.08)
RETRIES = {"max_attempts": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.02,
           "max_retry_after_s": 2}  # fmt: skip
GUARDED = "guarded"
APIS = ("responses", "messages")
_DIALECT = {"openai": "openai", "azure": "azure", "mistral": "mistral",
            "openai-compatible": "openai"}  # fmt: skip


# -- the requests and refusals the tests send and read ----------------------------------------

CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER = "Current weather for a city."
RESPONSES_TOOLS: Any = [{"type": "function", "name": "get_weather", "strict": False,
                         "description": WEATHER, "parameters": CITY}]  # fmt: skip
MESSAGES_TOOLS: Any = [{"name": "get_weather", "description": WEATHER, "input_schema": CITY}]
QUESTION = "What is the weather in Paris?"
TOOL_RESULT = "18C and sunny"
EMAIL = "jane.doe@corp-example.io"


def responses_history(first: Any, result: str = TOOL_RESULT) -> list[Any]:
    """The next turn as an agent sends it: the question, the answer's items, each call's
    output."""
    calls = [item for item in first.output if item.type == "function_call"]
    outputs = [{"type": "function_call_output", "call_id": c.call_id, "output": result}
               for c in calls]  # fmt: skip
    return [{"role": "user", "content": QUESTION}, *(i.to_dict() for i in first.output), *outputs]


def messages_history(first: Any, result: str = TOOL_RESULT) -> list[Any]:
    uses = [block for block in first.content if block.type == "tool_use"]
    results = [{"type": "tool_result", "tool_use_id": u.id, "content": result} for u in uses]
    return [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": [block.to_dict() for block in first.content]},
        {"role": "user", "content": results},
    ]


# Held for the engine (429 once the queue wait is over), or told to retry (503): never sent.
REFUSED = {429: "rate_limit_error", 503: "overloaded_error"}


def assert_refused_as_anthropic(err: anthropic.APIStatusError) -> None:
    assert err.status_code in REFUSED, err
    expected = anthropic.RateLimitError if err.status_code == 429 else anthropic.InternalServerError
    assert isinstance(err, expected)
    body: Any = err.body
    assert body["type"] == "error" and body["error"]["type"] == REFUSED[err.status_code]
    assert "may not leave the box" in body["error"]["message"]


def assert_refused_as_openai(err: openai.APIStatusError) -> None:
    assert err.status_code in REFUSED, err
    expected = openai.RateLimitError if err.status_code == 429 else openai.InternalServerError
    assert isinstance(err, expected)
    body: Any = err.body
    assert set(body) >= {"message", "type", "code"}
    assert "may not leave the box" in body["message"]


def route(kind: str) -> str:
    return f"to-{kind}"


def rate_limited_route(api: str, kind: str) -> str:
    return f"rl-{api}-{kind}"


def target(kind: str) -> str:
    """What `x-spillgate-route` names for a kind's main route."""
    return f"{PROVIDER[kind]}/{MODEL[kind]}"


def expected_cost(kind: str, usage: Usage) -> float:
    price = PriceBook.shipped().lookup(REGISTRY[kind].price_family, MODEL[kind])
    return cost_usd(price or COMPATIBLE_PRICE, usage)


# What a kind's fake answers when told to call get_weather (the OpenAI family does so by
# itself whenever a request offers tools).
_ANTHROPIC_CALL = {
    "content": [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_01E2E", "name": "get_weather",
         "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
    "usage": {"input_tokens": 40, "output_tokens": 12, "cache_creation_input_tokens": 0,
              "cache_read_input_tokens": 0},
}  # fmt: skip
_GEMINI_CALL = {
    "response": {
        "candidates": [{
            "content": {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
            "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 9,
                          "totalTokenCount": 39},
        "modelVersion": "gemini-2.5-flash",
    }
}  # fmt: skip


@dataclass
class Spill:
    gateway: GatewayProcess
    family: dict[str, FakeOpenAIServer]
    processes: dict[str, FakeProviderProcess]

    @property
    def home(self) -> Path:
        return Path(self.gateway.config["home"])

    def reset(self) -> None:
        for fake in self.family.values():
            fake.reset()
        for process in self.processes.values():
            process.reset()

    def received(self, kind: str) -> list[dict[str, Any]]:
        """Every request the kind's fake received: `path`, `headers` and `body` at least."""
        if kind in self.family:
            fake = self.family[kind]
            seen = [{"path": r.path, "headers": {k.lower(): v for k, v in r.headers.items()},
                     "body": r.body} for r in fake.requests]  # fmt: skip
            return seen + [{"path": "rejected", "headers": {}, "body": r} for r in fake.rejected]
        return self.processes[kind].received()

    def everything_received(self) -> str:
        """All that reached any fake, as text."""
        return orjson.dumps({kind: self.received(kind) for kind in KINDS}).decode()

    def call_a_tool(self, kind: str) -> None:
        if kind == "anthropic":
            self.processes[kind].answer(_ANTHROPIC_CALL)
        elif kind == "gemini":
            self.processes[kind].answer(_GEMINI_CALL)

    def fail(self, kind: str, status: int, times: int = 2) -> None:
        """The next `times` requests get `status`, the error quoting the key back (as
        careless providers do: the gateway must not pass it on)."""
        echo = f"request with key {KEYS[kind]} refused"
        if kind in self.family:
            self.family[kind].fail_next(
                *[Fault(status=status, echo_request=True) for _ in range(times)]
            )
        elif kind == "anthropic":
            kind_of = {429: "rate_limit_error", 500: "api_error"}[status]
            for _ in range(times):
                self.processes[kind].fail({"status": status, "error_type": kind_of,
                                           "message": echo})  # fmt: skip
        else:
            name = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}[status]
            self.processes[kind].fail({"status": status, "status_name": name, "times": times,
                                       "message": echo})  # fmt: skip

    def cut_stream(self, kind: str) -> None:
        """The next stream is cut (the connection dropped) a few events in."""
        if kind in self.family:
            self.family[kind].fail_next(Fault(cut_after_chunks=3))
        elif kind == "anthropic":
            self.processes[kind].fail({"cut_after": 4})
        else:
            self.processes[kind].fail({"cut_after_chunks": 1, "times": 1})


def _providers(family: dict[str, FakeOpenAIServer], processes: dict[str, Any]) -> list[Any]:
    entries = []
    for kind in KINDS:
        url = family[kind].base_url if kind in family else processes[kind].url
        entry: dict[str, Any] = {"kind": kind, "base_url": url, "api_key": KEYS[kind],
                                 "retries": RETRIES,
                                 "breaker": {"failure_threshold": 1000}}  # fmt: skip
        if kind == "azure":
            entry["options"] = {"api_version": "2024-10-21"}
        if kind == "openai-compatible":
            entry["prices"] = {MODEL[kind]: {"input": 0.05, "output": 0.08}}
        entries.append({"name": PROVIDER[kind], **entry})
        entries += [{"name": f"{PROVIDER[kind]}-rl-{api}", **entry} for api in APIS]
    return entries


@contextmanager
def spill_gateway(workdir: Path) -> Iterator[Spill]:
    family = {kind: FakeOpenAIServer(_DIALECT[kind], KEYS[kind]) for kind in _DIALECT}
    processes = {
        "anthropic": FakeProviderProcess("anthropic_server.py", KEYS["anthropic"], workdir),
        "gemini": FakeProviderProcess("gemini_server.py", KEYS["gemini"], workdir),
    }
    try:
        for fake in family.values():
            fake.start()
        for process in processes.values():
            process.start()
        routes: dict[str, list[str]] = {route(kind): [target(kind)] for kind in KINDS}
        routes |= {
            rate_limited_route(api, kind): [f"{PROVIDER[kind]}-rl-{api}/{MODEL[kind]}"]
            for api in APIS
            for kind in KINDS
        }
        routes[GUARDED] = ["desk-model", *(target(kind) for kind in KINDS)]
        desk = {"name": "desk", "url": f"http://127.0.0.1:{free_port()}/v1",
                "served_model_names": ["desk-model"]}  # fmt: skip
        config = {
            "engines": [desk],
            "providers": _providers(family, processes),
            "routes": routes,
            # A private request waits this long for the engine, then gets its 429 or 503.
            "scheduler": {"max_queue_wait_s": 1.0},
            "server": {"ready_wait_s": 1.0},
            "ledger": {"flush_interval_s": 0.05},
        }
        with GatewayProcess(config, workdir) as gateway:
            yield Spill(gateway, family, processes)
    finally:
        for fake in family.values():
            fake.stop()
        for process in processes.values():
            process.stop()
