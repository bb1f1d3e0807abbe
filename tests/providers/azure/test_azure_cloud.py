"""Azure OpenAI through `CloudTarget` against the fake Azure, over real HTTP: what only this
kind does. The route's model is a deployment in the URL, `options.api_version` the
`api-version` query, the key goes in `api-key`; a configuration without the API version is
refused at load, an adapter built without it at construction; Azure's choiceless
`prompt_filter_results` chunk never reaches the client; its `retry-after-ms` is read. The
suite every kind runs is tests/providers/conformance/test_conformance.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import orjson
import pytest
from fakes.openai_server import FakeOpenAIServer, Fault
from guard import egress_guard
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from spillgate.errors import UpstreamError
from spillgate.fallback.adapter import CloudTarget, ProviderSettings
from spillgate.fallback.registry import create_adapter
from spillgate.fallback.resilience import RetryPolicy
from spillgate.protocol import Endpoint, UpstreamRequest
from spillgate.server.config import ConfigError, from_dict
from spillgate.server.gateway import provider_settings

KEY = "azure-cloud-key-0123456789abcdef"
VERSION = "2024-10-21"
DEPLOYMENT = "eu-gpt4o-mini"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer("azure", api_key=KEY) as fake:
        yield fake


@pytest.fixture
def fake(server: FakeOpenAIServer) -> FakeOpenAIServer:
    server.reset()
    return server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def settings_for(fake: FakeOpenAIServer, **options: Any) -> ProviderSettings:
    return ProviderSettings(
        name="az",
        kind="azure",
        base_url=fake.base_url,
        api_key=KEY,
        options={"api_version": VERSION, **options},
    )


def target_for(
    settings: ProviderSettings, session: aiohttp.ClientSession, deployment: str = DEPLOYMENT
) -> CloudTarget:
    return CloudTarget(
        deployment,
        create_adapter(settings),
        session,
        egress=egress_guard(),
        retry=RetryPolicy(max_attempts=1),
    )


def request(
    deployment: str = DEPLOYMENT, stream: bool = False, endpoint: Endpoint = Endpoint.CHAT, **f: Any
) -> UpstreamRequest:
    if endpoint is Endpoint.EMBEDDINGS:
        payload: dict[str, Any] = {"model": "embed", "input": ["one two", "three"], **f}
    else:
        payload = {"model": "smart", "messages": [{"role": "user", "content": "Hi there"}], **f}
    if stream:
        payload["stream"] = True
    return UpstreamRequest(
        endpoint, payload["model"], deployment, orjson.dumps(payload), payload, stream, "az1"
    )


async def test_the_deployment_is_in_the_url_the_version_in_the_query_the_key_in_api_key(
    fake: FakeOpenAIServer, session: aiohttp.ClientSession
) -> None:
    reply = await target_for(settings_for(fake), session).open(request())
    assert reply.body is not None
    completion = ChatCompletion.model_validate_json(reply.body)
    assert completion.choices[0].message.content

    [sent] = fake.requests
    assert sent.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
    assert sent.query == {"api-version": VERSION}
    headers = {k.lower(): v for k, v in sent.headers.items()}
    assert headers["api-key"] == KEY and "authorization" not in headers
    assert sent.body["model"] == DEPLOYMENT
    assert KEY not in sent.path and KEY not in str(sent.query)


async def test_a_deployment_name_is_quoted_into_the_path(
    fake: FakeOpenAIServer, session: aiohttp.ClientSession
) -> None:
    odd = "gpt 4o?eu&x=1"
    await target_for(settings_for(fake), session, odd).open(request(odd))
    [sent] = fake.requests
    assert sent.path == f"/openai/deployments/{odd}/chat/completions"
    assert sent.query == {"api-version": VERSION}, "the name did not spill into the query"


async def test_embeddings_go_to_the_deployment_too(
    fake: FakeOpenAIServer, session: aiohttp.ClientSession
) -> None:
    target = target_for(settings_for(fake), session, "eu-embed")
    reply = await target.open(request("eu-embed", endpoint=Endpoint.EMBEDDINGS))
    assert reply.body is not None
    answer = CreateEmbeddingResponse.model_validate_json(reply.body)
    assert len(answer.data) == 2 and reply.usage is not None and reply.usage.prompt_tokens == 3
    [sent] = fake.requests
    assert sent.path == "/openai/deployments/eu-embed/embeddings"
    assert sent.query == {"api-version": VERSION}


def _azure_config(**provider: Any) -> dict[str, Any]:
    entry = {"name": "az", "kind": "azure", "api_key": KEY, "models": [DEPLOYMENT], **provider}
    return {"providers": [entry], "routes": {"smart": [f"az/{DEPLOYMENT}"]}}


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        ({"base_url": "https://x.openai.azure.com"}, "`options.api_version` is required"),
        ({"options": {"api_version": VERSION}}, "`base_url` is required for kind 'azure'"),
    ],
    ids=["no-api-version", "no-base-url"],
)
def test_an_azure_provider_without_its_version_or_url_is_a_config_error(
    provider: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        from_dict(_azure_config(**provider))
    assert expected in str(caught.value) and "providers[0]" in str(caught.value)
    assert KEY not in str(caught.value)


@pytest.mark.parametrize("options", [{}, {"api_version": ""}, {"api_version": None}])
def test_an_azure_adapter_built_without_its_version_says_which_option(
    options: dict[str, Any],
) -> None:
    settings = ProviderSettings("az", "azure", "https://x.openai.azure.com", KEY, options=options)
    with pytest.raises(ValueError, match=r"`options\.api_version` is required") as caught:
        create_adapter(settings)
    assert "'az'" in str(caught.value) and KEY not in str(caught.value)


async def test_a_configured_azure_provider_reaches_the_wire_as_configured(
    fake: FakeOpenAIServer, session: aiohttp.ClientSession
) -> None:
    config = from_dict(
        _azure_config(base_url=fake.base_url, options={"api_version": "2025-01-01-preview"})
    )
    settings = provider_settings(config.providers[0])
    await target_for(settings, session).open(request())
    [sent] = fake.requests
    assert sent.query == {"api-version": "2025-01-01-preview"}
    assert sent.headers["api-key"] == KEY


@pytest.mark.parametrize("include_usage", [True, False])
async def test_azures_prompt_filter_chunk_never_reaches_the_client(
    fake: FakeOpenAIServer, session: aiohttp.ClientSession, include_usage: bool
) -> None:
    target = target_for(settings_for(fake), session)
    reply = await target.open(request(stream=True, stream_options={"include_usage": include_usage}))
    assert reply.chunks is not None
    data = b"".join([c async for c in reply.chunks]).decode()
    assert "prompt_filter_results" not in data
    events = [e.removeprefix("data: ") for e in data.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate_json(e) for e in events[:-1]]
    choiceless = [c for c in chunks if not c.choices]
    if include_usage:
        assert choiceless == [chunks[-1]] and chunks[-1].usage is not None
    else:
        assert choiceless == []
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    assert fake.requests[-1].body["stream_options"] == {"include_usage": True}


async def test_azures_retry_after_ms_is_read_before_retry_after(
    fake: FakeOpenAIServer, session: aiohttp.ClientSession
) -> None:
    fake.fail_next(Fault(status=429, headers={"retry-after-ms": "2500", "retry-after": "3"}))
    with pytest.raises(UpstreamError) as caught:
        await target_for(settings_for(fake), session).open(request())
    assert (caught.value.status, caught.value.retry_after_s) == (429, 2.5)
    assert caught.value.code == "provider_rate_limited"
