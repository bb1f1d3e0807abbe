"""A Responses create request, checked, as a chat completion request.

This is the gateway's validator of POST /v1/responses: a 400 names the field in Responses
terms (`input[2].content[0].image_url`, `tools[1].type`).

What each top-level field becomes:
- `model`, `stream`, `temperature`, `top_p`: the same in chat. A stream asks chat for its
  usage chunk (`stream_options.include_usage`): `response.completed` carries the usage.
- `input` + `instructions`: the messages (see `items`); `instructions` leads as a system
  message.
- `max_output_tokens` -> `max_completion_tokens`; `reasoning.effort` -> `reasoning_effort`;
  `text.format` -> `response_format`; `text.verbosity` -> `verbosity`.
- `tools` (function tools only), `tool_choice`: chat's shapes. `parallel_tool_calls` is
  sent only when false (true is chat's default, and some kinds cannot take the field).
- `user`, `safety_identifier`, `prompt_cache_key`: chat has them under the same names.
- `service_tier`: "auto" and "default" are the account's default and are not sent; another
  tier is sent as chat's `service_tier`.

Accepted and not sent, since they change nothing a chat provider does: `metadata` (echoed
in the Response), `include` (the extras it asks for are of built-in tools and stored
items, which never occur here), `truncation: "disabled"`, `store: false`,
`background: false`, `reasoning.summary`, `stream_options` (its one option,
`include_obfuscation`, pads events Spillgate writes itself).

Refused with a 400 `unsupported_parameter`: `previous_response_id`, `conversation`,
`store: true`, `prompt` (the gateway keeps no response state: send the whole conversation
as `input` items), `background: true` (no background runs), `truncation: "auto"` (the
gateway does not drop turns), `top_logprobs`, `max_tool_calls`, built-in tools, and every
other field.
"""

from __future__ import annotations

from typing import Any

from spillgate.errors import GatewayError, bad_request
from spillgate.fallback.dialects.responses.items import chat_messages
from spillgate.sse import with_usage_requested

#: Fields that change nothing a chat provider does (see the module's docstring).
_IGNORED = frozenset({"metadata", "include", "stream_options"})
#: Fields sent to chat as they are.
_SAME = ("temperature", "top_p", "user", "safety_identifier", "prompt_cache_key")
_HANDLED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "stream",
        "max_output_tokens",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "text",
        "reasoning",
        "service_tier",
        "truncation",
        "store",
        "background",
        *_SAME,
    }
)
_NO_STATE = (
    "Spillgate keeps no response state: send the whole conversation as `input` items "
    "(with `store` false or left out)"
)
#: Refused whenever they are set, with the reason.
_REFUSED = {
    "previous_response_id": _NO_STATE,
    "conversation": _NO_STATE,
    "prompt": "stored prompts live at OpenAI; send the prompt as `instructions` and `input`",
    "top_logprobs": "log probabilities are not passed on",
    "max_tool_calls": "chat providers cannot cap the number of tool calls",
}
_BUILT_IN_TOOL = (
    "a built-in tool runs inside OpenAI's own service, which neither a local engine nor a "
    "chat provider offers; declare it as a function tool your client runs"
)
_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
_VERBOSITIES = ("low", "medium", "high")


def to_chat(payload: dict[str, Any]) -> dict[str, Any]:
    """The request as chat; raises `GatewayError(400)` naming the first field in the way."""
    _refuse_unsupported(payload)
    model = payload.get("model")
    if model is None:
        raise _missing("model", "GET /v1/models lists the models")
    if not isinstance(model, str) or not model:
        raise _invalid_type("model", "a non-empty string")
    stream = _optional(payload, "stream", bool, "true or false") or False
    items = payload.get("input")
    if items is None:
        raise _missing("input", "a string, or an array of input items")
    if not isinstance(items, str | list):
        raise _invalid_type("input", "a string or an array of input items")
    if isinstance(items, list) and not items:
        raise bad_request(
            "`input` must hold at least one item", param="input", code="invalid_value"
        )
    instructions = _optional(payload, "instructions", str, "a string")
    chat: dict[str, Any] = {"model": model, "messages": chat_messages(items, instructions)}
    _sampling(payload, chat)
    _tools(payload, chat)
    _text(payload, chat)
    _reasoning(payload, chat)
    _check_ignored(payload)
    if stream:
        chat["stream"] = True
        chat = with_usage_requested(chat)
    return chat


def _refuse_unsupported(payload: dict[str, Any]) -> None:
    for name, value in payload.items():
        if value is None or name in _HANDLED or name in _IGNORED:
            continue
        why = _REFUSED.get(name, "it has no counterpart in the chat format Spillgate serves")
        raise _unsupported(name, why)
    if payload.get("store") is True:
        raise _unsupported("store", _NO_STATE)
    _optional(payload, "store", bool, "true or false")
    if payload.get("background") is True:
        raise _unsupported("background", "Spillgate answers every request while it waits")
    _optional(payload, "background", bool, "true or false")
    truncation = payload.get("truncation")
    if truncation == "auto":
        raise _unsupported("truncation", "the gateway does not drop turns to fit; send fewer")
    if truncation not in (None, "disabled"):
        raise _invalid_value("truncation", '"disabled" or "auto"')


def _sampling(payload: dict[str, Any], chat: dict[str, Any]) -> None:
    limit = _optional(payload, "max_output_tokens", int, "an integer")
    if limit is not None:
        if limit < 1:
            raise _invalid_value("max_output_tokens", "at least 1")
        chat["max_completion_tokens"] = limit
    for name, low, high in (("temperature", 0, 2), ("top_p", 0, 1)):
        value = payload.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _invalid_type(name, "a number")
        if not low <= value <= high:
            raise _invalid_value(name, f"between {low} and {high}")
        chat[name] = value
    for name in ("user", "safety_identifier", "prompt_cache_key"):
        value = _optional(payload, name, str, "a string")
        if value is not None:
            chat[name] = value
    tier = _optional(payload, "service_tier", str, "a string")
    if tier is not None and tier not in ("auto", "default"):
        chat["service_tier"] = tier


def _tools(payload: dict[str, Any], chat: dict[str, Any]) -> None:
    tools = payload.get("tools")
    names: list[str] = []
    if tools is not None:
        if not isinstance(tools, list):
            raise _invalid_type("tools", "an array of tools")
        chat_tools = [_function_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
        names = [tool["function"]["name"] for tool in chat_tools]
        if chat_tools:
            chat["tools"] = chat_tools
    choice = payload.get("tool_choice")
    if choice is not None:
        chat["tool_choice"] = _tool_choice(choice, names)
    if _optional(payload, "parallel_tool_calls", bool, "true or false") is False:
        chat["parallel_tool_calls"] = False


def _function_tool(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, dict):
        raise _invalid_type(where, "an object (a tool)")
    kind = tool.get("type")
    if kind != "function":
        if not isinstance(kind, str):
            raise _missing(f"{where}.type", '"function"')
        raise _unsupported(f"{where}.type", _BUILT_IN_TOOL)
    name = tool.get("name")
    if name is None:
        raise _missing(f"{where}.name", "the function's name")
    if not isinstance(name, str) or not name:
        raise _invalid_type(f"{where}.name", "a non-empty string")
    function: dict[str, Any] = {"name": name}
    description = _optional(tool, "description", str, "a string", where)
    if description is not None:
        function["description"] = description
    parameters = _optional(tool, "parameters", dict, "an object (a JSON Schema)", where)
    if parameters is not None:
        function["parameters"] = parameters
    strict = _optional(tool, "strict", bool, "true or false", where)
    if strict is not None:
        function["strict"] = strict
    return {"type": "function", "function": function}


def _tool_choice(choice: Any, names: list[str]) -> Any:
    if choice in ("auto", "none", "required"):
        if choice == "required" and not names:
            raise _invalid_value("tool_choice", '"auto" or "none" when no tools are given')
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name")
        if not isinstance(name, str) or name not in names:
            raise bad_request(
                "`tool_choice.name` must name one of the function tools in `tools`",
                param="tool_choice.name",
                code="invalid_value",
            )
        return {"type": "function", "function": {"name": name}}
    if isinstance(choice, dict) and isinstance(choice.get("type"), str):
        raise _unsupported("tool_choice.type", _BUILT_IN_TOOL)
    raise _invalid_value(
        "tool_choice", '"auto", "none", "required" or {"type": "function", "name": ...}'
    )


def _text(payload: dict[str, Any], chat: dict[str, Any]) -> None:
    text = _optional(payload, "text", dict, "an object")
    if text is None:
        return
    verbosity = text.get("verbosity")
    if verbosity is not None:
        if verbosity not in _VERBOSITIES:
            raise _invalid_value("text.verbosity", "low, medium or high")
        chat["verbosity"] = verbosity
    fmt = _optional(text, "format", dict, "an object", "text")
    if fmt is None:
        return
    kind = fmt.get("type")
    if kind == "text":
        return
    if kind == "json_object":
        chat["response_format"] = {"type": "json_object"}
        return
    if kind != "json_schema":
        raise _invalid_value("text.format.type", "text, json_object or json_schema")
    name = fmt.get("name")
    if not isinstance(name, str) or not name:
        raise _missing("text.format.name", "the schema's name")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise _missing("text.format.schema", "a JSON Schema object")
    spec: dict[str, Any] = {"name": name, "schema": schema}
    description = _optional(fmt, "description", str, "a string", "text.format")
    if description is not None:
        spec["description"] = description
    strict = _optional(fmt, "strict", bool, "true or false", "text.format")
    if strict is not None:
        spec["strict"] = strict
    chat["response_format"] = {"type": "json_schema", "json_schema": spec}


def _reasoning(payload: dict[str, Any], chat: dict[str, Any]) -> None:
    reasoning = _optional(payload, "reasoning", dict, "an object")
    if reasoning is None:
        return
    effort = reasoning.get("effort")
    if effort is not None:
        if effort not in _EFFORTS:
            raise _invalid_value("reasoning.effort", ", ".join(_EFFORTS))
        chat["reasoning_effort"] = effort


def _check_ignored(payload: dict[str, Any]) -> None:
    """The fields not sent still have to be well formed: a client's typo is not ignored."""
    metadata = _optional(payload, "metadata", dict, "an object of strings")
    if metadata is not None and not all(isinstance(v, str) for v in metadata.values()):
        raise _invalid_type("metadata", "an object of strings")
    include = _optional(payload, "include", list, "an array of strings")
    if include is not None and not all(isinstance(v, str) for v in include):
        raise _invalid_type("include", "an array of strings")
    options = _optional(payload, "stream_options", dict, "an object")
    if options is not None:
        _optional(options, "include_obfuscation", bool, "true or false", "stream_options")


def _optional(
    holder: dict[str, Any], name: str, kind: type, expected: str, within: str = ""
) -> Any:
    """`holder[name]`, None when absent or null; a 400 when it is not of `kind`."""
    value = holder.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _invalid_type(f"{within}.{name}" if within else name, expected)
    return value


def _missing(field: str, expected: str) -> GatewayError:
    return bad_request(
        f"`{field}` is required: {expected}", param=field, code="missing_required_parameter"
    )


def _invalid_type(field: str, expected: str) -> GatewayError:
    return bad_request(f"`{field}` must be {expected}", param=field, code="invalid_type")


def _invalid_value(field: str, expected: str) -> GatewayError:
    return bad_request(f"`{field}` must be {expected}", param=field, code="invalid_value")


def _unsupported(field: str, why: str) -> GatewayError:
    return bad_request(
        f"`{field}` is not supported by Spillgate's Responses API ({why}); remove it",
        param=field,
        code="unsupported_parameter",
    )
