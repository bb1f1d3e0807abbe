"""The golden corpus: each file in tests/providers/gemini/golden is an OpenAI request, the Gemini
request it must become, a Gemini answer (whole and as its stream), and the OpenAI answer
and chunks it must become. Every Gemini side is also checked against the documented schema
(the fake's checker) and the official SDK's types; every OpenAI side against the `openai`
SDK's types, so a golden cannot drift from either wire format."""

from __future__ import annotations

import copy
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

import orjson
import pytest
from fakes.gemini_wire import request_problems
from google.genai import types as gemini_types
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from spillgate.fallback.adapter import ProviderSettings
from spillgate.fallback.gemini.adapter import GeminiAdapter
from spillgate.protocol import Endpoint, UpstreamRequest

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(GOLDEN.glob("*.json"))
KEY = "golden-test-key"
GENERATED_ID = re.compile(r"chatcmpl-[0-9a-f]{24}")
CALL_ID = re.compile(r"call_[0-9a-f]{24}(__sig__.+)?")


def adapter(
    options: dict[str, Any] | None = None, drop_params: Collection[str] = ()
) -> GeminiAdapter:
    settings = ProviderSettings(
        name="gemini-golden",
        kind="gemini",
        base_url="https://generativelanguage.googleapis.com",
        api_key=KEY,
        options=options or {},
        drop_params=frozenset(drop_params),
    )
    return GeminiAdapter(settings)


def upstream(payload: dict[str, Any], target: str, stream: bool) -> UpstreamRequest:
    payload = {**payload, "stream": stream}
    return UpstreamRequest(
        endpoint=Endpoint.CHAT,
        model=payload["model"],
        target_model=target,
        body=orjson.dumps(payload),
        payload=payload,
        stream=stream,
        request_id="golden",
    )


def sse(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + b"\r\n\r\n" for c in chunks)


def parse_sse(data: bytes) -> list[Any]:
    events = []
    for block in data.split(b"\n\n"):
        if block.startswith(b"data: "):
            payload = block[6:]
            events.append("[DONE]" if payload == b"[DONE]" else orjson.loads(payload))
    return events


def normalize(doc: Any, ids: dict[str, str]) -> Any:
    """Fix what is random per run (created, generated ids), keeping a thought signature."""
    doc = copy.deepcopy(doc)
    if not isinstance(doc, dict):
        return doc
    assert isinstance(doc.pop("created"), int)
    if GENERATED_ID.fullmatch(doc["id"]):  # Gemini sent no responseId to build it from
        doc["id"] = "chatcmpl-<generated>"
    choices = doc.get("choices", [])
    for choice in choices:
        message = choice.get("message") or choice.get("delta") or {}
        for call in message.get("tool_calls") or []:
            if "id" in call:
                match = CALL_ID.fullmatch(call["id"])
                assert match, f"tool call id {call['id']!r} is not a generated call id"
                stable = ids.setdefault(call["id"], f"call_{len(ids)}")
                call["id"] = stable + (match.group(1) or "")
    return doc


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    """What the adapter makes of one case's inputs, normalised."""
    gemini = adapter(case["settings_options"], case.get("settings_drop_params", ()))
    whole = upstream(case["openai_request"], case["target_model"], stream=False)
    request = orjson.loads(gemini.build(whole).body)
    answer = orjson.loads(gemini.translate(whole, orjson.dumps(case["gemini_response"])).body)

    streamed = upstream(case["openai_request"], case["target_model"], stream=True)
    translator = gemini.stream(streamed)
    wire = sse(case["gemini_stream"])
    out = b"".join(translator.feed(wire[i : i + 7]) for i in range(0, len(wire), 7))
    out += translator.finish()
    ids: dict[str, str] = {}
    chunks = [normalize(c, ids) for c in parse_sse(out)]
    return {
        "gemini_request": request,
        "openai_response": normalize(answer, {}),
        "openai_stream": chunks,
    }


@pytest.fixture(params=CASES, ids=[c.stem for c in CASES])
def case(request: pytest.FixtureRequest) -> dict[str, Any]:
    return orjson.loads(request.param.read_bytes())


def test_corpus_covers_every_feature() -> None:
    assert len(CASES) >= 18


def test_request_translates_to_the_golden_gemini_request(case: dict[str, Any]) -> None:
    assert run_case(case)["gemini_request"] == case["gemini_request"]


def test_golden_gemini_request_is_valid_for_the_documented_schema(case: dict[str, Any]) -> None:
    assert request_problems(case["gemini_request"]) == []


def test_answer_translates_to_the_golden_chat_completion(case: dict[str, Any]) -> None:
    assert run_case(case)["openai_response"] == case["openai_response"]


def test_stream_translates_to_the_golden_chunks(case: dict[str, Any]) -> None:
    assert run_case(case)["openai_stream"] == case["openai_stream"]


def test_golden_gemini_answers_parse_with_the_google_genai_sdk(case: dict[str, Any]) -> None:
    for response in [case["gemini_response"], *case["gemini_stream"]]:
        gemini_types.GenerateContentResponse.model_validate(response)


def test_golden_openai_answers_parse_with_the_openai_sdk(case: dict[str, Any]) -> None:
    ChatCompletion.model_validate({**case["openai_response"], "created": 0})
    assert case["openai_stream"][-1] == "[DONE]"
    for chunk in case["openai_stream"][:-1]:
        ChatCompletionChunk.model_validate({**chunk, "created": 0})


def test_stream_and_whole_answer_say_the_same(case: dict[str, Any]) -> None:
    """Joining the chunks' deltas gives the whole answer's messages and finish reasons."""
    joined: dict[int, dict[str, Any]] = {}
    for chunk in case["openai_stream"][:-1]:
        for choice in chunk["choices"]:
            into = joined.setdefault(choice["index"], {"content": "", "calls": [], "finish": None})
            delta = choice["delta"]
            into["content"] += delta.get("content") or ""
            into["calls"] += [c["function"] for c in delta.get("tool_calls") or []]
            into["finish"] = choice["finish_reason"] or into["finish"]
    for choice in case["openai_response"]["choices"]:
        message = choice["message"]
        streamed = joined[choice["index"]]
        assert streamed["content"] == (message["content"] or "")
        assert streamed["calls"] == [c["function"] for c in message.get("tool_calls") or []]
        assert streamed["finish"] == choice["finish_reason"]
