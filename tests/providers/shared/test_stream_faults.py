"""What every kind's stream translator does with a bad event: the events before it in the
same read still reach the client, and the fault (one code for every kind) ends the stream
on the next call."""

from __future__ import annotations

import orjson
import pytest

from spillgate.errors import UpstreamError
from spillgate.fallback.adapter import ProviderSettings, StreamTranslator
from spillgate.fallback.registry import KINDS, create_adapter
from spillgate.fallback.wire import EventStream
from spillgate.protocol import Endpoint, UpstreamRequest

OPTIONS = {"azure": {"api_version": "2024-10-21"}}

#: One good first event in each kind's wire format, carrying the text "Hi".
FIRST_EVENT = {
    "openai": {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}],
    },
    "anthropic": {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": "Hi"},
    },
    "gemini": {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}}]},
}


def stream_for(kind: str) -> StreamTranslator:
    settings = ProviderSettings(
        f"faults-{kind}",
        kind,
        "https://provider.invalid/v1",
        "sk-unit",
        options=OPTIONS.get(kind, {}),
    )
    payload = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    request = UpstreamRequest(
        Endpoint.CHAT, "m", "m", orjson.dumps(payload), payload, True, "faults1"
    )
    return create_adapter(settings).stream(request)


def first_event(kind: str) -> bytes:
    shape = kind if kind in FIRST_EVENT else "openai"
    return b"data: " + orjson.dumps(FIRST_EVENT[shape]) + b"\n\n"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_malformed_first_event_is_provider_bad_stream(kind: str) -> None:
    with pytest.raises(UpstreamError) as caught:
        stream_for(kind).feed(b"data: {broken\n\n")
    err = caught.value
    assert (err.status, err.code) == (502, "provider_bad_stream")
    assert f"faults-{kind}" in err.message


@pytest.mark.parametrize("finish", [False, True], ids=["then-feed", "then-finish"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_good_events_before_a_bad_one_reach_the_client_then_the_fault(
    kind: str, finish: bool
) -> None:
    stream = stream_for(kind)
    out = stream.feed(first_event(kind) + b"data: {broken\n\n" + first_event(kind))
    assert b'"Hi"' in out and out.count(b'"Hi"') == 1, "only the events before the bad one"
    with pytest.raises(UpstreamError) as caught:
        stream.finish() if finish else stream.feed(first_event(kind))
    assert caught.value.code == "provider_bad_stream"
    for later in (lambda: stream.feed(first_event(kind)), stream.finish):
        with pytest.raises(UpstreamError) as again:
            later()
        assert again.value is caught.value, "the stream stays failed"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_an_event_that_never_ends_is_cut_off(kind: str) -> None:
    stream = stream_for(kind)
    assert isinstance(stream, EventStream), "every kind reads its stream the shared way"
    stream.MAX_PENDING = 4096
    out = stream.feed(first_event(kind) + b"data: " + b"x" * 4096)
    assert b'"Hi"' in out, "the whole event before it still reaches the client"
    with pytest.raises(UpstreamError) as caught:
        stream.feed(b"x" * 10)
    assert caught.value.code == "provider_bad_stream"
