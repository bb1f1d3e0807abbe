"""Hostile shapes meet the request reader and every provider translator: whatever the
reader accepts, nothing after it may fail on, and each translator answers a shape it cannot
take with a 400 that names the parameter, never an exception of its own. Requests valid
by OpenAI's own schema are all accepted."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from openai_requests import FOCUS, json_arguments, requests

from spillgate.errors import GatewayError
from spillgate.fallback.adapter import ProviderAdapter, ProviderSettings
from spillgate.fallback.anthropic.request import translate_request
from spillgate.fallback.registry import create_adapter
from spillgate.protocol import Endpoint, UpstreamRequest
from spillgate.server.features import needs_json_schema, requested_max_tokens, text_bytes
from spillgate.server.requests import parse

KINDS = {
    "openai": {},
    "azure": {"api_version": "2024-10-21"},
    "openai-compatible": {},
    "mistral": {},
    "anthropic": {},
    "gemini": {},
}
ADAPTERS: dict[str, ProviderAdapter] = {
    kind: create_adapter(
        ProviderSettings(kind, kind, "https://provider.invalid/v1", "sk-unit", options=options)
    )
    for kind, options in KINDS.items()
}
SCHEMAS = {
    "chat": "CreateChatCompletionRequest",
    "completions": "CreateCompletionRequest",
    "embeddings": "CreateEmbeddingRequest",
}
ENDPOINTS = {
    "chat": Endpoint.CHAT,
    "completions": Endpoint.COMPLETIONS,
    "embeddings": Endpoint.EMBEDDINGS,
}

WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "the weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": ["integer", "null"]}},
            "required": ["city"],
            "$defs": {"unit": {"enum": ["c", "f"]}},
        },
    },
}
#: Requests that reach every field the translators read.
BASES: list[tuple[Endpoint, dict[str, Any]]] = [
    (
        Endpoint.CHAT,
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {
                    "role": "user",
                    "name": "ann",
                    "content": [
                        {"type": "text", "text": "weather?"},
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": '{"c": 3}'},
                {"role": "user", "content": "and tomorrow?"},
            ],
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "w", "schema": {"type": "object", "properties": {}}},
            },
            "max_tokens": 100,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": ["\n\n"],
            "stream": True,
            "stream_options": {"include_usage": True},
            "user": "u-1",
        },
    ),
    (
        Endpoint.CHAT,
        {
            "model": "m",
            "messages": [{"role": "developer", "content": [{"type": "text", "text": "hi"}]}],
            "tool_choice": {
                "type": "allowed_tools",
                "allowed_tools": {"mode": "auto", "tools": [WEATHER]},
            },
            "tools": [WEATHER],
            "max_completion_tokens": 50,
            "n": 2,
            "seed": 7,
        },
    ),
    (Endpoint.COMPLETIONS, {"model": "m", "prompt": ["a", "b"], "max_tokens": 5, "logprobs": 2}),
    (Endpoint.EMBEDDINGS, {"model": "m", "input": [[1, 2], [3]], "dimensions": 8}),
]
HOSTILE: list[Any] = [
    None, True, 0, -1, 1.5, 2**64 - 1, "", "f", [], [None], [[[]]], {}, {"type": 5},
    {"name": ["f"]}, {"function": "f"}, {"url": 5},
]  # fmt: skip


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _paths(item, (*path, i))
    return found


@st.composite
def mutants(draw: st.DrawFn) -> tuple[Endpoint, dict[str, Any]]:
    """A base request with one to three of its values replaced by something hostile."""
    endpoint, base = draw(st.sampled_from(BASES))
    request = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(request)))
        parent = request
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(HOSTILE)))
    return endpoint, request


def _upstream(endpoint: Endpoint, payload: dict[str, Any]) -> UpstreamRequest:
    return UpstreamRequest(
        endpoint=endpoint,
        model="m",
        target_model="provider-model",
        body=orjson.dumps(payload),
        payload=payload,
        stream=payload.get("stream") is True,
        request_id="hostile",
    )


def _refused_well(err: GatewayError) -> None:
    assert err.status == 400, err
    assert err.type == "invalid_request_error", err


@settings(
    max_examples=600,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(case=mutants())
def test_what_the_reader_accepts_no_translator_fails_on(case: tuple[Endpoint, Any]) -> None:
    endpoint, payload = case
    try:
        parsed = parse(orjson.dumps(payload), endpoint)
    except GatewayError as err:
        _refused_well(err)
        assert err.param is not None or err.code == "invalid_type", err
        return
    text_bytes(parsed.payload, endpoint)
    requested_max_tokens(parsed.payload)
    needs_json_schema(parsed.payload)
    for kind, adapter in ADAPTERS.items():
        if endpoint is not Endpoint.CHAT and kind in ("anthropic", "gemini", "mistral"):
            continue  # chat only: their refusal of the endpoint is tested with each of them
        try:
            call = adapter.build(_upstream(endpoint, parsed.payload))
        except GatewayError as err:
            _refused_well(err)
            assert err.param is not None or err.code == "unsupported_parameter", (kind, err)
        else:
            orjson.loads(call.body)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
@pytest.mark.parametrize("endpoint", list(SCHEMAS))
def test_every_request_valid_by_openais_schema_is_accepted(endpoint: str, data: Any) -> None:
    focus = data.draw(st.sampled_from(FOCUS[endpoint]))
    request = data.draw(requests(SCHEMAS[endpoint], focus, False))
    json_arguments(request)
    request["model"] = "m"
    # What the schema allows and no server takes (OpenAI's own API and vLLM refuse them too):
    # nothing to complete or embed, a chat answer of no tokens at most.
    assume(request.get("prompt") != [] and request.get("input") != "")
    if endpoint == "chat":
        assume(0 not in (request.get("max_tokens"), request.get("max_completion_tokens")))
    parse(orjson.dumps(request), ENDPOINTS[endpoint])


# -- the shapes the issue names, at each translator ---------------------------------------------

CHAT = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "f"}}]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": "f"}}, "tool_choice"),
        (
            {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": ["f"]}}},
            "tool_choice",
        ),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": None}}, "tool_choice"),
        ({"max_tokens": "9"}, "max_tokens"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": [1]}, "top_p"),
    ],
)
def test_the_anthropic_translator_names_what_it_cannot_read(
    fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(GatewayError) as caught:
        translate_request(
            {"model": "m", "messages": CHAT, **fields},
            "claude",
            stream=False,
            provider="claude",
            default_max_tokens=4096,
            drop_params=(),
        )
    _refused_well(caught.value)
    assert caught.value.param is not None and caught.value.param.startswith(param)


_CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
_AUDIO = {"type": "input_audio", "input_audio": {"data": "A", "format": ["wav"]}}


def _turns(*turns: dict[str, Any]) -> dict[str, Any]:
    return {"messages": [*turns, *CHAT]}


def _choice(choice: Any) -> dict[str, Any]:
    return {"tools": TOOLS, "tool_choice": choice}


@pytest.mark.parametrize(
    ("kind", "fields", "param"),
    [
        ("gemini", _choice({"type": "function", "function": "f"}), "tool_choice"),
        ("gemini", _choice({"type": "allowed_tools", "allowed_tools": "f"}), "tool_choice"),
        (
            "gemini",
            _choice({"type": "allowed_tools", "allowed_tools": {"tools": ["f"]}}),
            "tool_choice",
        ),
        ("gemini", _turns({"role": "assistant", "tool_calls": 5}), "messages[0].tool_calls"),
        (
            "gemini",
            _turns({"role": "user", "content": [_AUDIO]}),
            "messages[0].content[0].input_audio",
        ),
        (
            "gemini",
            {"tools": [{"type": "function", "function": {"name": "f", "description": {}}}]},
            "tools[0]",
        ),
        ("mistral", _turns({"role": ["user"], "content": "hi"}), "messages[0].role"),
        ("mistral", _turns({"role": "assistant", "tool_calls": 5}), "messages[0].tool_calls"),
        (
            "mistral",
            _turns({"role": "assistant", "tool_calls": [{"id": 5}]}),
            "messages[0].tool_calls[0]",
        ),
        (
            "mistral",
            {
                "messages": [
                    {"role": "assistant", "tool_calls": [_CALL]},
                    {"role": "tool", "tool_call_id": 5, "content": "x"},
                ]
            },
            "messages[1].tool_call_id",
        ),
    ],
)
def test_the_gemini_and_mistral_translators_name_what_they_cannot_read(
    kind: str, fields: dict[str, Any], param: str
) -> None:
    payload = {"model": "m", "messages": CHAT, **fields}
    with pytest.raises(GatewayError) as caught:
        ADAPTERS[kind].build(_upstream(Endpoint.CHAT, payload))
    _refused_well(caught.value)
    assert caught.value.param is not None and caught.value.param.startswith(param)


@pytest.mark.parametrize(
    "parameters",
    [
        {"type": "object", "$defs": ["x"], "properties": {"a": {"$ref": "#/$defs/x"}}},
        {"type": "object", "properties": {"a": {"type": ["string", {"x": 1}]}}},
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": [["a"]]},
        {"type": "object", "allOf": [{"properties": ["a"], "required": 5}]},
        {"type": "object", "$defs": {"x": 5}, "properties": {"a": {"$ref": "#/$defs/x"}}},
    ],
)
def test_a_malformed_tool_schema_is_a_400_or_sent_never_a_crash(parameters: Any) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": parameters}}
    payload = {"model": "m", "messages": CHAT, "tools": [tool]}
    try:
        ADAPTERS["gemini"].build(_upstream(Endpoint.CHAT, payload))
    except GatewayError as err:
        _refused_well(err)
        assert err.param is not None and err.param.startswith("tools[0].function.parameters")
