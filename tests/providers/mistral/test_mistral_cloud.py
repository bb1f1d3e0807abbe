"""Mistral through `CloudTarget` against the fake Mistral, over real HTTP: what only this kind
does. Tool-call ids are mapped to Mistral's nine letters or digits and stay stable; the
OpenAI parameters Mistral lacks are refused by name unless `drop_params` lists them; the
ones it renames reach it under its names; and the usage it puts on its last chunk becomes
OpenAI's usage chunk. The suite every kind runs is tests/providers/test_conformance.py.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import orjson
import pytest
from fakes.openai_schema import check_mistral
from fakes.openai_server import FakeOpenAIServer
from guard import egress_guard
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from spillgate.errors import UpstreamError
from spillgate.fallback.adapter import CloudTarget, ProviderSettings
from spillgate.fallback.registry import create_adapter
from spillgate.fallback.resilience import RetryPolicy
from spillgate.protocol import Endpoint, UpstreamRequest

KEY = "mistral-cloud-key-0123456789abcdef"
MODEL = "mistral-small-latest"
MISTRAL_ID = re.compile(r"^[A-Za-z0-9]{9}$")
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CLOCK = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
}
QUESTION = {"role": "user", "content": "Weather and time in Paris?"}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer("mistral", api_key=KEY) as fake:
        yield fake


@pytest.fixture
def fake(server: FakeOpenAIServer) -> FakeOpenAIServer:
    server.reset()
    return server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def target_for(
    fake: FakeOpenAIServer, session: aiohttp.ClientSession, drop: frozenset[str] = frozenset()
) -> CloudTarget:
    settings = ProviderSettings(
        name="mis", kind="mistral", base_url=fake.base_url, api_key=KEY, drop_params=drop
    )
    return CloudTarget(
        MODEL,
        create_adapter(settings),
        session,
        egress=egress_guard(),
        retry=RetryPolicy(max_attempts=1),
    )


def chat(stream: bool = False, **fields: Any) -> UpstreamRequest:
    payload: dict[str, Any] = {"model": "smart", "messages": [QUESTION], **fields}
    if stream:
        payload["stream"] = True
    return UpstreamRequest(
        Endpoint.CHAT, "smart", MODEL, orjson.dumps(payload), payload, stream, "mis1"
    )


async def whole(target: CloudTarget, request: UpstreamRequest) -> ChatCompletion:
    reply = await target.open(request)
    assert reply.body is not None
    return ChatCompletion.model_validate_json(reply.body)


async def chunks_of(target: CloudTarget, request: UpstreamRequest) -> list[ChatCompletionChunk]:
    reply = await target.open(request)
    assert reply.chunks is not None
    events = [e for e in b"".join([c async for c in reply.chunks]).decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    return [ChatCompletionChunk.model_validate_json(e.removeprefix("data: ")) for e in events[:-1]]


def history(first_id: str, second_id: str) -> list[dict[str, Any]]:
    """A turn in which another provider called two tools, and their results."""
    calls = [
        {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": '{"city": "Paris"}'},
        }
        for call_id, name in ((first_id, "get_weather"), (second_id, "get_time"))
    ]
    return [
        QUESTION,
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": first_id, "content": "21 C"},
        {"role": "tool", "tool_call_id": second_id, "content": "14:05"},
    ]


async def test_tool_call_ids_from_elsewhere_become_mistrals_nine_characters(
    fake: FakeOpenAIServer, session: aiohttp.ClientSession
) -> None:
    target = target_for(fake, session)
    messages = history("call_Zx81kQ2vLm0pTt4fWcY7Aa1b", "toolu_01A09q90qw90lq917835lq9")
    answer = await whole(target, chat(messages=messages, tools=[WEATHER, CLOCK]))
    assert (answer.choices[0].message.content or "").endswith("2 tool results")

    sent = fake.requests[-1].body["messages"]
    call_ids = [call["id"] for call in sent[1]["tool_calls"]]
    assert all(MISTRAL_ID.match(i) for i in call_ids) and len(set(call_ids)) == 2
    assert [sent[2]["tool_call_id"], sent[3]["tool_call_id"]] == call_ids, "pairs kept"
    assert check_mistral(fake.requests[-1].body) is None

    await whole(target, chat(messages=messages, tools=[WEATHER, CLOCK]))
    again = fake.requests[-1].body["messages"]
    assert [call["id"] for call in again[1]["tool_calls"]] == call_ids, "the same id, every time"


async def test_an_id_already_in_mistrals_form_is_sent_as_it_is(
    fake: FakeOpenAIServer, session: aiohttp.ClientSession
) -> None:
    await whole(
        target_for(fake, session),
        chat(messages=history("abcDEF123", "call_not_mistral"), tools=[WEATHER, CLOCK]),
    )
    sent = fake.requests[-1].body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "abcDEF123" == sent[2]["tool_call_id"]
    assert sent[1]["tool_calls"][1]["id"] != "call_not_mistral"


async def test_mistrals_own_ids_go_to_the_client_and_come_back_unchanged(
    fake: FakeOpenAIServer, session: aiohttp.ClientSession
) -> None:
    target = target_for(fake, session)
    first = await whole(target, chat(tools=[WEATHER, CLOCK]))
    calls = first.choices[0].message.tool_calls or []
    assert len(calls) == 2 and first.choices[0].finish_reason == "tool_calls"
    ids = [call.id for call in calls]
    assert all(MISTRAL_ID.match(i) for i in ids)
    assert all(isinstance(orjson.loads(c.function.arguments), dict) for c in calls)  # type: ignore[union-attr]

    messages = history(*ids)
    await whole(target, chat(messages=messages, tools=[WEATHER, CLOCK]))
    sent = fake.requests[-1].body["messages"]
    assert [call["id"] for call in sent[1]["tool_calls"]] == ids
    assert [sent[2]["tool_call_id"], sent[3]["tool_call_id"]] == ids


async def test_streamed_tool_calls_get_the_index_and_type_openai_clients_need(
    fake: FakeOpenAIServer, session: aiohttp.ClientSession
) -> None:
    chunks = await chunks_of(target_for(fake, session), chat(True, tools=[WEATHER, CLOCK]))
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert [d.index for d in deltas] == [0, 1]
    assert all(d.type == "function" and d.id and MISTRAL_ID.match(d.id) for d in deltas)
    assert [d.function.name for d in deltas] == ["get_weather", "get_time"]  # type: ignore[union-attr]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"logit_bias": {"1": 2}}, "logit_bias"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"service_tier": "flex"}, "service_tier"),
        ({"user": "client-7"}, "user"),
        ({"messages": [{**QUESTION, "name": "bob"}]}, "name"),
    ],
)
async def test_a_parameter_mistral_lacks_is_refused_by_name_unless_dropped(
    fake: FakeOpenAIServer, session: aiohttp.ClientSession, fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(UpstreamError) as caught:
        await target_for(fake, session).open(chat(**fields))
    err = caught.value
    assert (err.status, err.code, err.param) == (400, "unsupported_parameter", param)
    assert f"`{param}`" in err.message and "drop_params" in err.message and "'mis'" in err.message
    assert fake.requests == [], "nothing was sent"

    await whole(target_for(fake, session, frozenset({param})), chat(**fields))
    [sent] = fake.requests
    assert param not in sent.body and all(param not in m for m in sent.body["messages"])
    assert check_mistral(sent.body) is None and fake.rejected == []


@pytest.mark.parametrize(
    "message",
    [
        {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AAAA"}}]},
        {"role": "function", "name": "f", "content": "x"},
    ],
    ids=["audio-part", "function-role"],
)
async def test_what_no_drop_can_fix_is_refused_before_sending(
    fake: FakeOpenAIServer, session: aiohttp.ClientSession, message: dict[str, Any]
) -> None:
    with pytest.raises(UpstreamError) as caught:
        await target_for(fake, session).open(chat(messages=[message]))
    assert (caught.value.status, caught.value.code) == (400, "unsupported_parameter")
    assert caught.value.param is not None and caught.value.param.startswith("messages[0]")
    assert fake.requests == []


async def test_openai_names_reach_mistral_under_its_own(
    fake: FakeOpenAIServer, session: aiohttp.ClientSession
) -> None:
    await whole(
        target_for(fake, session),
        chat(
            messages=[{"role": "developer", "content": "Be brief."}, QUESTION],
            seed=42,
            max_completion_tokens=50,
            tools=[WEATHER],
            tool_choice="required",
        ),
    )
    sent = fake.requests[-1].body
    assert sent["random_seed"] == 42 and "seed" not in sent
    assert sent["max_tokens"] == 50 and "max_completion_tokens" not in sent
    assert sent["tool_choice"] == "any"
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["model"] == MODEL
    assert fake.requests[-1].headers["Authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("include_usage", [True, False])
async def test_the_usage_on_mistrals_last_chunk_becomes_openais_usage_chunk(
    fake: FakeOpenAIServer, session: aiohttp.ClientSession, include_usage: bool
) -> None:
    target = target_for(fake, session)
    request = chat(True, stream_options={"include_usage": include_usage})
    reply = await target.open(request)
    assert reply.chunks is not None
    data = b"".join([c async for c in reply.chunks]).decode()
    chunks = [
        ChatCompletionChunk.model_validate_json(e.removeprefix("data: "))
        for e in data.split("\n\n")
        if e and e != "data: [DONE]"
    ]
    assert "stream_options" not in fake.requests[-1].body, "Mistral refuses it; it always counts"
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    with_usage = [c for c in chunks if c.usage is not None]
    if include_usage:
        assert with_usage == [chunks[-1]] and chunks[-1].choices == []
        usage = chunks[-1].usage
        assert usage is not None
        assert (usage.prompt_tokens, usage.completion_tokens) == (
            reply.usage.prompt_tokens,
            reply.usage.completion_tokens,
        )
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
        assert chunks[-2].choices[0].finish_reason == "stop", "the usage left the finish chunk"
    else:
        assert with_usage == [] and all(c.choices for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "fake answer: 5 words, 0 images, 0 tool results"
