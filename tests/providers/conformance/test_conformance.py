"""One conformance suite that every provider kind runs, each against its fake provider.

Every test is parametrised over `registry.KINDS`: a kind registered without a case in
`CASES` fails every test, so a new kind cannot ship without running the suite. Each call
goes through `CloudTarget` over real HTTP to a fake on loopback, and the answer is read
with the official `openai` SDK's types. What each fake received is checked against that
provider's documented request shape and auth header.

Where the kinds differ on purpose (the model name in the answer, who refuses an unknown
parameter) the case says so, and the test asserts each kind's own behaviour.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from conformance_fakes import CASES, CLIENT_MODEL, FakeProvider
from guard import egress_guard
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from spillgate.errors import UpstreamError
from spillgate.fallback.adapter import CloudTarget, ProviderSettings
from spillgate.fallback.breaker import CircuitBreaker
from spillgate.fallback.prices import PriceBook, cost_usd
from spillgate.fallback.registry import KINDS, create_adapter
from spillgate.fallback.resilience import RetryPolicy, Timeouts
from spillgate.protocol import Endpoint, UpstreamReply, UpstreamRequest

ONE_TRY = RetryPolicy(max_attempts=1)
# Two tries with a backoff short enough not to slow the suite.
QUICK_RETRY = RetryPolicy(max_attempts=2, backoff_base_s=0.01, backoff_max_s=0.02)
PRICES = PriceBook.shipped()
WEATHER = {
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
}
QUESTION = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Say hello to the conformance suite."},
]


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
    fake: FakeProvider,
    session: aiohttp.ClientSession,
    *,
    api_key: str | None = None,
    drop_params: frozenset[str] = frozenset(),
    timeouts: Timeouts | None = None,
    retry: RetryPolicy = ONE_TRY,
    breaker: CircuitBreaker | None = None,
) -> CloudTarget:
    settings = ProviderSettings(
        name=f"conformance-{fake.kind}",
        kind=fake.kind,
        base_url=fake.base_url,
        api_key=api_key or fake.key,
        options=fake.options,
        drop_params=drop_params,
    )
    return CloudTarget(
        fake.target_model,
        create_adapter(settings),
        session,
        egress=egress_guard(),
        timeouts=timeouts or Timeouts(first_byte_s=5, total_s=30),
        retry=retry,
        breaker=breaker,
        price=PRICES.lookup(KINDS[fake.kind].price_family, fake.target_model),
    )


def chat(
    fake: FakeProvider,
    *,
    stream: bool = False,
    include_usage: bool | None = None,
    messages: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> UpstreamRequest:
    payload: dict[str, Any] = {"model": CLIENT_MODEL, "messages": messages or QUESTION, **fields}
    if stream:
        payload["stream"] = True
    if include_usage is not None:
        payload["stream_options"] = {"include_usage": include_usage}
    return UpstreamRequest(
        endpoint=Endpoint.CHAT,
        model=CLIENT_MODEL,
        target_model=fake.target_model,
        body=orjson.dumps(payload),
        payload=payload,
        stream=stream,
        request_id="conformance1",
    )


async def whole(
    target: CloudTarget, request: UpstreamRequest
) -> tuple[UpstreamReply, ChatCompletion]:
    reply = await target.open(request)
    assert reply.status == 200 and reply.body is not None and reply.chunks is None
    return reply, ChatCompletion.model_validate_json(reply.body)


async def streamed(
    target: CloudTarget, request: UpstreamRequest
) -> tuple[UpstreamReply, list[ChatCompletionChunk]]:
    """The stream's chunks, checked as OpenAI SSE: `data:` events ending in `[DONE]`."""
    reply = await target.open(request)
    assert reply.chunks is not None and reply.content_type == "text/event-stream"
    data = b"".join([part async for part in reply.chunks])
    events = [e for e in data.decode().split("\n\n") if e.strip()]
    assert events and all(e.startswith("data: ") for e in events), events
    assert events[-1] == "data: [DONE]" and events.count("data: [DONE]") == 1
    chunks = [ChatCompletionChunk.model_validate_json(e[6:]) for e in events[:-1]]
    return reply, chunks


def text_of(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def price_of(fake: FakeProvider) -> Any:
    return PRICES.lookup(KINDS[fake.kind].price_family, fake.target_model)


# -- the cases ---------------------------------------------------------------------------------


def test_every_registered_kind_has_a_case() -> None:
    assert set(CASES) == set(KINDS), "add a case for each new kind; drop the case of a gone one"


async def test_a_chat_completion_comes_back_in_openai_shape_with_usage_and_cost(
    fake: FakeProvider, session: aiohttp.ClientSession
) -> None:
    target = target_for(fake, session)
    reply, completion = await whole(target, chat(fake))

    assert completion.object == "chat.completion"
    assert completion.model == fake.answer_model
    choice = completion.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason == "stop"
    assert completion.usage is not None and reply.usage is not None
    assert reply.usage.prompt_tokens == completion.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens == completion.usage.completion_tokens > 0
    price = price_of(fake)
    if fake.kind == "openai-compatible":
        assert price is None, "no list price for a compatible provider: config prices it"
    else:
        assert price is not None, f"{fake.target_model} should be priced for kind {fake.kind}"
    if price is None:
        assert reply.cost_usd is None and "x-spillgate-cost-usd" not in reply.headers
    else:
        assert reply.cost_usd == pytest.approx(cost_usd(price, reply.usage)) and reply.cost_usd > 0
        assert float(reply.headers["x-spillgate-cost-usd"]) == pytest.approx(reply.cost_usd)
    [wire] = fake.received()
    fake.check_wire(wire)
    assert target.ready


@pytest.mark.parametrize("include_usage", [True, False, None], ids=["usage", "no-usage", "unset"])
async def test_a_stream_is_openai_chunks_that_reassemble_the_answer(
    fake: FakeProvider, session: aiohttp.ClientSession, include_usage: bool | None
) -> None:
    target = target_for(fake, session)
    _, completion = await whole(target, chat(fake))
    reply, chunks = await streamed(target, chat(fake, stream=True, include_usage=include_usage))

    assert all(c.object == "chat.completion.chunk" for c in chunks)
    models = {c.model for c in chunks}
    # The fake Azure names the deployment in its chunks but the model in whole answers.
    assert models == {fake.answer_model} if fake.answer_model == CLIENT_MODEL else len(models) == 1
    assert text_of(chunks) == completion.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) <= {None}
    with_usage = [c for c in chunks if c.usage is not None]
    if include_usage:
        assert with_usage == [chunks[-1]], "one usage chunk, the last before [DONE]"
        assert chunks[-1].choices == []
        assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0
        assert reply.usage is not None
        assert chunks[-1].usage.completion_tokens == reply.usage.completion_tokens
    else:
        assert with_usage == [], "no usage chunk when the client did not ask for one"
    # Spillgate needs the usage to price the call, asked for or not.
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    price = price_of(fake)
    if price is not None:
        assert reply.cost_usd == pytest.approx(cost_usd(price, reply.usage)) and reply.cost_usd > 0
    for wire in fake.received():
        fake.check_wire(wire)


async def test_a_tool_call_round_trip(fake: FakeProvider, session: aiohttp.ClientSession) -> None:
    target = target_for(fake, session)
    fake.call_a_tool()
    _, completion = await whole(target, chat(fake, tools=[WEATHER], tool_choice="auto"))

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.id
    assert call.function.name == "get_weather"
    arguments = orjson.loads(call.function.arguments)
    assert isinstance(arguments, dict) and isinstance(arguments["city"], str)

    history = [
        *QUESTION,
        choice.message.model_dump(exclude_none=True, exclude={"refusal", "annotations", "audio"}),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature_c": 21}'},
    ]
    _, answer = await whole(target, chat(fake, messages=history, tools=[WEATHER]))
    assert answer.choices[0].finish_reason == "stop" and answer.choices[0].message.content
    first, second = fake.received()
    for wire in (first, second):
        fake.check_wire(wire)
    assert b"temperature_c" in orjson.dumps(second.body), "the tool's result reached the provider"


async def test_a_streamed_tool_call_has_json_arguments(
    fake: FakeProvider, session: aiohttp.ClientSession
) -> None:
    fake.call_a_tool()
    _, chunks = await streamed(
        target_for(fake, session), chat(fake, stream=True, tools=[WEATHER], tool_choice="auto")
    )
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            entry = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += delta.id or ""
            if delta.function is not None:
                entry["name"] += delta.function.name or ""
                entry["arguments"] += delta.function.arguments or ""
    assert list(calls) == [0]
    assert calls[0]["id"] and calls[0]["name"] == "get_weather"
    assert isinstance(orjson.loads(calls[0]["arguments"])["city"], str)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


async def test_a_short_retry_after_is_waited_out_then_retried(
    fake: FakeProvider, session: aiohttp.ClientSession
) -> None:
    fake.fail(429, retry_after="1")
    target = target_for(fake, session, retry=RetryPolicy(max_attempts=2, max_retry_after_s=10))
    started = time.monotonic()
    await whole(target, chat(fake))
    assert time.monotonic() - started >= 0.95, "the provider's Retry-After (seconds) was honoured"
    assert len(fake.received()) == 2 and target.ready


async def test_a_retry_after_beyond_the_policy_is_a_429_that_holds_the_target(
    fake: FakeProvider, session: aiohttp.ClientSession
) -> None:
    fake.fail(429, retry_after="30")
    target = target_for(fake, session, retry=RetryPolicy(max_attempts=3, max_retry_after_s=10))
    with pytest.raises(UpstreamError) as caught:
        await target.open(chat(fake))
    err = caught.value
    assert (err.status, err.type, err.retryable) == (429, "rate_limit_error", True)
    assert err.retry_after_s == pytest.approx(30)
    assert err.headers() == {"retry-after": "30"}
    assert len(fake.received()) == 1, "a wait longer than the policy allows is not waited"
    assert not target.ready and 25 < target.retry_in_s <= 30


@pytest.mark.parametrize("status", [500, 503])
async def test_a_server_error_is_retried_then_a_clear_error(
    fake: FakeProvider, session: aiohttp.ClientSession, status: int
) -> None:
    fake.fail(status, times=2)
    breaker = CircuitBreaker(failure_threshold=2)
    target = target_for(fake, session, retry=QUICK_RETRY, breaker=breaker)
    with pytest.raises(UpstreamError) as caught:
        await target.open(chat(fake))
    err = caught.value
    assert err.status == 503 if status == 503 else err.status in (500, 502)
    assert err.retryable and f"conformance-{fake.kind}" in err.message
    assert len(fake.received()) == 2
    assert not target.ready, "two failures in a row opened the breaker"
    assert set(orjson.loads(err.body())["error"]) == {"message", "type", "param", "code"}


async def test_a_passing_server_error_is_retried_unseen(
    fake: FakeProvider, session: aiohttp.ClientSession
) -> None:
    fake.fail(503)
    target = target_for(fake, session, retry=QUICK_RETRY)
    _, completion = await whole(target, chat(fake))
    assert completion.choices[0].message.content
    assert len(fake.received()) == 2 and target.ready


async def test_a_rejected_request_is_not_retried_and_names_the_provider(
    fake: FakeProvider, session: aiohttp.ClientSession
) -> None:
    fake.fail(400)
    target = target_for(fake, session, retry=QUICK_RETRY, breaker=CircuitBreaker(1))
    with pytest.raises(UpstreamError) as caught:
        await target.open(chat(fake))
    err = caught.value
    assert (err.status, err.retryable) == (400, False)
    error = orjson.loads(err.body())["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert f"conformance-{fake.kind}" in error["message"]
    assert len(fake.received()) == 1
    assert target.ready, "a client's bad request does not count against the provider"


async def test_a_provider_silent_past_the_first_byte_timeout_is_a_504(
    fake: FakeProvider, session: aiohttp.ClientSession
) -> None:
    fake.stall(0.6)
    target = target_for(fake, session, timeouts=Timeouts(first_byte_s=0.1, total_s=5))
    with pytest.raises(UpstreamError) as caught:
        await target.open(chat(fake))
    err = caught.value
    assert (err.status, err.code, err.retryable) == (504, "provider_timeout", True)
    assert target.name in err.message and "first_byte_s 0.1" in err.message


@pytest.mark.parametrize(
    "body", [b"<html>502 Bad Gateway</html>", b'{"id": "x", "object": "chat.completion"}']
)
async def test_a_malformed_answer_is_a_bad_answer_error(
    fake: FakeProvider, session: aiohttp.ClientSession, body: bytes
) -> None:
    fake.answer_raw(body)
    with pytest.raises(UpstreamError) as caught:
        await target_for(fake, session).open(chat(fake))
    err = caught.value
    assert (err.status, err.code) == (502, "provider_bad_answer")
    assert f"conformance-{fake.kind}" in err.message


async def test_an_unsupported_parameter_is_a_400_then_dropped_by_drop_params(
    fake: FakeProvider, session: aiohttp.ClientSession
) -> None:
    name, value = fake.unsupported
    with pytest.raises(UpstreamError) as caught:
        await target_for(fake, session).open(chat(fake, **{name: value}))
    err = caught.value
    assert (err.status, err.param) == (400, name)
    assert name in err.message and f"conformance-{fake.kind}" in err.message
    if fake.refused_here:
        assert err.code == "unsupported_parameter" and "drop_params" in err.message
        assert fake.received() == [], "refused before anything was sent"
    else:
        [refused] = fake.received()
        assert refused.body[name] == value, "the OpenAI family lets the provider judge"

    target = target_for(fake, session, drop_params=frozenset({name}))
    _, completion = await whole(target, chat(fake, **{name: value}))
    assert completion.choices[0].message.content
    sent = fake.received()[-1]
    assert name not in sent.body and name not in orjson.dumps(sent.body).decode()
    fake.check_wire(sent)


@pytest.mark.parametrize("status", [400, 401, 429, 500])
async def test_the_provider_key_never_appears_in_an_error(
    fake: FakeProvider, session: aiohttp.ClientSession, status: int
) -> None:
    # A 401 is what a provider answers a key it does not know: send it another one.
    key = f"{fake.key}-revoked" if status == 401 else fake.key
    fake.fail(status, echo=True)
    target = target_for(fake, session, api_key=key)
    with pytest.raises(UpstreamError) as caught:
        await target.open(chat(fake))
    err = caught.value
    texts = [str(err), repr(err), err.message, err.body().decode(), repr(target.adapter.settings)]
    cause: BaseException | None = err
    while cause is not None:
        texts.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    assert not [t for t in texts if fake.key in t], texts
    if status == 401:
        assert err.code == "provider_auth_failed" and err.status == 502


async def test_the_request_reaches_the_provider_in_its_documented_shape(
    fake: FakeProvider, session: aiohttp.ClientSession
) -> None:
    target = target_for(fake, session)
    sampling: dict[str, Any] = {"temperature": 0.5, "max_tokens": 64, "stop": ["END"]}
    await whole(target, chat(fake, tools=[WEATHER], tool_choice="none", **sampling))
    await streamed(target, chat(fake, stream=True, include_usage=True, **sampling))
    whole_wire, stream_wire = fake.received()
    for wire in (whole_wire, stream_wire):
        fake.check_wire(wire)
        sent = orjson.dumps(wire.body).decode()
        assert "You are a terse assistant." in sent and "conformance suite" in sent
        assert re.search(r"\b64\b", sent), "max_tokens reached the provider"


ONE_INPUT = {Endpoint.EMBEDDINGS: {"input": "hello"}, Endpoint.COMPLETIONS: {"prompt": "hello"}}


@pytest.mark.parametrize("endpoint", [Endpoint.EMBEDDINGS, Endpoint.COMPLETIONS])
async def test_an_endpoint_the_kind_does_not_offer_is_a_400_naming_it(
    fake: FakeProvider, session: aiohttp.ClientSession, endpoint: Endpoint
) -> None:
    payload: dict[str, Any] = {"model": CLIENT_MODEL, **ONE_INPUT[endpoint]}
    request = UpstreamRequest(
        endpoint=endpoint,
        model=CLIENT_MODEL,
        target_model=fake.target_model,
        body=orjson.dumps(payload),
        payload=payload,
        stream=False,
        request_id="conformance1",
    )
    target = target_for(fake, session, retry=QUICK_RETRY, breaker=CircuitBreaker(1))
    if endpoint not in fake.not_offered:
        try:
            reply = await target.open(request)
        except UpstreamError as err:
            # The fake Azure has no legacy completions route: its 404 shows the call was sent.
            assert err.code == "provider_model_not_found", err
        else:
            [sent] = fake.received()
            assert reply.status == 200 and sent.path.endswith(f"/{endpoint.value}")
        return
    with pytest.raises(UpstreamError) as caught:
        await target.open(request)
    err = caught.value
    assert (err.status, err.code) == (400, "unsupported_endpoint")
    assert err.type == "invalid_request_error"
    assert f"/v1/{endpoint.value}" in err.message
    assert f"conformance-{fake.kind}" in err.message and f"kind {fake.kind}" in err.message
    assert fake.received() == [], "refused before anything was sent"
    assert target.ready, "an endpoint the kind lacks does not count against the provider"
