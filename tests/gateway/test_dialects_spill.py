"""Responses and Messages clients spill to every provider kind through one gateway.

One gateway process (tests/support/dialect_spill.py) routes a model to each kind's fake
provider, with no local engine on those routes, and the official `openai` and `anthropic`
SDKs talk to it unchanged. Per kind and API: a function tool is called and its result sent
back, whole and streamed (the SDKs' stream helpers assemble the answer); the route and
cost headers and the usage. Then what a user would notice going wrong: a private request
(an email in a tool result, or marked on-prem) on a route whose local engine is down is
refused in the API's own shape and reaches no provider at all, while the same request
without the address does spill; a provider's 429 and 500 and a stream cut mid-way reach
each SDK as its own error; the ledger records each spilled request with its endpoint;
and no provider key shows in the gateway's log or in an error body.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from dialect_spill import (
    EMAIL,
    GUARDED,
    KEYS,
    KINDS,
    MESSAGES_TOOLS,
    PROVIDER,
    QUESTION,
    RESPONSES_TOOLS,
    TOOL_RESULT,
    Spill,
    assert_refused_as_anthropic,
    assert_refused_as_openai,
    expected_cost,
    messages_history,
    rate_limited_route,
    responses_history,
    route,
    spill_gateway,
    target,
)
from services import metric, sqlite_rows, wait_for

from spillgate.protocol import Usage


@pytest.fixture(scope="module")
def spill(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Spill]:
    with spill_gateway(tmp_path_factory.mktemp("dialects-spill")) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh(spill: Spill) -> None:
    spill.reset()


@pytest.fixture
def oai(spill: Spill) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{spill.gateway.url}/v1", api_key="unused", max_retries=0)


@pytest.fixture
def claude(spill: Spill) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=spill.gateway.url, api_key="unused", max_retries=0)


def assert_spilled(headers: Any, kind: str) -> None:
    assert headers["x-spillgate-route"] == target(kind)
    assert headers["x-spillgate-reason"] == "model_not_local"


def assert_result_reached(spill: Spill, kind: str, api: str) -> None:
    """The last request the kind's fake received carries the tool's result, on the path of
    the API itself where the kind speaks it (OpenAI: Responses), else as chat."""
    last = spill.received(kind)[-1]
    assert TOOL_RESULT in json.dumps(last["body"])
    if "path" in last:  # the OpenAI family's fakes
        native = api == "responses" and kind == "openai"
        assert last["path"].endswith("/v1/responses" if native else "/chat/completions")


# -- Responses to each kind ----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_responses_calls_a_tool_and_sends_its_result_back(
    spill: Spill, oai: openai.OpenAI, kind: str
) -> None:
    spill.call_a_tool(kind)
    raw = oai.responses.with_raw_response.create(
        model=route(kind), input=QUESTION, instructions="Be brief.", tools=RESPONSES_TOOLS
    )
    first = raw.parse()
    assert_spilled(raw.headers, kind)
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments)["city"] == "Paris"
    assert first.usage is not None and first.usage.output_tokens > 0
    usage = Usage.from_responses(first.usage.to_dict())
    assert usage is not None
    assert float(raw.headers["x-spillgate-cost-usd"]) == pytest.approx(expected_cost(kind, usage))

    second = oai.responses.create(
        model=route(kind), input=responses_history(first), tools=RESPONSES_TOOLS
    )
    assert second.output_text and not [i for i in second.output if i.type == "function_call"]
    assert second.status == "completed"
    assert_result_reached(spill, kind, "responses")


@pytest.mark.parametrize("kind", KINDS)
def test_responses_streamed_raw_and_through_the_stream_helper(
    spill: Spill, oai: openai.OpenAI, kind: str
) -> None:
    spill.call_a_tool(kind)
    raw = oai.responses.with_raw_response.create(
        model=route(kind), input=QUESTION, tools=RESPONSES_TOOLS, stream=True
    )
    assert_spilled(raw.headers, kind)
    events = list(raw.parse())
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed", kinds
    arguments = "".join(
        e.delta for e in events if e.type == "response.function_call_arguments.delta"
    )
    assert json.loads(arguments)["city"] == "Paris"
    first = events[-1].response  # type: ignore[union-attr]
    assert first.usage is not None and first.usage.output_tokens > 0

    with oai.responses.stream(
        model=route(kind), input=responses_history(first), tools=RESPONSES_TOOLS
    ) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text and final.output_text == text
    assert final.usage is not None and final.usage.input_tokens > 0
    assert_result_reached(spill, kind, "responses")


# -- Messages to each kind -----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_messages_calls_a_tool_and_sends_its_result_back(
    spill: Spill, claude: anthropic.Anthropic, kind: str
) -> None:
    spill.call_a_tool(kind)
    raw = claude.messages.with_raw_response.create(
        model=route(kind), max_tokens=256, system="Be brief.",
        messages=[{"role": "user", "content": QUESTION}], tools=MESSAGES_TOOLS,
    )  # fmt: skip
    first = raw.parse()
    assert_spilled(raw.headers, kind)
    assert first.type == "message" and first.stop_reason == "tool_use"
    [use] = [block for block in first.content if block.type == "tool_use"]
    assert use.name == "get_weather" and use.input == {"city": "Paris"}
    assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0
    usage = Usage.from_anthropic(first.usage.to_dict())
    assert usage is not None
    assert float(raw.headers["x-spillgate-cost-usd"]) == pytest.approx(expected_cost(kind, usage))

    second = claude.messages.create(
        model=route(kind), max_tokens=256, messages=messages_history(first), tools=MESSAGES_TOOLS
    )
    assert second.stop_reason == "end_turn"
    assert [b.type for b in second.content] == ["text"] and second.content[0].text  # type: ignore[union-attr]
    assert_result_reached(spill, kind, "messages")


@pytest.mark.parametrize("kind", KINDS)
def test_messages_streamed_raw_and_through_the_stream_helper(
    spill: Spill, claude: anthropic.Anthropic, kind: str
) -> None:
    spill.call_a_tool(kind)
    raw = claude.messages.with_raw_response.create(
        model=route(kind), max_tokens=256, messages=[{"role": "user", "content": QUESTION}],
        tools=MESSAGES_TOOLS, stream=True,
    )  # fmt: skip
    assert_spilled(raw.headers, kind)
    events = list(raw.parse())
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop", kinds
    partial = "".join(
        e.delta.partial_json  # type: ignore[union-attr]
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    )
    assert json.loads(partial) == {"city": "Paris"}

    spill.call_a_tool(kind)
    with claude.messages.stream(
        model=route(kind), max_tokens=256, messages=[{"role": "user", "content": QUESTION}],
        tools=MESSAGES_TOOLS,
    ) as stream:  # fmt: skip
        first = stream.get_final_message()
    assert first.stop_reason == "tool_use" and first.usage.output_tokens > 0

    with claude.messages.stream(
        model=route(kind), max_tokens=256, messages=messages_history(first), tools=MESSAGES_TOOLS
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].text == text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0
    assert_result_reached(spill, kind, "messages")


# -- privacy: a private request on a route whose local engine is down --------------------------


def _assert_kept_home(spill: Spill, before: int, reply_text: str) -> None:
    """Nothing more reached any provider, and the address reached none ever."""
    seen = spill.everything_received()
    assert EMAIL not in seen and "jane.doe" not in seen
    assert sum(len(spill.received(kind)) for kind in KINDS) == before
    assert EMAIL not in reply_text, "the refusal does not quote the address back"


def _spilled_once(spill: Spill) -> int:
    """The requests the fakes received so far; the control request above spilled (one)."""
    count = sum(len(spill.received(kind)) for kind in KINDS)
    assert count == 1, "the same request without the address spills: the route can spill"
    return count


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_an_email_in_a_messages_tool_result_never_leaves_the_box(
    spill: Spill, claude: anthropic.Anthropic, stream: bool
) -> None:
    spill.call_a_tool("anthropic")
    first = claude.messages.create(
        model=route("anthropic"), max_tokens=64, messages=[{"role": "user", "content": QUESTION}],
        tools=MESSAGES_TOOLS,
    )  # fmt: skip
    spill.reset()
    clean = claude.messages.with_raw_response.create(
        model=GUARDED, max_tokens=64, messages=messages_history(first), tools=MESSAGES_TOOLS
    )
    assert clean.headers["x-spillgate-reason"] == "local_down"
    before = _spilled_once(spill)

    private = messages_history(first, f"Sent. Reply went to {EMAIL}.")
    with pytest.raises(anthropic.APIStatusError) as caught:
        claude.messages.create(
            model=GUARDED, max_tokens=64, messages=private, tools=MESSAGES_TOOLS, stream=stream
        )
    assert_refused_as_anthropic(caught.value)
    _assert_kept_home(spill, before, caught.value.response.text)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_an_email_in_a_function_call_output_never_leaves_the_box(
    spill: Spill, oai: openai.OpenAI, stream: bool
) -> None:
    compatible = route("openai-compatible")
    first = oai.responses.create(model=compatible, input=QUESTION, tools=RESPONSES_TOOLS)
    spill.reset()
    clean = oai.responses.with_raw_response.create(
        model=GUARDED, input=responses_history(first), tools=RESPONSES_TOOLS
    )
    assert clean.headers["x-spillgate-reason"] == "local_down"
    before = _spilled_once(spill)

    private = responses_history(first, f"Sent. Reply went to {EMAIL}.")
    with pytest.raises(openai.APIStatusError) as caught:
        oai.responses.create(model=GUARDED, input=private, tools=RESPONSES_TOOLS, stream=stream)
    assert_refused_as_openai(caught.value)
    _assert_kept_home(spill, before, caught.value.response.text)


def test_a_request_marked_on_prem_never_leaves_the_box(
    spill: Spill, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    on_prem = {"x-spillgate-data": "on-prem"}
    with pytest.raises(anthropic.APIStatusError) as refused_messages:
        claude.messages.create(
            model=GUARDED, max_tokens=64, messages=[{"role": "user", "content": "Hello"}],
            extra_headers=on_prem,
        )  # fmt: skip
    assert_refused_as_anthropic(refused_messages.value)
    with pytest.raises(openai.APIStatusError) as refused_responses:
        oai.responses.create(model=GUARDED, input="Hello", extra_headers=on_prem)
    assert_refused_as_openai(refused_responses.value)
    assert sum(len(spill.received(kind)) for kind in KINDS) == 0
    unmarked = oai.responses.with_raw_response.create(model=GUARDED, input="Hello")
    assert unmarked.headers["x-spillgate-reason"] == "local_down", "unmarked, it spills"


# -- a provider's errors, in the inbound API's shape -------------------------------------------

ERRORS: dict[int, tuple[str, Any, Any]] = {
    429: ("rate_limit_error", anthropic.RateLimitError, openai.RateLimitError),
    500: ("api_error", anthropic.InternalServerError, openai.InternalServerError),
}


def _errored_route(api: str, kind: str, status: int) -> str:
    # A 429 may hold its target a while (Gemini says how long): it gets a route of its own.
    return rate_limited_route(api, kind) if status == 429 else route(kind)


@pytest.mark.parametrize("status", [429, 500])
@pytest.mark.parametrize("kind", KINDS)
def test_a_provider_error_reaches_the_anthropic_sdk_as_its_own(
    spill: Spill, claude: anthropic.Anthropic, kind: str, status: int
) -> None:
    spill.fail(kind, status)
    error_type, expected, _ = ERRORS[status]
    with pytest.raises(expected) as caught:
        claude.messages.create(
            model=_errored_route("messages", kind, status), max_tokens=64,
            messages=[{"role": "user", "content": "Hello"}],
        )  # fmt: skip
    body: Any = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == error_type
    assert PROVIDER[kind] in body["error"]["message"], "the error names the provider"
    assert KEYS[kind] not in caught.value.response.text


@pytest.mark.parametrize("status", [429, 500])
@pytest.mark.parametrize("kind", KINDS)
def test_a_provider_error_reaches_the_openai_sdk_as_its_own(
    spill: Spill, oai: openai.OpenAI, kind: str, status: int
) -> None:
    spill.fail(kind, status)
    _, _, expected = ERRORS[status]
    with pytest.raises(expected) as caught:
        oai.responses.create(model=_errored_route("responses", kind, status), input="Hello")
    body: Any = caught.value.body
    assert set(body) >= {"message", "type", "code"} and PROVIDER[kind] in body["message"]
    assert KEYS[kind] not in caught.value.response.text


@pytest.mark.parametrize("kind", KINDS)
def test_a_cut_messages_stream_raises_in_the_anthropic_sdk(
    spill: Spill, claude: anthropic.Anthropic, kind: str
) -> None:
    spill.cut_stream(kind)
    hello: Any = [{"role": "user", "content": "Hello"}]
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        claude.messages.stream(model=route(kind), max_tokens=64, messages=hello) as stream,
    ):
        for _ in stream:
            pass
    body: Any = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] in ("api_error", "overloaded_error")
    assert "mid-stream" in body["error"]["message"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_cut_responses_stream_ends_with_an_error_event(
    spill: Spill, oai: openai.OpenAI, kind: str
) -> None:
    spill.cut_stream(kind)
    with oai.responses.stream(model=route(kind), input="Hello") as stream:
        events = list(stream)
        # The SDK hands the `error` event to the caller (it has no `error` key to raise on)
        # and the stream helper has no answer to give.
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            stream.get_final_response()
    assert events[0].type == "response.created"
    last = events[-1]
    assert last.type == "error" and last.code == "provider_stream_cut", last
    assert "mid-stream" in last.message
    assert "response.completed" not in [e.type for e in events]


# -- accounting and secrets --------------------------------------------------------------------


def _row(spill: Spill, request_id: str) -> dict[str, Any]:
    columns = ("endpoint", "model", "target", "target_kind", "reason", "prompt_tokens",
               "completion_tokens", "cost_usd", "status", "streamed", "complete")  # fmt: skip
    sql = f"SELECT {', '.join(columns)} FROM usage_records WHERE request_id = '{request_id}'"
    [row] = sqlite_rows(spill.home, sql)
    return dict(zip(columns, row, strict=True))


def test_the_ledger_records_each_spilled_request_with_its_endpoint(
    spill: Spill, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    answered = oai.responses.create(
        model=route("gemini"), input="Hello", extra_headers={"x-request-id": "dialect-resp-1"}
    )
    said = claude.messages.create(
        model=route("openai"), max_tokens=64, messages=[{"role": "user", "content": "Hello"}],
        extra_headers={"x-request-id": "dialect-msg-1"},
    )  # fmt: skip
    with claude.messages.stream(
        model=route("anthropic"), max_tokens=64, messages=[{"role": "user", "content": "Hi"}],
        extra_headers={"x-request-id": "dialect-msg-2"},
    ) as stream:  # fmt: skip
        streamed = stream.get_final_message()
    with oai.responses.stream(
        model=route("openai"), input="Hi", extra_headers={"x-request-id": "dialect-resp-2"}
    ) as responses_stream:
        passed_on = responses_stream.get_final_response()
    wait_for(lambda: metric(spill.gateway.url, "spillgate_ledger_backlog_records") == 0,
             what="ledger written")  # fmt: skip

    ids = ("dialect-resp-1", "dialect-msg-1", "dialect-msg-2", "dialect-resp-2")
    rows = {rid: _row(spill, rid) for rid in ids}
    assert answered.usage is not None and passed_on.usage is not None
    expected = {
        "dialect-resp-1": ("responses", "gemini", answered.usage.input_tokens,
                           answered.usage.output_tokens, 0),
        "dialect-msg-1": ("messages", "openai", said.usage.input_tokens,
                          said.usage.output_tokens, 0),
        "dialect-msg-2": ("messages", "anthropic", streamed.usage.input_tokens,
                          streamed.usage.output_tokens, 1),
        "dialect-resp-2": ("responses", "openai", passed_on.usage.input_tokens,
                           passed_on.usage.output_tokens, 1),
    }  # fmt: skip
    for rid, (endpoint, kind, prompt, completion, was_streamed) in expected.items():
        row = rows[rid]
        assert (row["endpoint"], row["model"], row["target"]) == (
            endpoint,
            route(kind),
            target(kind),
        )
        assert (row["target_kind"], row["reason"], row["status"]) == (
            "cloud",
            "model_not_local",
            200,
        )
        assert (row["prompt_tokens"], row["completion_tokens"]) == (prompt, completion), rid
        assert row["cost_usd"] > 0 and row["complete"] == 1
        assert row["streamed"] == was_streamed


def test_no_provider_key_in_the_log_or_an_error_body(
    spill: Spill, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    bodies = []
    for kind in KINDS:  # each fake quotes its key back in its error
        spill.fail(kind, 500)
        with pytest.raises(anthropic.InternalServerError) as messages_error:
            claude.messages.create(
                model=route(kind), max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
            )
        spill.fail(kind, 500)
        with pytest.raises(openai.InternalServerError) as responses_error:
            oai.responses.create(model=route(kind), input="Hi")
        bodies += [messages_error.value.response.text, responses_error.value.response.text]
    exposed = "\n".join(bodies) + spill.gateway.logs()
    assert "target failed" in exposed or "retrying" in exposed, "the failures were logged"
    for key in KEYS.values():
        assert key not in exposed and key[-8:] not in exposed


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
def test_an_email_never_reaches_a_cloud_only_route_even_where_passed_through(
    spill: Spill, oai: openai.OpenAI, claude: anthropic.Anthropic, kind: str
) -> None:
    """OpenAI gets Responses and Anthropic gets Messages as they are (no chat body for the
    egress guard to read): the ingress scan still keeps a private request home."""
    private = f"Forward this to {EMAIL}."
    with pytest.raises(openai.APIStatusError) as responses_refused:
        oai.responses.create(model=route(kind), input=private, instructions="Be brief.")
    with pytest.raises(anthropic.APIStatusError) as messages_refused:
        claude.messages.create(
            model=route(kind), max_tokens=64, messages=[{"role": "user", "content": private}]
        )
    for err in (responses_refused.value, messages_refused.value):
        assert err.status_code in (400, 429, 503), err
        assert "leave the box" in err.response.text
        assert EMAIL not in err.response.text
    assert messages_refused.value.body["type"] == "error"  # type: ignore[index]
    assert spill.received(kind) == []
