"""The Anthropic adapter against its golden corpus: tests/providers/anthropic/golden/*.json.

Each file is one feature: an OpenAI request and an Anthropic answer (written by hand), and
what the adapter must make of them: the Anthropic request, the OpenAI answer, and the same
answer streamed both ways. `python tests/providers/anthropic/test_anthropic_golden.py --regen`
rewrites the expected parts from the adapter; review the diff before committing it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import TypeAdapter

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "support"))  # for --regen
from fakes.anthropic_server import Reply, check_body, encode_event, message_events

from spillgate.fallback.adapter import ProviderSettings
from spillgate.fallback.anthropic.adapter import AnthropicAdapter
from spillgate.protocol import Endpoint, UpstreamRequest, Usage

GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = sorted(GOLDEN.glob("*.json"))
KEY = "sk-ant-golden-key"
CREATED = 1_760_000_000
TARGET_MODEL = "claude-sonnet-4-5"
STREAM_EVENT = TypeAdapter(RawMessageStreamEvent)


def load(path: Path) -> dict[str, Any]:
    return orjson.loads(path.read_bytes())


def adapter_for(case: dict[str, Any]) -> AnthropicAdapter:
    settings = ProviderSettings(
        name="claude",
        kind="anthropic",
        base_url="https://api.anthropic.com",
        api_key=KEY,
        options=case.get("settings_options", {}),
        drop_params=frozenset(case.get("settings_drop_params", [])),
    )
    return AnthropicAdapter(settings, clock=lambda: CREATED)


def upstream(case: dict[str, Any], stream: bool) -> UpstreamRequest:
    payload = {**case["openai_request"]}
    if stream:
        payload["stream"] = True
        if case["stream_include_usage"]:
            payload["stream_options"] = {"include_usage": True}
    return UpstreamRequest(
        endpoint=Endpoint.CHAT,
        model=payload["model"],
        target_model=TARGET_MODEL,
        body=orjson.dumps(payload),
        payload=payload,
        stream=stream,
        request_id="golden1",
    )


def sse_payloads(data: bytes) -> list[Any]:
    """The `data:` payloads of OpenAI SSE bytes: parsed chunks, and "[DONE]" as a string."""
    out: list[Any] = []
    for event in data.decode().split("\n\n"):
        if not event:
            continue
        assert event.startswith("data: "), event
        body = event[len("data: ") :]
        out.append(body if body == "[DONE]" else orjson.loads(body))
    return out


def run_stream(
    case: dict[str, Any], raw: bytes, piece: int | None = None
) -> tuple[bytes, Usage | None]:
    translator = adapter_for(case).stream(upstream(case, stream=True))
    pieces = [raw] if piece is None else [raw[i : i + piece] for i in range(0, len(raw), piece)]
    out = b"".join(translator.feed(p) for p in pieces) + translator.finish()
    return out, translator.usage


def anthropic_stream_bytes(case: dict[str, Any]) -> bytes:
    return b"".join(encode_event(e) for e in case["anthropic_stream"])


def regenerate(path: Path) -> None:
    case = load(path)
    response = case["anthropic_response"]
    reply = Reply(
        response["content"], response["stop_reason"], response["stop_sequence"], response["usage"]
    )
    case["anthropic_request"] = orjson.loads(adapter_for(case).build(upstream(case, False)).body)
    case["openai_response"] = orjson.loads(
        adapter_for(case).translate(upstream(case, False), orjson.dumps(response)).body
    )
    case["anthropic_stream"] = message_events(reply, response["model"], response["id"])
    case["openai_stream"] = sse_payloads(run_stream(case, anthropic_stream_bytes(case))[0])
    path.write_bytes(orjson.dumps(case, option=orjson.OPT_INDENT_2) + b"\n")


@pytest.fixture(params=CASES, ids=[p.stem for p in CASES])
def case(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load(request.param)


def test_the_corpus_is_there() -> None:
    assert len(CASES) >= 10


def test_build_sends_the_golden_request(case: dict[str, Any]) -> None:
    call = adapter_for(case).build(upstream(case, stream=False))
    assert call.url == "https://api.anthropic.com/v1/messages"
    assert call.headers["x-api-key"] == KEY
    assert call.headers["anthropic-version"] == "2023-06-01"
    body = orjson.loads(call.body)
    assert body == case["anthropic_request"]
    check_body(body)  # the fake's reading of the documented schema


def test_build_of_a_stream_adds_only_stream_true(case: dict[str, Any]) -> None:
    body = orjson.loads(adapter_for(case).build(upstream(case, stream=True)).body)
    assert body == {**case["anthropic_request"], "stream": True}


def test_translate_gives_the_golden_completion(case: dict[str, Any]) -> None:
    Message.model_validate(case["anthropic_response"])  # the golden answer is a real one
    translated = adapter_for(case).translate(
        upstream(case, stream=False), orjson.dumps(case["anthropic_response"])
    )
    completion = orjson.loads(translated.body)
    assert completion == case["openai_response"]
    ChatCompletion.model_validate(completion)
    assert translated.usage == Usage(
        prompt_tokens=completion["usage"]["prompt_tokens"],
        completion_tokens=completion["usage"]["completion_tokens"],
        cached_tokens=completion["usage"]["prompt_tokens_details"]["cached_tokens"],
    )


@pytest.mark.parametrize(
    "piece", [None, 1, 7, 64], ids=["whole", "bytewise", "7-bytes", "64-bytes"]
)
def test_stream_gives_the_golden_chunks(case: dict[str, Any], piece: int | None) -> None:
    for event in case["anthropic_stream"]:
        if event["type"] != "ping":  # the SDK drops pings before parsing
            STREAM_EVENT.validate_python(event)
    out, _ = run_stream(case, anthropic_stream_bytes(case), piece)
    chunks = sse_payloads(out)
    assert chunks == case["openai_stream"]
    assert chunks[-1] == "[DONE]"
    for chunk in chunks[:-1]:
        ChatCompletionChunk.model_validate(chunk)


def test_stream_tolerates_crlf_line_ends(case: dict[str, Any]) -> None:
    raw = anthropic_stream_bytes(case).replace(b"\n", b"\r\n")
    out, _ = run_stream(case, raw, piece=5)
    assert sse_payloads(out) == case["openai_stream"]


def test_streamed_answer_adds_up_to_the_whole_answer(case: dict[str, Any]) -> None:
    """What a client assembles from the chunks is what it gets without streaming."""
    out, usage = run_stream(case, anthropic_stream_bytes(case))
    content, calls, finish = "", {}, None
    for chunk in sse_payloads(out)[:-1]:
        for choice in chunk["choices"]:
            delta = choice["delta"]
            content += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                entry = calls.setdefault(call["index"], {"id": None, "name": "", "arguments": ""})
                entry["id"] = call.get("id") or entry["id"]
                entry["name"] += call.get("function", {}).get("name") or ""
                entry["arguments"] += call.get("function", {}).get("arguments") or ""
            finish = choice["finish_reason"] or finish
    whole = case["openai_response"]["choices"][0]
    assert (content or None) == whole["message"]["content"]
    assert finish == whole["finish_reason"]
    expected_calls = [
        {
            "id": c["id"],
            "name": c["function"]["name"],
            "arguments": orjson.loads(c["function"]["arguments"]),
        }
        for c in whole["message"].get("tool_calls", [])
    ]
    got_calls = [{**c, "arguments": orjson.loads(c["arguments"])} for _, c in sorted(calls.items())]
    assert got_calls == expected_calls
    assert usage is not None
    assert usage.prompt_tokens == case["openai_response"]["usage"]["prompt_tokens"]
    assert usage.completion_tokens == case["openai_response"]["usage"]["completion_tokens"]


if __name__ == "__main__" and sys.argv[1:] == ["--regen"]:
    for golden in CASES:
        regenerate(golden)
        print(f"rewrote {golden.name}")
