"""The Responses and Messages APIs spill to every provider kind, whole and streamed.

Parametrised over `registry.KINDS` like test_conformance.py: a kind without a case in
`CASES` fails. Each call goes through a real `CloudTarget` (with the gateway's egress
guard) over HTTP to the kind's fake on loopback. Answers are read with the official SDKs'
types (`openai.types.responses`, `anthropic.types`), and streams are run through the
SDKs' own accumulators (what `client.responses.stream` and `client.messages.stream` do),
so an event out of order fails here as it would in a client. What each fake received is
checked against the kind's documented shape: the API itself where the kind speaks it
(`openai` -> /v1/responses, `anthropic` -> /v1/messages), chat in the kind's form for the
rest, with the kind's auth header. A provider's 429 and 500 are `UpstreamError`s with
their status, and a stream cut mid-way ends with the API's own `error` event.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import ErrorResponse, Message, RawMessageStreamEvent
from conformance_fakes import CASES, CLIENT_MODEL, FakeProvider
from guard import egress_guard
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseErrorEvent, ResponseStreamEvent
from pydantic import TypeAdapter

from spillgate.errors import UpstreamError
from spillgate.fallback.adapter import CloudTarget, ProviderSettings
from spillgate.fallback.breaker import CircuitBreaker
from spillgate.fallback.prices import PriceBook, cost_usd
from spillgate.fallback.registry import KINDS, create_adapter
from spillgate.fallback.resilience import RetryPolicy, Timeouts
from spillgate.protocol import Endpoint, UpstreamReply, UpstreamRequest

PRICES = PriceBook.shipped()
APIS = [Endpoint.RESPONSES, Endpoint.MESSAGES]
SYSTEM = "You are a terse assistant."
HELLO = "Say hello to the conformance suite."
WEATHER_QUESTION = "What is the weather in Paris?"
CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
RESULT = '{"temperature_c": 21}'
CALL_ID = "call_conformance01"  # a Responses call_id; Anthropic ids are toolu_...
TOOL_USE_ID = "toolu_01Conformance"
RESPONSE_EVENT = TypeAdapter(ResponseStreamEvent)
MESSAGE_EVENT = TypeAdapter(RawMessageStreamEvent)


@pytest.fixture(params=sorted(KINDS))
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeProvider]:
    make = CASES.get(request.param)
    if make is None:
        pytest.fail(f"provider kind {request.param!r} has no case in the conformance suite")
    provider = make()
    await provider.start()
    yield provider
    await provider.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def target_for(
    fake: FakeProvider, session: aiohttp.ClientSession, breaker: CircuitBreaker | None = None
) -> CloudTarget:
    settings = ProviderSettings(
        name=f"conformance-{fake.kind}",
        kind=fake.kind,
        base_url=fake.base_url,
        api_key=fake.key,
        options=fake.options,
    )
    return CloudTarget(
        fake.target_model,
        create_adapter(settings),
        session,
        egress=egress_guard(),
        timeouts=Timeouts(first_byte_s=5, total_s=30),
        retry=RetryPolicy(max_attempts=1),
        breaker=breaker,
        price=PRICES.lookup(KINDS[fake.kind].price_family, fake.target_model),
    )


# -- the requests, in each API's terms ---------------------------------------------------------


def payload_for(endpoint: Endpoint, *, tools: bool = False, result: bool = False) -> dict[str, Any]:
    """A plain question; with `tools`, one that offers get_weather; with `result`, the turn
    after the call: the call and its result sent back."""
    if endpoint is Endpoint.RESPONSES:
        body: dict[str, Any] = {
            "model": CLIENT_MODEL,
            "instructions": SYSTEM,
            "input": WEATHER_QUESTION if tools else HELLO,
            "max_output_tokens": 256,
        }
        if tools or result:
            body["tools"] = [{"type": "function", "name": "get_weather",
                              "description": "Current weather for a city.", "parameters": CITY,
                              "strict": False}]  # fmt: skip
            body["tool_choice"] = "auto"
        if result:
            body["input"] = [
                {"role": "user", "content": WEATHER_QUESTION},
                {"type": "function_call", "call_id": CALL_ID, "name": "get_weather",
                 "arguments": '{"city": "Paris"}'},
                {"type": "function_call_output", "call_id": CALL_ID, "output": RESULT},
            ]  # fmt: skip
        return body
    body = {
        "model": CLIENT_MODEL,
        "max_tokens": 256,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": WEATHER_QUESTION if tools else HELLO}],
    }
    if tools or result:
        body["tools"] = [{"name": "get_weather", "description": "Current weather for a city.",
                          "input_schema": CITY}]  # fmt: skip
        body["tool_choice"] = {"type": "auto"}
    if result:
        body["messages"] += [
            {"role": "assistant", "content": [{"type": "tool_use", "id": TOOL_USE_ID,
                                               "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": TOOL_USE_ID,
                                          "content": RESULT}]},
        ]  # fmt: skip
    return body


def upstream(
    fake: FakeProvider, endpoint: Endpoint, payload: dict[str, Any], stream: bool = False
) -> UpstreamRequest:
    if stream:
        payload = {**payload, "stream": True}
    return UpstreamRequest(
        endpoint=endpoint,
        model=CLIENT_MODEL,
        target_model=fake.target_model,
        body=orjson.dumps(payload),
        payload=payload,
        stream=stream,
        request_id="dialect-conformance1",
    )


# -- the answers, read as the SDKs read them ---------------------------------------------------


@dataclass
class Answer:
    """What a client of the API reads: the text, the tool calls, the usage, how it ended."""

    text: str
    calls: list[tuple[str, str, dict[str, Any]]]  # (id, name, arguments)
    input_tokens: int
    output_tokens: int
    finish: str


def read_whole(endpoint: Endpoint, body: bytes) -> Answer:
    if endpoint is Endpoint.RESPONSES:
        response = Response.model_validate_json(body)
        assert response.object == "response" and response.status == "completed"
        calls = [
            (o.call_id, o.name, orjson.loads(o.arguments))
            for o in response.output
            if o.type == "function_call"
        ]
        assert response.usage is not None
        usage = (response.usage.input_tokens, response.usage.output_tokens)
        return Answer(response.output_text, calls, *usage, "calls" if calls else "stop")
    message = Message.model_validate_json(body)
    assert message.type == "message" and message.role == "assistant"
    text = "".join(b.text for b in message.content if b.type == "text")
    calls = [(b.id, b.name, dict(b.input)) for b in message.content if b.type == "tool_use"]  # type: ignore[arg-type]
    finish = {"tool_use": "calls", "end_turn": "stop"}.get(str(message.stop_reason), "other")
    return Answer(text, calls, message.usage.input_tokens, message.usage.output_tokens, finish)


def sse(data: bytes) -> list[tuple[str | None, Any]]:
    """(event name, parsed data) per event, as an SSE client reads them."""
    events: list[tuple[str | None, Any]] = []
    for block in re.split(r"\r?\n\r?\n", data.decode()):
        name, lines = None, []
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                lines.append(line[5:].strip())
        if lines and lines != ["[DONE]"]:
            events.append((name, orjson.loads("\n".join(lines))))
    return events


def read_stream(endpoint: Endpoint, data: bytes) -> tuple[Answer | None, Any]:
    """The answer the SDK's stream helper assembles (None: it did not complete), and the
    stream's error event if it ended with one (a Responses one numbered after the rest)."""
    events = sse(data)
    assert events, data
    for name, event in events:
        assert name == event["type"], f"the event name is its type: {name} vs {event['type']}"
    *body, (_, last) = events
    error = last if last["type"] == "error" else None
    if error is not None:
        events = body
    assert all(e["type"] != "error" for _, e in events), "one error event, the last"
    if endpoint is Endpoint.RESPONSES:
        if error is not None and events:
            last_number = events[-1][1]["sequence_number"]
            assert error["sequence_number"] > last_number, "the error is numbered last"
        return _responses_answer([e for _, e in events]), error
    return _messages_answer([e for _, e in events if e["type"] != "ping"]), error


def _responses_answer(events: list[dict[str, Any]]) -> Answer | None:
    numbers = [e["sequence_number"] for e in events]
    assert numbers == sorted(set(numbers)), f"sequence numbers increase: {numbers}"
    state: Any = ResponseStreamState(input_tools=omit, text_format=omit)
    for raw in events:
        state.handle_event(RESPONSE_EVENT.validate_python(raw))
    final = state._completed_response
    if final is None:
        return None
    assert events[-1]["type"] == "response.completed", "response.completed ends the stream"
    return read_whole(Endpoint.RESPONSES, final.model_dump_json())


def _messages_answer(events: list[dict[str, Any]]) -> Answer | None:
    snapshot: Any = None
    bufs: dict[int, bytes] = {}
    for raw in events:
        event = MESSAGE_EVENT.validate_python(raw)
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=bufs)
    if not events or events[-1]["type"] != "message_stop":
        return None
    return read_whole(Endpoint.MESSAGES, snapshot.model_dump_json())


async def whole(target: CloudTarget, request: UpstreamRequest) -> tuple[UpstreamReply, Answer]:
    reply = await target.open(request)
    assert reply.status == 200 and reply.body is not None and reply.chunks is None
    return reply, read_whole(request.endpoint, reply.body)


async def streamed(
    target: CloudTarget, request: UpstreamRequest
) -> tuple[UpstreamReply, Answer | None, Any]:
    reply = await target.open(request)
    assert reply.chunks is not None and reply.content_type.startswith("text/event-stream")
    data = b"".join([part async for part in reply.chunks])
    return reply, *read_stream(request.endpoint, data)


def assert_usage_and_cost(fake: FakeProvider, reply: UpstreamReply, answer: Answer) -> None:
    assert reply.usage is not None, "the usage was read from the answer"
    assert reply.usage.completion_tokens == answer.output_tokens > 0
    assert reply.usage.prompt_tokens >= answer.input_tokens > 0
    price = PRICES.lookup(KINDS[fake.kind].price_family, fake.target_model)
    if price is not None:
        assert reply.cost_usd == pytest.approx(cost_usd(price, reply.usage)) and reply.cost_usd > 0


def assert_reached_as_documented(
    fake: FakeProvider, endpoint: Endpoint, *payloads: dict[str, Any]
) -> None:
    """One request per payload reached the fake, each in the kind's documented shape."""
    wires = fake.received()
    assert len(wires) == len(payloads), [w.path for w in wires]
    for wire, payload in zip(wires, payloads, strict=True):
        fake.check_dialect_wire(wire, endpoint)
        if endpoint in fake.native:  # passed through: the client's own turns, as sent
            turns = "input" if endpoint is Endpoint.RESPONSES else "messages"
            assert wire.body[turns] == payload[turns]


# -- the cases ---------------------------------------------------------------------------------


def test_every_registered_kind_has_a_case() -> None:
    assert set(CASES) == set(KINDS)


@pytest.mark.parametrize("endpoint", APIS, ids=["responses", "messages"])
async def test_a_plain_answer_whole_and_streamed(
    fake: FakeProvider, session: aiohttp.ClientSession, endpoint: Endpoint
) -> None:
    target = target_for(fake, session)
    payload = payload_for(endpoint)
    reply, answer = await whole(target, upstream(fake, endpoint, payload))
    assert answer.text and answer.calls == [] and answer.finish == "stop"
    assert_usage_and_cost(fake, reply, answer)

    reply, streamed_answer, error = await streamed(target, upstream(fake, endpoint, payload, True))
    assert error is None and streamed_answer is not None
    assert streamed_answer.text == answer.text, "the stream says what the whole answer says"
    assert streamed_answer.finish == "stop"
    assert_usage_and_cost(fake, reply, streamed_answer)
    assert_reached_as_documented(fake, endpoint, payload, payload)
    sent = orjson.dumps([w.body for w in fake.received()]).decode()
    assert SYSTEM in sent and HELLO in sent
    assert target.ready


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("endpoint", APIS, ids=["responses", "messages"])
async def test_a_function_tool_is_called_and_its_result_goes_back(
    fake: FakeProvider, session: aiohttp.ClientSession, endpoint: Endpoint, stream: bool
) -> None:
    target = target_for(fake, session)
    fake.call_a_tool()
    asked = payload_for(endpoint, tools=True)
    if stream:
        reply, called, error = await streamed(target, upstream(fake, endpoint, asked, True))
        assert error is None and called is not None
    else:
        reply, called = await whole(target, upstream(fake, endpoint, asked))
    assert called.finish == "calls"
    [(call_id, name, arguments)] = called.calls
    assert call_id and name == "get_weather" and isinstance(arguments["city"], str)
    assert_usage_and_cost(fake, reply, called)

    answered = payload_for(endpoint, result=True)
    if stream:
        reply, final, error = await streamed(target, upstream(fake, endpoint, answered, True))
        assert error is None and final is not None
    else:
        reply, final = await whole(target, upstream(fake, endpoint, answered))
    assert final.finish == "stop" and final.text and final.calls == []
    assert_usage_and_cost(fake, reply, final)
    first, second = fake.received()
    assert "temperature_c" not in orjson.dumps(first.body).decode()
    assert "temperature_c" in orjson.dumps(second.body).decode(), "the tool's result arrived"
    assert_reached_as_documented(fake, endpoint, asked, answered)


@pytest.mark.parametrize("status", [429, 500])
@pytest.mark.parametrize("endpoint", APIS, ids=["responses", "messages"])
async def test_a_provider_error_is_an_upstream_error_with_its_status(
    fake: FakeProvider, session: aiohttp.ClientSession, endpoint: Endpoint, status: int
) -> None:
    fake.fail(status, retry_after="30" if status == 429 else None)
    target = target_for(fake, session)
    with pytest.raises(UpstreamError) as caught:
        await target.open(upstream(fake, endpoint, payload_for(endpoint)))
    err = caught.value
    if status == 429:
        assert (err.status, err.type, err.retryable) == (429, "rate_limit_error", True)
        assert err.headers() == {"retry-after": "30"}
    else:
        assert err.status in (500, 502) and err.retryable
    assert f"conformance-{fake.kind}" in err.message
    body = orjson.loads(err.body(endpoint))
    if endpoint is Endpoint.MESSAGES:  # what the gateway answers, in Anthropic's shape
        error = ErrorResponse.model_validate(body).error
        assert error.type == ("rate_limit_error" if status == 429 else "api_error")
    else:
        assert set(body["error"]) == {"message", "type", "param", "code"}
    assert len(fake.received()) == 1
    assert fake.key not in err.message


@pytest.mark.parametrize("endpoint", APIS, ids=["responses", "messages"])
async def test_a_stream_cut_mid_way_ends_with_the_apis_error_event(
    fake: FakeProvider, session: aiohttp.ClientSession, endpoint: Endpoint
) -> None:
    fake.cut_stream()
    target = target_for(fake, session, CircuitBreaker(failure_threshold=1))
    _, answer, error = await streamed(target, upstream(fake, endpoint, payload_for(endpoint), True))
    assert answer is None, "a cut stream does not complete"
    assert error is not None, "the stream ends with an error event, not silently"
    if endpoint is Endpoint.RESPONSES:
        event = ResponseErrorEvent.model_validate(error)
        assert event.code == "provider_stream_cut"
        message = event.message
    else:
        parsed = ErrorResponse.model_validate(error)
        assert parsed.error.type in ("api_error", "overloaded_error")
        message = parsed.error.message
    assert f"conformance-{fake.kind}" in message and fake.key not in message
    assert not target.ready, "the cut counts against the provider"
