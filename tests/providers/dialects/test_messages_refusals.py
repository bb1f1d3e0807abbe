"""Bad Messages requests: `to_chat` (the check of every /v1/messages request) answers each
with a 400 that names the field in Messages terms, so the client knows what to change."""

from __future__ import annotations

from typing import Any

import pytest

from spillgate.errors import GatewayError
from spillgate.fallback.dialects import dialect_for
from spillgate.protocol import Endpoint

TO_CHAT = dialect_for(Endpoint.MESSAGES).to_chat
TOOL = {"name": "get_weather", "input_schema": {"type": "object"}}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def image(source: dict[str, Any]) -> dict[str, Any]:
    return {"type": "image", "source": source}


def valid(**change: Any) -> dict[str, Any]:
    request: dict[str, Any] = {"model": "claude-x", "max_tokens": 10, "messages": [user("Hi")]}
    request.update(change)
    return {k: v for k, v in request.items() if v is not None}


BAD = [
    (valid(model=None), "model"),
    (valid(model=""), "model"),
    (valid(max_tokens=None), "max_tokens"),
    (valid(max_tokens=0), "max_tokens"),
    (valid(max_tokens=True), "max_tokens"),
    (valid(max_tokens=1.5), "max_tokens"),
    (valid(messages=None), "messages"),
    (valid(messages=[]), "messages"),
    (valid(messages="Hi"), "messages"),
    (valid(messages=["Hi"]), "messages[0]"),
    (valid(messages=[{"role": "system", "content": "Be kind."}]), "messages[0].role"),
    (valid(messages=[user(42)]), "messages[0].content"),
    (valid(messages=[user([])]), "messages[0].content"),
    (valid(messages=[user([{"text": "no type"}])]), "messages[0].content[0]"),
    (valid(messages=[user([{"type": "video"}])]), "messages[0].content[0].type"),
    (valid(messages=[user([{"type": "text", "text": 3}])]), "messages[0].content[0].text"),
    (
        valid(
            messages=[user([{"type": "tool_use", "id": "t1", "name": "f", "input": {}}])],
            tools=[TOOL],
        ),
        "messages[0].content[0].type",
    ),
    (
        valid(messages=[user("Hi"), {"role": "assistant", "content": [image({"type": "url"})]}]),
        "messages[1].content[0].type",
    ),
    (
        valid(
            messages=[
                user("Hi"),
                {"role": "assistant", "content": [{"type": "tool_use", "name": "f", "input": {}}]},
            ]
        ),
        "messages[1].content[0].id",
    ),
    (
        valid(
            messages=[
                user("Hi"),
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "{}"}],
                },
            ]
        ),
        "messages[1].content[0].input",
    ),
    (
        valid(
            messages=[user([image({"type": "base64", "media_type": "image/bmp", "data": "AAAA"})])]
        ),
        "messages[0].content[0].source.media_type",
    ),
    (
        valid(
            messages=[user([image({"type": "base64", "media_type": "image/png", "data": "@@"})])]
        ),
        "messages[0].content[0].source.data",
    ),
    (
        valid(messages=[user([image({"type": "url", "url": "ftp://example.com/a.png"})])]),
        "messages[0].content[0].source.url",
    ),
    (
        valid(messages=[user([image({"type": "file", "file_id": "f1"})])]),
        "messages[0].content[0].source.type",
    ),
    (valid(messages=[user([{"type": "image"}])]), "messages[0].content[0].source"),
    (
        valid(
            messages=[
                user([{"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}])
            ]
        ),
        "messages[0].content[0].source.type",
    ),
    (
        valid(
            messages=[
                user(
                    [
                        {
                            "type": "document",
                            "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                        }
                    ]
                )
            ]
        ),
        "messages[0].content[0].source.media_type",
    ),
    (
        valid(messages=[user([{"type": "tool_result", "content": "x"}])]),
        "messages[0].content[0].tool_use_id",
    ),
    (
        valid(messages=[user([{"type": "tool_result", "tool_use_id": "t", "is_error": "yes"}])]),
        "messages[0].content[0].is_error",
    ),
    (
        valid(
            messages=[
                user(
                    [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "document"}]}]
                )
            ]
        ),
        "messages[0].content[0].content[0].type",
    ),
    (valid(system=7), "system"),
    (valid(system=[{"type": "image"}]), "system[0]"),
    (valid(tools={"name": "f"}), "tools"),
    (valid(tools=[{"type": "web_search_20250305", "name": "web_search"}]), "tools[0].type"),
    (valid(tools=[TOOL, {"type": "bash_20250124", "name": "bash"}]), "tools[1].type"),
    (
        valid(tools=[{"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}]),
        "tools[0].type",
    ),
    (valid(tools=[{"type": "computer_20250124", "name": "computer"}]), "tools[0].type"),
    (valid(tools=[{"input_schema": {"type": "object"}}]), "tools[0].name"),
    (valid(tools=[{"name": "f"}]), "tools[0].input_schema"),
    (valid(tools=[{"name": "f", "input_schema": {"type": "array"}}]), "tools[0].input_schema"),
    (valid(tools=[TOOL], tool_choice={"type": "required"}), "tool_choice.type"),
    (valid(tools=[TOOL], tool_choice="auto"), "tool_choice.type"),
    (valid(tool_choice={"type": "any"}), "tool_choice.type"),
    (valid(tools=[TOOL], tool_choice={"type": "tool", "name": "other"}), "tool_choice.name"),
    (
        valid(tools=[TOOL], tool_choice={"type": "auto", "disable_parallel_tool_use": "yes"}),
        "tool_choice.disable_parallel_tool_use",
    ),
    (valid(stop_sequences="END"), "stop_sequences"),
    (valid(temperature=1.5), "temperature"),
    (valid(top_p="high"), "top_p"),
    (valid(top_k=-1), "top_k"),
    (valid(thinking={"type": "on"}), "thinking.type"),
    (valid(service_tier="priority"), "service_tier"),
    (valid(metadata="u1"), "metadata"),
    (valid(metadata={"user_id": 5}), "metadata.user_id"),
    (valid(stream="yes"), "stream"),
    (valid(container="container_1"), "container"),
    (
        valid(mcp_servers=[{"type": "url", "url": "https://mcp.example", "name": "m"}]),
        "mcp_servers",
    ),
    (valid(output_config={"format": {"type": "json_object"}}), "output_config.format.type"),
    (valid(output_config={"format": {"type": "json_schema"}}), "output_config.format.schema"),
    (valid(n=2), "n"),
]


@pytest.mark.parametrize(
    ("request_", "field"), BAD, ids=[f"{i}-{f}" for i, (_, f) in enumerate(BAD)]
)
def test_a_bad_field_is_a_400_that_names_it(request_: dict[str, Any], field: str) -> None:
    with pytest.raises(GatewayError) as refused:
        TO_CHAT(request_)
    assert refused.value.status == 400
    assert refused.value.param == field
    assert f"`{field}`" in refused.value.message


def test_the_anthropic_error_body_names_the_field() -> None:
    with pytest.raises(GatewayError) as refused:
        TO_CHAT(valid(max_tokens=None))
    body = refused.value.body(Endpoint.MESSAGES)
    assert b'"type":"invalid_request_error"' in body and b"max_tokens" in body


def test_what_a_claude_code_style_client_sends_is_accepted() -> None:
    """`top_k`, `thinking`, cache_control and thinking blocks in the history are dropped,
    not refused: the answer is correct without them."""
    chat = TO_CHAT(
        valid(
            top_k=5,
            thinking={"type": "enabled", "budget_tokens": 1024},
            context_management={"edits": []},
            messages=[
                user([{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}]),
                {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "abc"}]},
                user("Go on."),
            ],
        )
    )
    assert "top_k" not in chat and "thinking" not in chat
    assert chat["messages"][1] == {"role": "assistant", "content": ""}
