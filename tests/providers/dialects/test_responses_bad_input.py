"""What the Responses dialect refuses: a 400 naming the field in Responses terms, with the
code OpenAI uses and a message that says what to change."""

from __future__ import annotations

from typing import Any

import pytest

from spillgate.errors import GatewayError
from spillgate.fallback.dialects.responses import DIALECT

TOOL = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}


def _user(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(parts)}]


CASES: list[tuple[str, dict[str, Any], str, str, str]] = [
    # (id, request fields over a valid one, param, code, words the message holds)
    ("no model", {"model": None}, "model", "missing_required_parameter", "required"),
    ("empty model", {"model": ""}, "model", "invalid_type", "non-empty string"),
    ("no input", {"input": None}, "input", "missing_required_parameter", "required"),
    ("input a number", {"input": 3}, "input", "invalid_type", "string or an array"),
    ("empty input", {"input": []}, "input", "invalid_value", "at least one"),
    ("stream a string", {"stream": "yes"}, "stream", "invalid_type", "true or false"),
    ("instructions a list", {"instructions": ["x"]}, "instructions", "invalid_type", "string"),
    ("max_output_tokens 0", {"max_output_tokens": 0}, "max_output_tokens", "invalid_value",
     "at least 1"),
    ("max_output_tokens text", {"max_output_tokens": "9"}, "max_output_tokens", "invalid_type",
     "integer"),
    ("temperature 3", {"temperature": 3}, "temperature", "invalid_value", "between 0 and 2"),
    ("top_p text", {"top_p": "high"}, "top_p", "invalid_type", "number"),
    ("item not an object", {"input": ["hi"]}, "input[0]", "invalid_type", "object"),
    ("item without type", {"input": [{"content": "hi"}]}, "input[0].type",
     "missing_required_parameter", "message, function_call"),
    ("unknown item type", {"input": [{"type": "computer_call_output", "call_id": "c"}]},
     "input[0].type", "unsupported_parameter", "message, function_call"),
    ("item_reference", {"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type",
     "unsupported_parameter", "send the item itself"),
    ("unknown role", {"input": [{"role": "robot", "content": "hi"}]}, "input[0].role",
     "invalid_value", "user, system, developer, assistant"),
    ("content a number", {"input": [{"role": "user", "content": 5}]}, "input[0].content",
     "invalid_type", "string or an array"),
    ("unknown part", {"input": _user({"type": "input_audio", "data": "x"})},
     "input[0].content[0].type", "invalid_value", "input_text, input_image or input_file"),
    ("image by file_id", {"input": _user({"type": "input_image", "file_id": "file-1"})},
     "input[0].content[0].file_id", "unsupported_parameter", "image_url"),
    ("image without url", {"input": _user({"type": "input_image", "detail": "auto"})},
     "input[0].content[0].image_url", "missing_required_parameter", "data URL"),
    ("image url not a url", {"input": _user({"type": "input_image", "image_url": "cat.png"})},
     "input[0].content[0].image_url", "invalid_value", "data URL"),
    ("image detail", {"input": _user({"type": "input_image", "image_url": "https://x/a.png",
                                      "detail": "max"})},
     "input[0].content[0].detail", "invalid_value", "auto, low or high"),
    ("file by file_id", {"input": _user({"type": "input_file", "file_id": "file-1"})},
     "input[0].content[0].file_id", "unsupported_parameter", "file_data"),
    ("file by url", {"input": _user({"type": "input_file", "file_url": "https://x/a.pdf"})},
     "input[0].content[0].file_url", "unsupported_parameter", "file_data"),
    ("text part without text", {"input": _user({"type": "input_text"})},
     "input[0].content[0].text", "missing_required_parameter", "required"),
    ("assistant input_image", {"input": [{"role": "assistant", "content": [
        {"type": "input_image", "image_url": "https://x/a.png"}]}]},
     "input[0].content[0].type", "invalid_value", "output_text or refusal"),
    ("function_call without call_id", {"input": [{"type": "function_call", "name": "f",
                                                  "arguments": "{}"}]},
     "input[0].call_id", "missing_required_parameter", "required"),
    ("function_call arguments object", {"input": [{"type": "function_call", "call_id": "c",
                                                   "name": "f", "arguments": {}}]},
     "input[0].arguments", "invalid_type", "string"),
    ("output with an image", {"input": [{"type": "function_call_output", "call_id": "c",
                                         "output": [{"type": "input_image",
                                                     "image_url": "https://x/a.png"}]}]},
     "input[0].output[0]", "invalid_value", "text only"),
    ("output a number", {"input": [{"type": "function_call_output", "call_id": "c",
                                    "output": 7}]},
     "input[0].output", "invalid_type", "string"),
    ("tools an object", {"tools": TOOL}, "tools", "invalid_type", "array"),
    ("built-in tool", {"tools": [TOOL, {"type": "web_search"}]}, "tools[1].type",
     "unsupported_parameter", "function tool"),
    ("mcp tool", {"tools": [{"type": "mcp", "server_label": "x"}]}, "tools[0].type",
     "unsupported_parameter", "built-in tool"),
    ("tool without name", {"tools": [{"type": "function", "parameters": {}}]}, "tools[0].name",
     "missing_required_parameter", "name"),
    ("tool parameters a list", {"tools": [{**TOOL, "parameters": []}]}, "tools[0].parameters",
     "invalid_type", "JSON Schema"),
    ("tool_choice unknown name", {"tools": [TOOL], "tool_choice": {"type": "function",
                                                                   "name": "other"}},
     "tool_choice.name", "invalid_value", "one of the function tools"),
    ("tool_choice built-in", {"tools": [TOOL], "tool_choice": {"type": "file_search"}},
     "tool_choice.type", "unsupported_parameter", "built-in"),
    ("tool_choice word", {"tool_choice": "any"}, "tool_choice", "invalid_value", "required"),
    ("required without tools", {"tool_choice": "required"}, "tool_choice", "invalid_value",
     "no tools"),
    ("text.format unknown", {"text": {"format": {"type": "xml"}}}, "text.format.type",
     "invalid_value", "json_schema"),
    ("json_schema without schema", {"text": {"format": {"type": "json_schema", "name": "x"}}},
     "text.format.schema", "missing_required_parameter", "JSON Schema"),
    ("reasoning effort", {"reasoning": {"effort": "max"}}, "reasoning.effort", "invalid_value",
     "minimal"),
    ("metadata numbers", {"metadata": {"a": 1}}, "metadata", "invalid_type", "strings"),
    ("previous_response_id", {"previous_response_id": "resp_1"}, "previous_response_id",
     "unsupported_parameter", "whole conversation as `input`"),
    ("conversation", {"conversation": "conv_1"}, "conversation", "unsupported_parameter",
     "no response state"),
    ("store true", {"store": True}, "store", "unsupported_parameter", "no response state"),
    ("background true", {"background": True}, "background", "unsupported_parameter",
     "background"),
    ("truncation auto", {"truncation": "auto"}, "truncation", "unsupported_parameter",
     "drop turns"),
    ("prompt template", {"prompt": {"id": "pmpt_1"}}, "prompt", "unsupported_parameter",
     "instructions"),
    ("max_tool_calls", {"max_tool_calls": 2}, "max_tool_calls", "unsupported_parameter", "cap"),
    ("an unknown field", {"frobnicate": 1}, "frobnicate", "unsupported_parameter",
     "no counterpart"),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "param", "code", "words"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])  # fmt: skip
def test_each_invalid_field_is_a_400_naming_it(
    fields: dict[str, Any], param: str, code: str, words: str
) -> None:
    request = {"model": "smart", "input": "hello", **fields}
    with pytest.raises(GatewayError) as caught:
        DIALECT.to_chat({k: v for k, v in request.items() if v is not None})
    err = caught.value
    assert (err.status, err.param, err.code) == (400, param, code)
    assert f"`{param}`" in err.message and words in err.message, err.message


def test_the_client_s_words_are_never_quoted_back() -> None:
    secret = "my card is 4111 1111 1111 1111"
    bad = [
        {"input": [{"role": secret, "content": "x"}]},
        {"input": [{"type": secret}]},
        {"input": _user({"type": "input_image", "image_url": secret})},
        {"tools": [{"type": secret}]},
    ]
    for fields in bad:
        with pytest.raises(GatewayError) as caught:
            DIALECT.to_chat({"model": "smart", "input": "x", **fields})
        assert "4111" not in caught.value.message


@pytest.mark.parametrize(
    "fields",
    [
        {"store": False},
        {"background": False},
        {"truncation": "disabled"},
        {"include": ["reasoning.encrypted_content"]},
        {"service_tier": "auto"},
        {"previous_response_id": None},
        {"stream_options": {"include_obfuscation": False}, "stream": True},
        {"reasoning": {"effort": "low", "summary": "auto"}},
    ],
    ids=lambda f: next(iter(f)),
)
def test_harmless_fields_are_accepted_and_not_sent(fields: dict[str, Any]) -> None:
    chat = DIALECT.to_chat({"model": "smart", "input": "hello", **fields})
    for name in ("store", "background", "truncation", "include", "service_tier",
                 "previous_response_id"):  # fmt: skip
        assert name not in chat
    if fields.get("stream"):
        assert chat["stream_options"] == {"include_usage": True}
