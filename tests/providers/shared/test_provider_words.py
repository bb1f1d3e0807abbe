"""A provider's own words reach the client without a secret of its settings, for every kind:
the API key and credential header values a provider echoes in an error answer or an error
event are taken out, while the words around them stay."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from spillgate.errors import UpstreamError
from spillgate.fallback.adapter import ProviderSettings
from spillgate.fallback.registry import KINDS, create_adapter
from spillgate.fallback.wire import WORDS_LIMIT, provider_words
from spillgate.protocol import Endpoint, UpstreamRequest

KEY = "sk-provider-key-0123456789"
GATEWAY_TOKEN = "gw-header-token-abcdefghij"
HEADERS = {"x-portkey-api-key": GATEWAY_TOKEN, "authorization": f"Bearer {GATEWAY_TOKEN}-2"}
OPTIONS = {"azure": {"api_version": "2024-10-21"}}


def settings(kind: str) -> ProviderSettings:
    return ProviderSettings(
        f"words-{kind}",
        kind,
        "https://provider.invalid/v1",
        KEY,
        headers=HEADERS,
        options=OPTIONS.get(kind, {}),
    )


def error_body(kind: str, message: str) -> dict[str, Any]:
    if kind == "anthropic":
        return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    if kind == "gemini":
        return {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}
    return {"error": {"message": message, "type": "invalid_request_error", "param": None}}


ECHO = f"bad field `temperature`; sent with {KEY}, {GATEWAY_TOKEN} and {GATEWAY_TOKEN}-2"


def assert_clean(err: UpstreamError) -> None:
    for text in (err.message, str(err), repr(err), err.body().decode()):
        assert KEY not in text and GATEWAY_TOKEN not in text, text
    assert "bad field `temperature`" in err.message, "the provider's words stay"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_an_error_answer_loses_every_secret_of_the_settings(kind: str) -> None:
    adapter = create_adapter(settings(kind))
    err = adapter.error(400, orjson.dumps(error_body(kind, ECHO)), {})
    assert err.status == 400 and not err.retryable
    assert_clean(err)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_an_error_event_mid_stream_loses_every_secret_of_the_settings(kind: str) -> None:
    adapter = create_adapter(settings(kind))
    payload = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    request = UpstreamRequest(
        Endpoint.CHAT, "m", "m", orjson.dumps(payload), payload, True, "words1"
    )
    stream = adapter.stream(request)
    with pytest.raises(UpstreamError) as caught:
        stream.feed(b"data: " + orjson.dumps(error_body(kind, ECHO)) + b"\n\n")
    assert_clean(caught.value)


def test_provider_words_folds_cuts_and_says_none_for_nothing() -> None:
    s = settings("openai")
    assert provider_words(None, s) is None and provider_words("  \n ", s) is None
    assert provider_words("a \n\t b", s) == "a b"
    long = provider_words("x" * 5000, s)
    assert long is not None and len(long) == WORDS_LIMIT and long.endswith("...")
    assert provider_words(f"{GATEWAY_TOKEN}-2 then {KEY}", s) == "[redacted] then [redacted]"
