"""The `redact-then-spill` policy: placeholders leave the box, the originals never do."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest
from fakes.openai_server import FakeOpenAIServer
from harness import GatewayProcess

KEY = "sk-redaction-provider-key-0042"


@pytest.fixture(scope="module")
def cloud_only(tmp_path_factory: pytest.TempPathFactory):
    fake = FakeOpenAIServer("openai", KEY).start()
    config = {
        "providers": [{"name": "oai", "kind": "openai", "base_url": fake.base_url, "api_key": KEY}],
        "routes": {"gpt": ["oai/gpt-4o-mini"]},
        "privacy": {"policy": "redact-then-spill"},
    }
    try:
        with GatewayProcess(config, tmp_path_factory.mktemp("redact")) as gateway:
            yield gateway, fake
    finally:
        fake.stop()


@pytest.mark.parametrize("stream", [False, True])
def test_personal_data_is_replaced_before_the_cloud(cloud_only, stream: bool) -> None:
    gateway, fake = cloud_only
    fake.reset()
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0)
    secret = "Write to jane.doe@example.org or call +44 20 7946 0958 about card 4111 1111 1111 1111"
    raw = client.chat.completions.with_raw_response.create(
        model="gpt", messages=[{"role": "user", "content": secret}], stream=stream
    )
    assert raw.headers["x-spillgate-reason"] == "spilled_redacted"
    if stream:
        assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    else:
        assert raw.parse().choices[0].message.content
    sent = orjson.dumps(fake.requests[-1].body).decode()
    for original in ("jane.doe@example.org", "7946 0958", "4111 1111 1111 1111"):
        assert original not in sent
    assert "<EMAIL_1>" in sent


def test_a_request_marked_on_prem_is_not_sent_even_redacted(cloud_only) -> None:
    gateway, fake = cloud_only
    fake.reset()
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="may not leave the box"):
        client.chat.completions.create(
            model="gpt",
            messages=[{"role": "user", "content": "hello"}],
            extra_headers={"x-spillgate-data": "on-prem"},
        )
    assert fake.requests == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/responses", {"model": "gpt", "input": "Mail jane.doe@example.org the notes"}),
        (
            "/v1/messages",
            {
                "model": "gpt",
                "max_tokens": 50,
                "messages": [{"role": "user", "content": "Mail jane.doe@example.org the notes"}],
            },
        ),
    ],
)
def test_responses_and_messages_with_findings_stay_home_under_redaction(
    cloud_only, path: str, body: dict
) -> None:
    # Placeholders are put back only in chat-shaped answers: these APIs are kept local.
    gateway, fake = cloud_only
    fake.reset()
    answer = httpx.post(f"{gateway.url}{path}", json=body, timeout=30)
    assert answer.status_code == 400, answer.text
    assert "may not leave the box" in answer.text
    assert fake.requests == []
    clean = orjson.loads(orjson.dumps(body).replace(b"jane.doe@example.org", b"Jane"))
    assert httpx.post(f"{gateway.url}{path}", json=clean, timeout=30).status_code == 200
    assert len(fake.requests) == 1
