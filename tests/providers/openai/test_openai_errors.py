"""Provider error answers of the OpenAI family, mapped to what the client sees."""

from __future__ import annotations

import orjson
import pytest
from fakes.openai_schema import check_mistral, check_openai

from spillgate.errors import GatewayError
from spillgate.fallback.adapter import ProviderSettings
from spillgate.fallback.mistral.adapter import MistralAdapter
from spillgate.fallback.openai.errors import provider_error
from spillgate.protocol import Endpoint, UpstreamRequest

KEY = "sk-live-abcdefghijklmnop"
OAI = ProviderSettings("oai", "openai", "https://o.test/v1", KEY)
MIS = ProviderSettings("mis", "mistral", "https://m.test/v1", KEY)


def test_429_is_retryable_and_carries_retry_after() -> None:
    err = provider_error(
        OAI, 429, b'{"error":{"message":"Rate limit for org-123"}}', {"retry-after-ms": "2500"}
    )
    assert (err.status, err.retryable, err.retry_after_s) == (429, True, 2.5)
    assert "org-123" not in err.message, "the provider's account details stay out"


@pytest.mark.parametrize(("status", "expected"), [(500, 502), (502, 502), (503, 503), (504, 504)])
def test_5xx_is_retryable(status: int, expected: int) -> None:
    err = provider_error(OAI, status, b"<html>oops</html>", {})
    assert (err.status, err.retryable) == (expected, True)


def test_auth_failure_never_echoes_the_key() -> None:
    body = orjson.dumps({"error": {"message": f"Incorrect API key provided: {KEY}."}})
    err = provider_error(OAI, 401, body, {})
    assert err.status == 502 and err.code == "provider_auth_failed"
    assert KEY not in err.message and "api_key" in err.message


def test_a_rejected_request_keeps_the_providers_words() -> None:
    body = orjson.dumps(
        {
            "error": {
                "message": "Invalid 'temperature'",
                "type": "invalid_request_error",
                "param": "temperature",
                "code": "invalid_value",
            }
        }
    )
    err = provider_error(OAI, 400, body, {})
    assert (err.status, err.retryable, err.param, err.code) == (
        400,
        False,
        "temperature",
        "invalid_value",
    )
    assert "Invalid 'temperature'" in err.message


def test_mistral_422_details_become_a_readable_400() -> None:
    status, body = check_mistral(
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "logit_bias": {}}
    )  # type: ignore[misc]
    err = provider_error(MIS, status, orjson.dumps(body), {})
    assert err.status == 400 and "logit_bias: Extra inputs are not permitted" in err.message


def _mistral(drop: frozenset[str] = frozenset()) -> MistralAdapter:
    return MistralAdapter(
        ProviderSettings("mis", "mistral", "https://m.test/v1", "k", drop_params=drop)
    )


def _chat(payload: dict) -> UpstreamRequest:  # type: ignore[type-arg]
    body = orjson.dumps(payload)
    return UpstreamRequest(Endpoint.CHAT, "r", "mistral-small-latest", body, payload, False, "t")


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"logit_bias": {"1": 2}}, "logit_bias"),
        ({"logprobs": True}, "logprobs"),
        ({"service_tier": "flex"}, "service_tier"),
        ({"messages": [{"role": "user", "content": "x", "name": "bob"}]}, "name"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}
                ]
            },
            "messages[0].content[0]",
        ),
        ({"messages": [{"role": "function", "content": "x", "name": "f"}]}, "messages[0].role"),
    ],
)
def test_mistral_refuses_what_it_cannot_honour(extra: dict, param: str) -> None:  # type: ignore[type-arg]
    payload = {"model": "r", "messages": [{"role": "user", "content": "hi"}], **extra}
    with pytest.raises(GatewayError) as caught:
        _mistral().build(_chat(payload))
    err = caught.value
    assert (err.status, err.param, err.code) == (400, param, "unsupported_parameter")
    assert "drop_params" in err.message and "'mis'" in err.message


def test_mistral_drops_what_config_says_to_drop() -> None:
    payload = {
        "model": "r",
        "messages": [{"role": "user", "content": "hi", "name": "bob"}],
        "logit_bias": {"1": 2},
        "user": "u",
    }
    call = _mistral(frozenset({"logit_bias", "user", "name"})).build(_chat(payload))
    sent = orjson.loads(call.body)
    assert sent == {
        "model": "mistral-small-latest",
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert check_mistral(sent) is None


def test_both_token_limits_is_a_client_error() -> None:
    payload = {
        "model": "r",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 5,
        "max_completion_tokens": 6,
    }
    with pytest.raises(GatewayError) as caught:
        _mistral().build(_chat(payload))
    assert caught.value.status == 400 and "not both" in caught.value.message


def test_the_openai_schema_check_refuses_what_openai_refuses() -> None:
    ok = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert check_openai(ok) is None
    assert check_openai({**ok, "random_seed": 1}) is not None, "a Mistral-only field"
    assert check_openai({**ok, "stream_options": {"include_usage": True}}) is not None
    bad_part = {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}
    assert check_openai(bad_part) is not None, "an image part without its URL"


def test_good_events_before_a_bad_one_in_the_same_read_still_reach_the_client() -> None:
    from spillgate.errors import UpstreamError
    from spillgate.fallback.openai.stream import OpenAIStream

    choice = {"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}
    good = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [choice],
    }
    stream = OpenAIStream(OAI, wants_usage=False)
    out = stream.feed(b"data: " + orjson.dumps(good) + b"\n\ndata: {broken\n\n")
    assert b'"Hi"' in out
    with pytest.raises(UpstreamError) as caught:
        stream.finish()
    assert caught.value.code == "provider_bad_stream"
