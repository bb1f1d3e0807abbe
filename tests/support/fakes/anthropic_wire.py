"""Anthropic's Messages request schema, as a checker for the fake Anthropic server.

`check_headers` checks a `POST /v1/messages` request's headers (`x-api-key`,
`anthropic-version`, `content-type`); `check_body` checks its body against the documented
schema: top-level fields, roles and their alternation, content blocks (text, image, document,
tool_use, tool_result, thinking), tool_use/tool_result pairing, tools (custom and Anthropic's
own), tool_choice, thinking and output_config, every field a Messages client may send
included. Each raises `Invalid` naming the first field that breaks it, with the error type
the real API answers (`invalid_request_error`, or `authentication_error` for a wrong key).

One deliberate strictness: the real API silently combines consecutive turns of one role;
the checker refuses them, because the adapter promises to send alternating turns itself.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

API_VERSION = "2023-06-01"

_TOP_LEVEL = {
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
    "output_config",
    "cache_control",
    "inference_geo",
    "speed",
}
_MEDIA_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


class Invalid(Exception):
    def __init__(self, message: str, error_type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type


def check_headers(headers: Any, api_key: str) -> None:
    if headers.get("x-api-key") != api_key:
        raise Invalid("invalid x-api-key", "authentication_error")
    version = headers.get("anthropic-version")
    if version is None:
        raise Invalid("anthropic-version: header is required")
    if version != API_VERSION:
        raise Invalid(f"anthropic-version: {version!r} is not a valid version")
    if not headers.get("content-type", "").startswith("application/json"):
        raise Invalid("content-type: must be application/json")


def check_body(body: Any) -> None:
    """Raise `Invalid` naming the first field that breaks the documented schema."""
    if not isinstance(body, dict):
        raise Invalid("the request body must be a JSON object")
    for key in body:
        if key not in _TOP_LEVEL:
            raise Invalid(f"{key}: Extra inputs are not permitted")
    for key in ("model", "messages", "max_tokens"):
        if key not in body:
            raise Invalid(f"{key}: Field required")
    _expect(isinstance(body["model"], str) and body["model"], "model: must be a non-empty string")
    _expect(_is_int(body["max_tokens"]) and body["max_tokens"] >= 1, "max_tokens: must be >= 1")
    if "system" in body:
        system = body["system"]
        if isinstance(system, list):
            for j, block in enumerate(system):
                _text_block(block, f"system.{j}")
        else:
            _expect(isinstance(system, str), "system: must be a string or text blocks")
    if "metadata" in body:
        meta = body["metadata"]
        _expect(isinstance(meta, dict) and set(meta) <= {"user_id"}, "metadata: only user_id")
        _expect(isinstance(meta.get("user_id", ""), str), "metadata.user_id: must be a string")
    if "stop_sequences" in body:
        stops = body["stop_sequences"]
        _expect(
            isinstance(stops, list) and all(isinstance(s, str) for s in stops),
            "stop_sequences: must be a list of strings",
        )
    for key in ("temperature", "top_p"):
        if key in body:
            value = body[key]
            _expect(_is_number(value) and 0 <= value <= 1, f"{key}: must be between 0 and 1")
    if "top_k" in body:
        _expect(_is_int(body["top_k"]) and body["top_k"] >= 0, "top_k: must be >= 0")
    if "stream" in body:
        _expect(isinstance(body["stream"], bool), "stream: must be a boolean")
    if "thinking" in body:
        _thinking(body["thinking"], body["max_tokens"])
    if "service_tier" in body:
        _expect(body["service_tier"] in ("auto", "standard_only"), "service_tier: invalid value")
    if "output_config" in body:
        _output_config(body["output_config"])
    names = _tools(body.get("tools"))
    if "tool_choice" in body:
        _tool_choice(body["tool_choice"], names)
    _messages(body["messages"], names)


def _messages(messages: Any, tool_names: set[str]) -> None:
    _expect(isinstance(messages, list) and messages, "messages: at least one message is required")
    previous_role = None
    pending_tool_uses: set[str] = set()
    for i, msg in enumerate(messages):
        where = f"messages.{i}"
        _expect(isinstance(msg, dict), f"{where}: must be an object")
        extra = set(msg) - {"role", "content"}
        _expect(not extra, f"{where}.{next(iter(extra), '')}: Extra inputs are not permitted")
        role = msg.get("role")
        _expect(role in ("user", "assistant"), f"{where}.role: must be 'user' or 'assistant'")
        _expect(role != previous_role, f"{where}: roles must alternate between user and assistant")
        previous_role = role
        content = msg.get("content")
        last = i == len(messages) - 1
        if isinstance(content, str):
            _expect(
                content or (last and role == "assistant"),
                f"{where}: all messages must have non-empty content except for the optional "
                "final assistant message",
            )
            blocks: list[Any] = []
        else:
            _expect(isinstance(content, list), f"{where}.content: must be a string or a list")
            _expect(
                content or (last and role == "assistant"),
                f"{where}: all messages must have non-empty content except for the optional "
                "final assistant message",
            )
            blocks = content
        for j, block in enumerate(blocks):
            _block(block, role, f"{where}.content.{j}")
        results = [b["tool_use_id"] for b in blocks if b["type"] == "tool_result"]
        if role == "user":
            _expect(
                blocks[: len(results)] == [b for b in blocks if b["type"] == "tool_result"],
                f"{where}: tool_result blocks must come first in the user message content",
            )
            unknown = set(results) - pending_tool_uses
            _expect(
                not unknown,
                f"{where}: unexpected tool_use_id found in tool_result blocks: "
                f"{sorted(unknown)}. Each tool_result block must have a corresponding tool_use "
                "block in the previous message.",
            )
            missing = pending_tool_uses - set(results)
            _expect(
                not missing,
                f"{where}: tool_use ids were found without tool_result blocks immediately after: "
                f"{sorted(missing)}",
            )
            pending_tool_uses = set()
        else:
            _expect(
                not pending_tool_uses,
                f"{where}: tool_use ids were found without tool_result blocks immediately after",
            )
            pending_tool_uses = {b["id"] for b in blocks if b["type"] == "tool_use"}
        _expect(
            tool_names or not any(b["type"] in ("tool_use", "tool_result") for b in blocks),
            "Requests which include `tool_use` or `tool_result` blocks must define tools.",
        )


def _block(block: Any, role: str, where: str) -> None:
    _expect(isinstance(block, dict), f"{where}: must be an object")
    kind = block.get("type")
    allowed = {
        "user": ("text", "image", "document", "tool_result"),
        "assistant": ("text", "tool_use", "thinking", "redacted_thinking"),
    }[role]
    _expect(kind in allowed, f"{where}.type: {kind!r} is not allowed in a {role} message")
    if kind == "text":
        _text_block(block, where)
    elif kind == "image":
        _only(block, {"type", "source", "cache_control"}, where)
        _image_source(block.get("source"), f"{where}.source")
    elif kind == "document":
        _only(block, {"type", "source", "title", "context", "citations", "cache_control"}, where)
        _document_source(block.get("source"), f"{where}.source")
    elif kind == "thinking":
        _only(block, {"type", "thinking", "signature"}, where)
        _expect(isinstance(block.get("thinking"), str), f"{where}.thinking: Field required")
        _expect(isinstance(block.get("signature"), str), f"{where}.signature: Field required")
    elif kind == "redacted_thinking":
        _only(block, {"type", "data"}, where)
        _expect(isinstance(block.get("data"), str), f"{where}.data: Field required")
    elif kind == "tool_use":
        _only(block, {"type", "id", "name", "input", "cache_control"}, where)
        _expect(
            isinstance(block.get("id"), str) and _TOOL_ID.match(block["id"]), f"{where}.id: invalid"
        )
        _expect(isinstance(block.get("name"), str), f"{where}.name: Field required")
        _expect(isinstance(block.get("input"), dict), f"{where}.input: must be an object")
    else:
        _only(block, {"type", "tool_use_id", "content", "is_error", "cache_control"}, where)
        _expect(isinstance(block.get("tool_use_id"), str), f"{where}.tool_use_id: Field required")
        content = block.get("content", "")
        if isinstance(content, list):
            for k, inner in enumerate(content):
                _expect(isinstance(inner, dict), f"{where}.content.{k}: must be an object")
                if inner.get("type") == "image":
                    _image_source(inner.get("source"), f"{where}.content.{k}.source")
                else:
                    _text_block(inner, f"{where}.content.{k}")
        else:
            _expect(isinstance(content, str), f"{where}.content: must be a string or a list")
        _expect(isinstance(block.get("is_error", False), bool), f"{where}.is_error: must be a bool")


def _text_block(block: Any, where: str) -> None:
    _expect(
        isinstance(block, dict) and block.get("type") == "text", f"{where}: must be a text block"
    )
    _only(block, {"type", "text", "cache_control", "citations"}, where)
    text = block.get("text")
    _expect(isinstance(text, str), f"{where}.text: Field required")
    _expect(text != "", f"{where}: text content blocks must be non-empty")


def _image_source(source: Any, where: str) -> None:
    _expect(isinstance(source, dict), f"{where}: Field required")
    kind = source.get("type")
    if kind == "base64":
        _only(source, {"type", "media_type", "data"}, where)
        _expect(source.get("media_type") in _MEDIA_TYPES, f"{where}.media_type: not supported")
        data = source.get("data")
        _expect(isinstance(data, str), f"{where}.data: Field required")
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise Invalid(f"{where}.data: invalid base64 data") from None
    elif kind == "url":
        _only(source, {"type", "url"}, where)
        url = source.get("url")
        _expect(isinstance(url, str) and url.startswith("https://"), f"{where}.url: must be https")
    else:
        raise Invalid(f"{where}.type: must be 'base64' or 'url'")


def _document_source(source: Any, where: str) -> None:
    _expect(isinstance(source, dict), f"{where}: Field required")
    kind = source.get("type")
    if kind == "text":
        _only(source, {"type", "media_type", "data"}, where)
        _expect(source.get("media_type") == "text/plain", f"{where}.media_type: must be text/plain")
        _expect(isinstance(source.get("data"), str), f"{where}.data: Field required")
    elif kind == "base64":
        _only(source, {"type", "media_type", "data"}, where)
        _expect(source.get("media_type") == "application/pdf", f"{where}.media_type: not supported")
        _expect(isinstance(source.get("data"), str), f"{where}.data: Field required")
    elif kind == "url":
        _only(source, {"type", "url"}, where)
        _expect(isinstance(source.get("url"), str), f"{where}.url: Field required")
    else:
        raise Invalid(f"{where}.type: must be 'text', 'base64' or 'url'")


def _thinking(thinking: Any, max_tokens: int) -> None:
    _expect(isinstance(thinking, dict), "thinking: must be an object")
    kind = thinking.get("type")
    if kind == "enabled":
        _only(thinking, {"type", "budget_tokens", "display"}, "thinking")
        budget = thinking.get("budget_tokens")
        _expect(_is_int(budget) and budget >= 1024, "thinking.budget_tokens: must be >= 1024")
        _expect(budget < max_tokens, "max_tokens: must be greater than thinking.budget_tokens")
    elif kind in ("disabled", "adaptive"):
        _only(thinking, {"type", "display"}, "thinking")
    else:
        raise Invalid("thinking.type: must be 'enabled', 'disabled' or 'adaptive'")


def _output_config(config: Any) -> None:
    _expect(isinstance(config, dict), "output_config: must be an object")
    _only(config, {"effort", "format"}, "output_config")
    effort = config.get("effort")
    _expect(
        effort in (None, "low", "medium", "high", "xhigh", "max"), "output_config.effort: invalid"
    )
    output_format = config.get("format")
    if output_format is not None:
        _expect(
            isinstance(output_format, dict)
            and output_format.get("type") == "json_schema"
            and isinstance(output_format.get("schema"), dict),
            "output_config.format: must be a json_schema format with a schema",
        )


def _tools(tools: Any) -> set[str]:
    if tools is None:
        return set()
    _expect(isinstance(tools, list), "tools: must be a list")
    names: set[str] = set()
    for i, tool in enumerate(tools):
        where = f"tools.{i}"
        _expect(isinstance(tool, dict), f"{where}: must be an object")
        if tool.get("type") not in (None, "custom"):
            _builtin_tool(tool, where, names)
            continue
        _only(
            tool, {"name", "description", "input_schema", "cache_control", "type", "strict"}, where
        )
        name = tool.get("name")
        _expect(isinstance(name, str) and _TOOL_NAME.match(name), f"{where}.name: invalid name")
        _expect(name not in names, f"tools: tool names must be unique ({name!r})")
        names.add(name)
        _expect(isinstance(tool.get("description", ""), str), f"{where}.description: not a string")
        schema = tool.get("input_schema")
        _expect(
            isinstance(schema, dict) and schema.get("type") == "object",
            f"{where}.input_schema.type: Input should be 'object'",
        )
    return names


def _builtin_tool(tool: dict[str, Any], where: str, names: set[str]) -> None:
    """One of Anthropic's own tools (`web_search_20250305`, `bash_20250124`...): a versioned
    type and a fixed name, no schema."""
    _expect(re.match(r"^[a-z_]+_\d{8}$", str(tool["type"])), f"{where}.type: unknown tool type")
    _expect(isinstance(tool.get("name"), str), f"{where}.name: Field required")
    _expect("input_schema" not in tool, f"{where}.input_schema: Extra inputs are not permitted")
    names.add(tool["name"])


def _tool_choice(choice: Any, names: set[str]) -> None:
    _expect(isinstance(choice, dict), "tool_choice: must be an object")
    kind = choice.get("type")
    if kind == "none":
        _only(choice, {"type"}, "tool_choice")
        return
    _expect(kind in ("auto", "any", "tool"), "tool_choice.type: must be auto, any, tool or none")
    _expect(names or kind == "auto", "tool_choice: requires tools")
    allowed = {"type", "disable_parallel_tool_use"} | ({"name"} if kind == "tool" else set())
    _only(choice, allowed, "tool_choice")
    _expect(
        isinstance(choice.get("disable_parallel_tool_use", False), bool),
        "tool_choice.disable_parallel_tool_use: must be a boolean",
    )
    if kind == "tool":
        _expect(choice.get("name") in names, "tool_choice.name: must name one of the tools")


def _only(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(obj) - allowed)
    _expect(not extra, f"{where}.{extra[0] if extra else ''}: Extra inputs are not permitted")


def _expect(condition: Any, message: str) -> None:
    if not condition:
        raise Invalid(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
