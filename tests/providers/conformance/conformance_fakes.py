"""Each provider kind's fake behind one face, for the conformance suite.

A case knows how to start its kind's fake, script a fault, read back what it received, and
check that request against the provider's documented shape and auth header. `CASES` has
one case per kind; the suite fails for a kind in the registry that has none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fakes import anthropic_server
from fakes.anthropic_server import FakeAnthropic, Reply
from fakes.gemini_server import FakeGemini
from fakes.gemini_wire import request_problems
from fakes.openai_schema import check_mistral, check_openai
from fakes.openai_server import FakeOpenAIServer, Fault

from spillgate.protocol import Endpoint

CLIENT_MODEL = "smart"  # the route the client asked for; each kind maps it to its own model


@dataclass
class Wire:
    """One request as the fake received it; header names in lower case."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


# -- the fakes, behind one face --------------------------------------------------------------


class FakeProvider(Protocol):
    """One kind's fake provider and what the suite needs to know about that kind."""

    kind: str
    key: str
    target_model: str
    base_url: str
    options: dict[str, Any] = {}
    #: A parameter this kind cannot take, with a value that is not neutral.
    unsupported: tuple[str, Any]
    #: The adapter refuses `unsupported` itself (nothing is sent); else the provider does.
    refused_here: bool
    #: The `model` of an answer: the client's (hides the spill) or the provider's own name.
    answer_model: str
    #: The endpoints besides chat completions that the kind does not offer.
    not_offered: frozenset[Endpoint]

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def received(self) -> list[Wire]: ...
    def fail(
        self, status: int, *, times: int = 1, retry_after: str | None = None, echo: bool = False
    ) -> None:
        """The next `times` requests get this error status; `echo` quotes the key back."""

    def stall(self, seconds: float) -> None:
        """The next request waits this long before answering anything."""

    def answer_raw(self, body: bytes) -> None:
        """The next request gets 200 with these bytes as its JSON body."""

    def call_a_tool(self) -> None:
        """The next answer calls `get_weather` (the OpenAI-family fakes do so by themselves)."""

    def check_wire(self, wire: Wire) -> None:
        """Assert the request is in the provider's documented shape, with its auth."""

    # -- the inbound APIs besides chat (Responses, Messages) ----------------------------------

    #: The inbound APIs the kind is sent as they are; it gets the others as chat.
    native: frozenset[Endpoint]

    def cut_stream(self) -> None:
        """The next streamed answer is cut (the connection dropped) after a few events."""

    def check_dialect_wire(self, wire: Wire, endpoint: Endpoint) -> None:
        """Assert a Responses or Messages request reached the provider in the kind's shape:
        the API's own at its own path where the kind speaks it, else as chat."""


#: What a kind that speaks an API natively receives it on (path below the fake's root).
NATIVE_PATHS = {Endpoint.RESPONSES: "/v1/responses", Endpoint.MESSAGES: "/v1/messages"}
#: The top-level fields of OpenAI's `POST /v1/responses` request body.
RESPONSES_FIELDS = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls",
        "max_output_tokens", "max_tool_calls", "temperature", "top_p", "top_logprobs", "stream",
        "stream_options", "text", "reasoning", "truncation", "store", "metadata", "user",
        "previous_response_id", "include", "background", "service_tier", "prompt",
        "prompt_cache_key", "safety_identifier", "conversation",
    }
)  # fmt: skip


def check_responses_body(body: Any, target_model: str) -> None:
    """A Responses request as OpenAI documents it: `input`, not `messages`."""
    assert isinstance(body, dict) and "input" in body and "messages" not in body, body
    assert set(body) <= RESPONSES_FIELDS, sorted(set(body) - RESPONSES_FIELDS)
    assert body["model"] == target_model


class OpenAIFamilyFake(FakeProvider):
    def __init__(self, kind: str, dialect: str, target_model: str, answer_model: str) -> None:
        self.kind, self.target_model, self.answer_model = kind, target_model, answer_model
        self.key = f"sk-{kind}-conformance-0123456789"
        self.server = FakeOpenAIServer(dialect, api_key=self.key)
        self.options = {"api_version": "2024-10-21"} if dialect == "azure" else {}
        # Mistral checks each parameter itself; the rest of the family forwards what it is
        # given and lets the provider judge.
        self.refused_here = dialect == "mistral"
        self.unsupported = ("logit_bias", {"1": 5}) if self.refused_here else ("top_k", 5)
        self.not_offered = (
            frozenset({Endpoint.EMBEDDINGS, Endpoint.COMPLETIONS})
            if dialect == "mistral"
            else frozenset()
        )
        # OpenAI itself serves /v1/responses; an "OpenAI-compatible" server may not.
        self.native = frozenset({Endpoint.RESPONSES}) if kind == "openai" else frozenset()

    async def start(self) -> None:
        self.server.start()
        self.base_url = self.server.base_url

    async def stop(self) -> None:
        self.server.stop()

    def received(self) -> list[Wire]:
        return [
            Wire(r.path, r.query, {k.lower(): v for k, v in r.headers.items()}, r.body)
            for r in self.server.requests
        ]

    def fail(
        self, status: int, *, times: int = 1, retry_after: str | None = None, echo: bool = False
    ) -> None:
        headers = {"retry-after": retry_after} if retry_after else {}
        self.server.fail_next(
            *[Fault(status=status, headers=headers, echo_request=echo) for _ in range(times)]
        )

    def stall(self, seconds: float) -> None:
        self.server.fail_next(Fault(first_byte_delay_s=seconds))

    def answer_raw(self, body: bytes) -> None:
        self.server.fail_next(Fault(raw_body=body))

    def call_a_tool(self) -> None:
        pass

    def check_wire(self, wire: Wire) -> None:
        if self.server.dialect == "mistral":
            assert check_mistral(wire.body) is None
        else:
            assert check_openai(wire.body) is None
        if self.server.dialect == "azure":
            assert wire.path == f"/openai/deployments/{self.target_model}/chat/completions"
            assert wire.query == {"api-version": "2024-10-21"}
            assert wire.headers["api-key"] == self.key and "authorization" not in wire.headers
        else:
            assert wire.path == "/v1/chat/completions" and wire.query == {}
            assert wire.headers["authorization"] == f"Bearer {self.key}"
        assert wire.body["model"] == self.target_model

    def cut_stream(self) -> None:
        self.server.fail_next(Fault(cut_after_chunks=3))

    def check_dialect_wire(self, wire: Wire, endpoint: Endpoint) -> None:
        if endpoint not in self.native:
            self.check_wire(wire)
            return
        assert (wire.path, wire.query) == (NATIVE_PATHS[endpoint], {})
        assert wire.headers["authorization"] == f"Bearer {self.key}"
        check_responses_body(wire.body, self.target_model)


_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
}


class AnthropicFake(FakeProvider):
    kind = "anthropic"
    key = "sk-ant-conformance-0123456789abcdef"
    target_model = "claude-sonnet-4-5"
    unsupported, refused_here = ("seed", 7), True
    answer_model = CLIENT_MODEL
    not_offered = frozenset({Endpoint.EMBEDDINGS, Endpoint.COMPLETIONS})
    native = frozenset({Endpoint.MESSAGES})

    def __init__(self) -> None:
        self.server = FakeAnthropic(api_key=self.key)

    async def start(self) -> None:
        await self.server.start()
        self.base_url = self.server.url

    async def stop(self) -> None:
        await self.server.stop()

    def received(self) -> list[Wire]:
        return [
            Wire("/v1/messages", {}, {k.lower(): v for k, v in r.headers.items()}, r.body)
            for r in self.server.received
        ]

    def fail(
        self, status: int, *, times: int = 1, retry_after: str | None = None, echo: bool = False
    ) -> None:
        message = f"request with x-api-key {self.key} refused" if echo else "injected fault"
        fault = anthropic_server.Fault(
            status=status,
            error_type=_ANTHROPIC_TYPES.get(status, "api_error"),
            message=message,
            retry_after=retry_after,
        )
        self.server.fail(*[fault] * times)

    def stall(self, seconds: float) -> None:
        self.server.fail(anthropic_server.Fault(delay_s=seconds))

    def answer_raw(self, body: bytes) -> None:
        self.server.fail(anthropic_server.Fault(raw_body=body))

    def call_a_tool(self) -> None:
        self.server.answer(
            Reply(
                content=[
                    {
                        "type": "tool_use",
                        "id": "toolu_01Conformance",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    }
                ],
                stop_reason="tool_use",
            )
        )

    def check_wire(self, wire: Wire) -> None:
        anthropic_server.check_headers(wire.headers, self.key)
        anthropic_server.check_body(wire.body)
        assert "authorization" not in wire.headers
        assert wire.body["model"] == self.target_model

    def cut_stream(self) -> None:
        self.server.fail(anthropic_server.Fault(cut_after=4))

    def check_dialect_wire(self, wire: Wire, endpoint: Endpoint) -> None:
        # The fake serves only /v1/messages: Messages as it is, Responses as chat turned
        # into Messages by the adapter; either way it must be Anthropic's documented shape.
        self.check_wire(wire)


_GEMINI_STATUSES = {
    400: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class GeminiFake(FakeProvider):
    kind = "gemini"
    key = "gemini-conformance-key-0123456789"
    target_model = "gemini-2.5-flash"
    unsupported, refused_here = ("logit_bias", {"1": 5}), True
    answer_model = CLIENT_MODEL
    not_offered = frozenset({Endpoint.EMBEDDINGS, Endpoint.COMPLETIONS})
    native: frozenset[Endpoint] = frozenset()

    def __init__(self) -> None:
        self.server = FakeGemini(api_key=self.key)

    async def start(self) -> None:
        self.base_url = await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()

    def received(self) -> list[Wire]:
        return [
            Wire(f"/{r.version}/models/{r.model}:{r.action}", r.query, r.headers, r.body)
            for r in self.server.received
        ]

    def fail(
        self, status: int, *, times: int = 1, retry_after: str | None = None, echo: bool = False
    ) -> None:
        self.server.fail(
            status=status,
            status_name=_GEMINI_STATUSES.get(status, "INTERNAL"),
            retry_after=retry_after,
            times=times,
            message=f"key {self.key} was refused" if echo else "injected fault",
        )

    def stall(self, seconds: float) -> None:
        self.server.fail(first_byte_delay_s=seconds, times=1)

    def answer_raw(self, body: bytes) -> None:
        self.server.fail(raw_body=body, times=1)

    def call_a_tool(self) -> None:
        call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
        self.server.answer(
            {
                "candidates": [
                    {"content": {"role": "model", "parts": [call]}, "finishReason": "STOP"}
                ],
                "usageMetadata": {
                    "promptTokenCount": 20,
                    "candidatesTokenCount": 8,
                    "totalTokenCount": 28,
                },
                "modelVersion": self.target_model,
            }
        )

    def check_wire(self, wire: Wire) -> None:
        assert request_problems(wire.body) == []
        assert wire.headers["x-goog-api-key"] == self.key
        assert "key" not in wire.query, "the key stays out of the URL"
        streamed = wire.query.get("alt") == "sse"
        action = "streamGenerateContent" if streamed else "generateContent"
        assert wire.path == f"/v1beta/models/{self.target_model}:{action}"
        assert wire.query == ({"alt": "sse"} if streamed else {})

    def cut_stream(self) -> None:
        self.server.fail(cut_after_chunks=1, times=1)

    def check_dialect_wire(self, wire: Wire, endpoint: Endpoint) -> None:
        self.check_wire(wire)  # Gemini speaks neither API: both arrive as generateContent


#: One case per provider kind. A kind in the registry without one fails the whole suite.
CASES: dict[str, Callable[[], FakeProvider]] = {
    "openai": lambda: OpenAIFamilyFake("openai", "openai", "gpt-4o-mini", "gpt-4o-mini"),
    # Azure names the model behind the deployment in its answers, not the deployment.
    "azure": lambda: OpenAIFamilyFake("azure", "azure", "gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
    "mistral": lambda: OpenAIFamilyFake(
        "mistral", "mistral", "mistral-small-latest", "mistral-small-latest"
    ),
    "openai-compatible": lambda: OpenAIFamilyFake(
        "openai-compatible", "openai", "llama-3.1-8b-instant", "llama-3.1-8b-instant"
    ),
    "anthropic": AnthropicFake,
    "gemini": GeminiFake,
}
