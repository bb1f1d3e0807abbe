"""The golden corpus of the OpenAI family (openai, azure, mistral, openai-compatible).

Each file in tests/providers/openai/golden/ is a client request, the provider request it must turn
into, a provider answer (whole or streamed) and the OpenAI answer the client must get.
Beyond equality, the provider request must pass the fake provider's schema check (the
provider's documented request schema) and the client's answer must parse with the
official `openai` SDK's models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from fakes.openai_schema import check_mistral, check_openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from spillgate.fallback.adapter import ProviderSettings
from spillgate.fallback.registry import create_adapter
from spillgate.protocol import Endpoint, UpstreamRequest
from spillgate.sse import EventSplitter, event_data

GOLDEN = sorted((Path(__file__).parent / "golden").glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _request(case: dict[str, Any]) -> UpstreamRequest:
    body = orjson.dumps(case["request"])
    return UpstreamRequest(
        endpoint=Endpoint.CHAT,
        model=case["request"]["model"],
        target_model=case["target_model"],
        body=body,
        payload=orjson.loads(body),
        stream=bool(case["request"].get("stream")),
        request_id="golden",
    )


def _adapter(case: dict[str, Any]) -> Any:
    extra = case.get("settings", {})
    settings = ProviderSettings(
        name="golden",
        kind=case["kind"],
        base_url="https://provider.test" + ("" if case["kind"] == "azure" else "/v1"),
        api_key="sk-golden",
        options=extra.get("options", {}),
        drop_params=frozenset(extra.get("drop_params", [])),
    )
    return create_adapter(settings)


def _sse(items: list[Any]) -> bytes:
    return b"".join(
        b"data: " + (item.encode() if isinstance(item, str) else orjson.dumps(item)) + b"\n\n"
        for item in items
    )


def _events(data: bytes) -> list[Any]:
    splitter = EventSplitter()
    out: list[Any] = []
    for raw in splitter.feed(data):
        payload = event_data(raw)
        assert payload is not None
        out.append("[DONE]" if payload == b"[DONE]" else orjson.loads(payload))
    assert splitter.pending == b""
    return out


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_request_goes_out_as_the_provider_documents_it(path: Path) -> None:
    case = _load(path)
    call = _adapter(case).build(_request(case))
    sent = orjson.loads(call.body)
    assert sent == case["provider_request"]
    if "provider_url" in case:
        assert call.url == case["provider_url"]
    check = check_mistral if case["kind"] == "mistral" else check_openai
    assert check(sent) is None, "the provider would refuse this request"


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_answer_comes_back_in_openai_format(path: Path) -> None:
    case = _load(path)
    adapter = _adapter(case)
    request = _request(case)
    if "provider_response" in case:
        translated = adapter.translate(request, orjson.dumps(case["provider_response"]))
        answer = orjson.loads(translated.body)
        assert answer == case["response"]
        ChatCompletion.model_validate(answer)
        usage = translated.usage
    else:
        stream = adapter.stream(request)
        raw = _sse(case["provider_stream"])
        # Reads of 7 bytes: events arrive cut at every possible place.
        out = b"".join(stream.feed(raw[i : i + 7]) for i in range(0, len(raw), 7))
        out += stream.finish()
        events = _events(out)
        assert events == case["stream"]
        for chunk in events[:-1]:
            ChatCompletionChunk.model_validate(chunk)
        usage = stream.usage
    assert usage is not None
    expected = case["usage"]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (
        expected["prompt_tokens"],
        expected["completion_tokens"],
        expected["cached_tokens"],
    )


def test_the_corpus_covers_every_kind_of_the_family() -> None:
    kinds = {_load(p)["kind"] for p in GOLDEN}
    assert kinds == {"openai", "azure", "mistral", "openai-compatible"}
