"""POST /v1/responses to kind `openai` through `CloudTarget`, against the fake OpenAI over
real HTTP: sent as the client wrote it (the provider's model name, drop_params dropped),
answered with OpenAI's own bytes, whole or streamed, usage read from them. Kinds that do
not serve the API natively (openai-compatible, azure) get the request as chat.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import orjson
import pytest
from fakes.openai_server import FakeOpenAIServer, Fault
from guard import egress_guard
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from spillgate.errors import UpstreamError
from spillgate.fallback.adapter import CloudTarget, ProviderCall, ProviderSettings
from spillgate.fallback.registry import create_adapter
from spillgate.fallback.resilience import RetryPolicy
from spillgate.protocol import Endpoint, UpstreamReply, UpstreamRequest
from spillgate.sse import EventSplitter, event_data

KEY = "sk-responses-native-0123456789"
TARGET = "gpt-4o-mini"
EVENT = TypeAdapter(ResponseStreamEvent)
TOOL = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": False,
}


class RecordingEgress:
    """The gateway's egress guard, noting each body it was shown."""

    def __init__(self) -> None:
        self.guard = egress_guard()
        self.seen: list[ProviderCall] = []

    async def __call__(
        self, request: UpstreamRequest, target: str, kind: str, call: ProviderCall
    ) -> None:
        self.seen.append(call)
        await self.guard(request, target, kind, call)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer("openai", api_key=KEY) as fake:
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
    fake: FakeOpenAIServer,
    session: aiohttp.ClientSession,
    egress: RecordingEgress | None = None,
    kind: str = "openai",
    drop: frozenset[str] = frozenset(),
) -> CloudTarget:
    settings = ProviderSettings("oai", kind, fake.base_url, KEY, drop_params=drop)
    return CloudTarget(
        TARGET,
        create_adapter(settings),
        session,
        egress=egress or RecordingEgress(),
        retry=RetryPolicy(max_attempts=1),
    )


def responses_request(stream: bool = False, **fields: Any) -> UpstreamRequest:
    payload: dict[str, Any] = {
        "model": "smart",
        "input": [{"role": "user", "content": "Hi there, how are you?"}],
        "instructions": "Be brief.",
        **fields,
    }
    if stream:
        payload["stream"] = True
    body = orjson.dumps(payload)
    return UpstreamRequest(Endpoint.RESPONSES, "smart", TARGET, body, payload, stream, "rn1")


async def read_stream(reply: UpstreamReply) -> bytes:
    assert reply.chunks is not None
    return b"".join([chunk async for chunk in reply.chunks])


def events_of(data: bytes) -> list[dict[str, Any]]:
    splitter = EventSplitter()
    out = []
    for event in splitter.feed(data):
        payload = event_data(event)
        assert payload is not None
        out.append(orjson.loads(payload))
    assert splitter.pending == b""
    return out


async def test_a_whole_response_passes_through_with_its_usage(
    fake: FakeOpenAIServer, session: aiohttp.ClientSession
) -> None:
    reply = await target_for(fake, session).open(responses_request())
    assert reply.body is not None and reply.chunks is None
    response = Response.model_validate_json(reply.body)
    assert response.model == f"{TARGET}-2025-01-01", "OpenAI's own answer, not rewritten"
    assert response.output_text.startswith("fake answer: ")
    assert response.usage is not None and reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (
        response.usage.input_tokens,
        response.usage.output_tokens,
    )
    [sent] = fake.requests
    assert sent.path == "/v1/responses" and fake.rejected == []


async def test_the_model_is_the_provider_s_and_drop_params_are_dropped(
    fake: FakeOpenAIServer, session: aiohttp.ClientSession
) -> None:
    egress = RecordingEgress()
    target = target_for(fake, session, egress, drop=frozenset({"temperature", "metadata"}))
    request = responses_request(
        stream=True, temperature=0.3, metadata={"ticket": "T-1"}, tools=[TOOL], store=False
    )
    await read_stream(await target.open(request))
    [sent] = fake.requests
    expected = {k: v for k, v in request.payload.items() if k not in ("temperature", "metadata")}
    assert sent.body == {**expected, "model": TARGET}, "nothing else changed, nothing added"
    [call] = egress.seen
    assert orjson.loads(call.body) == sent.body, "the egress guard read exactly what left"
    assert call.url == f"{fake.base_url}/responses"


async def test_a_stream_passes_through_as_openai_wrote_it_and_its_usage_is_read(
    fake: FakeOpenAIServer, session: aiohttp.ClientSession
) -> None:
    reply = await target_for(fake, session).open(responses_request(stream=True))
    data = await read_stream(reply)
    assert data.startswith(b"event: response.created\ndata: ")
    events = events_of(data)
    for event in events:
        EVENT.validate_python(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    completed = events[-1]
    assert completed["type"] == "response.completed"
    usage = completed["response"]["usage"]
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (
        usage["input_tokens"],
        usage["output_tokens"],
    )
    texts = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert texts == Response.model_validate(completed["response"]).output_text


async def test_a_streamed_tool_call_passes_through(
    fake: FakeOpenAIServer, session: aiohttp.ClientSession
) -> None:
    reply = await target_for(fake, session).open(responses_request(stream=True, tools=[TOOL]))
    events = events_of(await read_stream(reply))
    [done] = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert done["name"] == "get_weather" and orjson.loads(done["arguments"]) == {"city": "Paris"}


async def test_a_provider_error_event_passes_through_as_it_is(
    fake: FakeOpenAIServer, session: aiohttp.ClientSession
) -> None:
    fake.fail_next(Fault(error_event_after_chunks=4))
    reply = await target_for(fake, session).open(responses_request(stream=True))
    events = events_of(await read_stream(reply))
    assert events[-1] == {
        "type": "error",
        "code": "server_error",
        "message": "The server had an error",
        "param": None,
        "sequence_number": 0,
    }, "OpenAI's own error event, nothing added after it"
    assert len(events) == 5


async def test_a_stream_cut_short_ends_with_an_error_event(
    fake: FakeOpenAIServer, session: aiohttp.ClientSession
) -> None:
    fake.fail_next(Fault(cut_after_chunks=4))
    reply = await target_for(fake, session).open(responses_request(stream=True))
    events = events_of(await read_stream(reply))
    assert [e["type"] for e in events][:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    last = events[-1]
    EVENT.validate_python(last)
    assert last["type"] == "error" and last["code"] in ("provider_stream_cut",)


@pytest.mark.parametrize(
    ("status", "expected", "code"),
    [(429, 429, "provider_rate_limited"), (500, 502, "provider_server_error")],
)
async def test_an_error_answer_is_mapped_as_for_chat(
    fake: FakeOpenAIServer, session: aiohttp.ClientSession, status: int, expected: int, code: str
) -> None:
    fake.fail_next(Fault(status=status, echo_request=True))
    with pytest.raises(UpstreamError) as caught:
        await target_for(fake, session).open(responses_request())
    err = caught.value
    assert (err.status, err.code) == (expected, code)
    assert KEY not in err.message and "Hi there" not in err.message


async def test_an_answer_that_is_not_a_response_object_is_a_bad_answer(
    fake: FakeOpenAIServer, session: aiohttp.ClientSession
) -> None:
    fake.fail_next(Fault(raw_body=b'{"object": "chat.completion", "choices": []}'))
    with pytest.raises(UpstreamError) as caught:
        await target_for(fake, session).open(responses_request())
    assert (caught.value.status, caught.value.code) == (502, "provider_bad_answer")


async def test_an_openai_compatible_provider_gets_the_request_as_chat(
    fake: FakeOpenAIServer, session: aiohttp.ClientSession
) -> None:
    egress = RecordingEgress()
    target = target_for(fake, session, egress, kind="openai-compatible")
    reply = await target.open(responses_request())
    [sent] = fake.requests
    assert sent.path == "/v1/chat/completions" and fake.rejected == []
    assert sent.body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert orjson.loads(egress.seen[0].body) == sent.body, "the guard read the chat body sent"
    assert reply.body is not None
    response = Response.model_validate_json(reply.body)
    assert response.model == "smart" and response.output_text.startswith("fake answer: ")


def test_only_kind_openai_serves_responses_natively() -> None:
    for kind, options in (("openai", {}), ("openai-compatible", {}),
                          ("azure", {"api_version": "2024-10-21"})):  # fmt: skip
        settings = ProviderSettings("p", kind, "https://p.test/v1", KEY, options=options)
        native = create_adapter(settings).native
        assert native == (frozenset({Endpoint.RESPONSES}) if kind == "openai" else frozenset())
