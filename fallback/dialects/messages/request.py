"""An Anthropic Messages create request -> a chat completion request; THE validator of the
inbound Messages request (every 400 names its field in Messages terms).

The turns themselves (`messages`, `system`) are read by `content`; this module reads the
rest. What has no chat counterpart is decided here, once:

* `top_k` is dropped: chat has no such field, it only narrows sampling, and Claude-Code
  style clients set it; refusing it would refuse them for nothing a reader of the answer
  could notice.
* `thinking` is dropped: chat has no portable way to ask for visible reasoning, and the
  answer is a correct answer without it (no `thinking` blocks come back). Thinking blocks
  in the history are dropped likewise (see `content`).
* `service_tier`, `inference_geo`, `speed`, `diagnostics`, `cache_control` and
  `context_management` are dropped: they steer Anthropic's own service, not the answer.
* `output_config.format` (structured output) becomes `response_format` json_schema;
  `output_config.effort` is dropped (a hint, like `thinking`).
* `container`, `mcp_servers` and Anthropic's built-in tools (a tool with a `type` such as
  `web_search_20250305` or `bash_20250124`) are refused: they run on Anthropic's side and
  have no chat form.

A field the Messages API does not have is refused, as Anthropic refuses it.
"""

from __future__ import annotations

from typing import Any

from spillgate.errors import bad_request
from spillgate.fallback.dialects.messages.content import chat_messages, is_number
from spillgate.sse import with_usage_requested

#: Fields read into the chat request (here or in `content`).
_READ = frozenset(
    {"model", "max_tokens", "messages", "system", "stream", "metadata", "stop_sequences",
     "temperature", "top_p", "tools", "tool_choice", "output_config"}
)  # fmt: skip
#: Fields that steer Anthropic's service or its sampling, not the answer: dropped.
_DROPPED = frozenset(
    {"top_k", "thinking", "service_tier", "inference_geo", "speed", "diagnostics",
     "cache_control", "context_management"}
)  # fmt: skip
#: Fields that only work on Anthropic's own servers.
_REFUSED = {
    "container": "a container runs Anthropic's code execution on Anthropic's side",
    "mcp_servers": "MCP servers are called from Anthropic's side",
}
_SERVICE_TIERS = ("auto", "standard_only")


def to_chat(payload: dict[str, Any]) -> dict[str, Any]:
    """The Messages request as a chat completion request; `GatewayError(400)` naming the
    field for what is invalid or has no chat form."""
    for name in payload:
        if name in _REFUSED:
            raise bad_request(
                f"`{name}` is not supported by Spillgate ({_REFUSED[name]}); remove it",
                param=name,
            )
        if name not in _READ and name not in _DROPPED:
            raise bad_request(f"`{name}` is not a Messages API field; remove it", param=name)
    chat: dict[str, Any] = {
        "model": _model(payload.get("model")),
        "messages": chat_messages(payload.get("system"), payload.get("messages")),
        "max_tokens": _max_tokens(payload),
    }
    _check_dropped(payload)
    stream = payload.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise bad_request("`stream` must be true or false", param="stream")
    if stream:
        chat = with_usage_requested({**chat, "stream": True})
    stop = _stop_sequences(payload.get("stop_sequences"))
    if stop:
        chat["stop"] = stop
    for name in ("temperature", "top_p"):
        value = payload.get(name)
        if value is None:
            continue
        if not is_number(value) or not 0 <= value <= 1:
            raise bad_request(f"`{name}` must be a number from 0 to 1", param=name)
        chat[name] = value
    user = _user_id(payload.get("metadata"))
    if user:
        chat["user"] = user
    tools = _tools(payload.get("tools"))
    if tools:
        chat["tools"] = tools
    chat.update(_tool_choice(payload.get("tool_choice"), {t["function"]["name"] for t in tools}))
    response_format = _response_format(payload.get("output_config"))
    if response_format is not None:
        chat["response_format"] = response_format
    return chat


def _model(model: Any) -> str:
    if model is None:
        raise bad_request("`model` is required", param="model")
    if not isinstance(model, str) or not model:
        raise bad_request("`model` must be a non-empty string", param="model")
    return model


def _max_tokens(payload: dict[str, Any]) -> int:
    value = payload.get("max_tokens")
    if value is None:
        raise bad_request("`max_tokens` is required", param="max_tokens")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise bad_request("`max_tokens` must be an integer of at least 1", param="max_tokens")
    return value


def _check_dropped(payload: dict[str, Any]) -> None:
    """Dropped fields are still checked: a client's typo should not pass unseen."""
    top_k = payload.get("top_k")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0):
        raise bad_request("`top_k` must be an integer of at least 0", param="top_k")
    thinking = payload.get("thinking")
    if thinking is not None:
        kind = thinking.get("type") if isinstance(thinking, dict) else None
        if kind not in ("enabled", "disabled", "adaptive"):
            raise bad_request(
                '`thinking.type` must be "enabled", "disabled" or "adaptive"',
                param="thinking.type",
            )
    tier = payload.get("service_tier")
    if tier is not None and tier not in _SERVICE_TIERS:
        raise bad_request('`service_tier` must be "auto" or "standard_only"', param="service_tier")


def _stop_sequences(stop: Any) -> list[str]:
    if stop is None:
        return []
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise bad_request("`stop_sequences` must be an array of strings", param="stop_sequences")
    return stop


def _user_id(metadata: Any) -> str | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise bad_request("`metadata` must be an object", param="metadata")
    user = metadata.get("user_id")
    if user is not None and not isinstance(user, str):
        raise bad_request("`metadata.user_id` must be a string", param="metadata.user_id")
    return user


# --- tools ---------------------------------------------------------------------------------


def _tools(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise bad_request("`tools` must be an array", param="tools")
    return [_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]


def _tool(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, dict):
        raise bad_request(f"`{where}` must be an object", param=where)
    kind = tool.get("type")
    if kind not in (None, "custom"):
        raise bad_request(
            f"`{where}.type` is {kind!r}, one of Anthropic's built-in tools, which run on "
            "Anthropic's side and are not supported by Spillgate; define the tool yourself "
            "with `name`, `description` and `input_schema`",
            param=f"{where}.type",
        )
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request(f"`{where}.name` must be a non-empty string", param=f"{where}.name")
    schema = tool.get("input_schema")
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise bad_request(
            f'`{where}.input_schema` must be a JSON schema with "type": "object"',
            param=f"{where}.input_schema",
        )
    function: dict[str, Any] = {"name": name, "parameters": schema}
    description = tool.get("description")
    if description is not None:
        if not isinstance(description, str):
            raise bad_request(
                f"`{where}.description` must be a string", param=f"{where}.description"
            )
        function["description"] = description
    if tool.get("strict") is True:
        function["strict"] = True
    return {"type": "function", "function": function}


def _tool_choice(choice: Any, names: set[str]) -> dict[str, Any]:
    """Chat's `tool_choice` and `parallel_tool_calls` for Anthropic's `tool_choice`."""
    if choice is None:
        return {}
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in ("auto", "any", "tool", "none"):
        raise bad_request(
            '`tool_choice.type` must be "auto", "any", "tool" or "none"', param="tool_choice.type"
        )
    if kind in ("any", "tool") and not names:
        raise bad_request(f'`tool_choice.type` "{kind}" needs `tools`', param="tool_choice.type")
    if not names:
        return {}  # "auto" or "none" with no tools: nothing to choose from, nothing to say
    out: dict[str, Any] = {}
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or name not in names:
            raise bad_request(
                "`tool_choice.name` must name one of `tools`", param="tool_choice.name"
            )
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        out["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    disable = choice.get("disable_parallel_tool_use")
    if disable is not None and not isinstance(disable, bool):
        raise bad_request(
            "`tool_choice.disable_parallel_tool_use` must be true or false",
            param="tool_choice.disable_parallel_tool_use",
        )
    if disable and kind != "none":
        out["parallel_tool_calls"] = False
    return out


def _response_format(config: Any) -> dict[str, Any] | None:
    if config is None:
        return None
    if not isinstance(config, dict):
        raise bad_request("`output_config` must be an object", param="output_config")
    output_format = config.get("format")
    if output_format is None:
        return None
    schema = output_format.get("schema") if isinstance(output_format, dict) else None
    if not isinstance(output_format, dict) or output_format.get("type") != "json_schema":
        raise bad_request(
            '`output_config.format.type` must be "json_schema"', param="output_config.format.type"
        )
    if not isinstance(schema, dict):
        raise bad_request(
            "`output_config.format.schema` must be a JSON schema object",
            param="output_config.format.schema",
        )
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
