"""OpenAI chat request -> Anthropic Messages API request body. Pure: no I/O, no clock.

Every OpenAI field either maps onto the Messages API, is refused with a 400 that says what
to change, or (only when the provider's `drop_params` lists it) is left out.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from spillgate.errors import bad_request
from spillgate.fallback.wire import tool_arguments, unsupported_parameter

#: Anthropic requires `max_tokens`; OpenAI lets it default to "as long as the model likes".
#: 4096 is the output limit of the smallest current Claude model, so it is valid for every
#: model; a provider can raise it with `options.default_max_tokens`.
DEFAULT_MAX_TOKENS = 4096

#: The tool through which a JSON-mode answer is forced (see `_json_mode`).
JSON_TOOL = "json_response"

_IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_DATA_URL = re.compile(r"^data:(?P<media>[\w.+-]+/[\w.+-]+)(?:;[^,;]*)*;base64,(?P<data>.*)$", re.S)

#: OpenAI parameters the Messages API lacks, with the values that mean "not used" (None
#: always does). Any other value is a 400 unless `drop_params` lists the parameter.
_UNSUPPORTED: dict[str, tuple[Any, ...]] = {
    "seed": (),
    "n": (1,),
    "logprobs": (False,),
    "top_logprobs": (0,),
    "logit_bias": ({},),
    "presence_penalty": (0,),
    "frequency_penalty": (0,),
    "audio": (),
    "modalities": (["text"],),
    "prediction": (),
    "reasoning_effort": (),
    "web_search_options": (),
}


#: What `drop_params` cannot remove: without them there is no request.
_ESSENTIAL = ("model", "messages")


@dataclass(frozen=True)
class AnthropicRequest:
    """The translated body, and what the answer's translation must know about it."""

    body: dict[str, Any]
    #: True when `response_format` asked for JSON: the answer arrives as the JSON tool's input.
    json_mode: bool


def translate_request(
    payload: dict[str, Any],
    model: str,
    *,
    stream: bool,
    provider: str,
    default_max_tokens: int,
    drop_params: Collection[str],
) -> AnthropicRequest:
    """Raise `GatewayError(400)` naming the parameter for anything that cannot be sent.

    A parameter listed in `drop_params` is never sent: that also serves models that refuse
    a parameter the API version has (newer Claude models refuse `temperature`).
    """
    payload = {k: v for k, v in payload.items() if k not in drop_params or k in _ESSENTIAL}
    _refuse_unsupported(payload, provider)
    if not isinstance(payload["messages"], list):
        raise bad_request("`messages` must be an array", param="messages")
    system, messages = _messages(payload["messages"])
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": _max_tokens(payload, default_max_tokens),
        "messages": messages,
    }
    if system:
        body["system"] = system
    if stream:
        body["stream"] = True
    stop = _stop_sequences(payload.get("stop"))
    if stop:
        body["stop_sequences"] = stop
    temperature = payload.get("temperature")
    if temperature is not None:
        if not _is_number(temperature) or not 0 <= temperature <= 1:
            raise bad_request(
                f"`temperature` must be between 0 and 1 for provider {provider} (Anthropic); "
                "lower it, or list `temperature` in the provider's drop_params",
                param="temperature",
            )
        body["temperature"] = temperature
    top_p = payload.get("top_p")
    if top_p is not None:
        if not _is_number(top_p):
            raise bad_request("`top_p` must be a number", param="top_p")
        body["top_p"] = top_p
    user = payload.get("user")
    if isinstance(user, str) and user:
        body["metadata"] = {"user_id": user}
    tools, tool_choice, json_mode = _tools(payload)
    if tools:
        body["tools"] = tools
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    return AnthropicRequest(body=body, json_mode=json_mode)


def _refuse_unsupported(payload: dict[str, Any], provider: str) -> None:
    for name, neutral in _UNSUPPORTED.items():
        value = payload.get(name)
        if value is None or value in neutral:
            continue
        raise unsupported_parameter(provider, "Anthropic", name)


def _max_tokens(payload: dict[str, Any], default: int) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = payload.get(name)
        if value is not None:
            if not _is_number(value) or value != int(value):
                raise bad_request(f"`{name}` must be an integer", param=name)
            if value < 1:
                raise bad_request(f"`{name}` must be at least 1", param=name)
            return int(value)
    return default


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _stop_sequences(stop: Any) -> list[str]:
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return [s for s in stop if s]
    raise bad_request("`stop` must be a string or an array of strings", param="stop")


# --- messages ----------------------------------------------------------------------------


def _messages(raw: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    """System and developer messages become `system`; the rest alternating turns."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad_request(f"`{where}` must be an object", param=where)
        role = message.get("role")
        if role in ("system", "developer"):
            text = _plain_text(message.get("content"), where)
            if text:
                system.append(text)
            continue
        if role == "user":
            blocks = _user_blocks(message.get("content"), where)
            anthropic_role = "user"
        elif role == "assistant":
            blocks = _assistant_blocks(message, where)
            anthropic_role = "assistant"
        elif role == "tool":
            blocks = [_tool_result(message, where)]
            anthropic_role = "user"
        else:
            raise bad_request(
                f"`{where}.role` must be system, developer, user, assistant or tool "
                f"(got {role!r}); legacy `function` messages are not supported",
                param=f"{where}.role",
            )
        if not blocks:
            continue  # an empty turn: Anthropic refuses empty content, and it says nothing
        if turns and turns[-1]["role"] == anthropic_role:
            turns[-1]["content"].extend(blocks)  # the Messages API wants alternating turns
        else:
            turns.append({"role": anthropic_role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":
            # Tool results must lead their user turn; a stable sort keeps each group's order.
            turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    if not turns:
        raise bad_request(
            "`messages` needs at least one user or assistant message with content",
            param="messages",
        )
    return "\n\n".join(system), turns


def _plain_text(content: Any, where: str) -> str:
    """Content that may only hold text (system, developer, tool messages)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                raise bad_request(
                    f"`{where}.content[{j}]` must be a text part here",
                    param=f"{where}.content[{j}]",
                )
            texts.append(_text_of(part, f"{where}.content[{j}]"))
        return "\n".join(t for t in texts if t)
    raise bad_request(f"`{where}.content` must be a string or an array", param=f"{where}.content")


def _text_of(part: dict[str, Any], where: str) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise bad_request(f"`{where}.text` must be a string", param=f"{where}.text")
    return text


def _user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise bad_request(
            f"`{where}.content` must be a string or an array of parts", param=f"{where}.content"
        )
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text = _text_of(part, at)
            if text:
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url":
            blocks.append(_image_block(part.get("image_url"), at))
        else:
            raise bad_request(
                f"`{at}` is a {kind!r} part; Anthropic accepts only text and image_url parts",
                param=at,
            )
    return blocks


def _image_block(image: Any, where: str) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise bad_request(f"`{where}.image_url.url` must be a string", param=f"{where}.image_url")
    if url.startswith("https://"):
        return {"type": "image", "source": {"type": "url", "url": url}}
    match = _DATA_URL.match(url)
    if match is None:
        raise bad_request(
            f"`{where}.image_url.url` must be an https URL or a base64 data URL "
            "(data:image/png;base64,...)",
            param=f"{where}.image_url",
        )
    media_type = match["media"].lower()
    if media_type not in _IMAGE_MEDIA_TYPES:
        raise bad_request(
            f"`{where}` is {media_type}; Anthropic accepts {', '.join(_IMAGE_MEDIA_TYPES)}",
            param=f"{where}.image_url",
        )
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": media_type, "data": match["data"]},
    }


def _assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    content = message.get("content")
    if isinstance(content, list):
        # An assistant turn may carry refusal parts; they are what the model said.
        for j, part in enumerate(content):
            at = f"{where}.content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in ("text", "refusal"):
                raise bad_request(f"`{at}` must be a text or refusal part", param=at)
            text = part.get(kind)
            if not isinstance(text, str):
                raise bad_request(f"`{at}.{kind}` must be a string", param=at)
            if text:
                blocks.append({"type": "text", "text": text})
    else:
        text = _plain_text(content, where)
        if text:
            blocks.append({"type": "text", "text": text})
    tool_calls = message.get("tool_calls") or []
    if not isinstance(tool_calls, list):
        raise bad_request(f"`{where}.tool_calls` must be an array", param=f"{where}.tool_calls")
    for k, call in enumerate(tool_calls):
        blocks.append(_tool_use(call, f"{where}.tool_calls[{k}]"))
    return blocks


def _tool_use(call: Any, where: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(call.get("id"), str):
        raise bad_request(f"`{where}` needs an `id` and a `function`", param=where)
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request(f"`{where}.function.name` must be a string", param=where)
    tool_input = tool_arguments(function.get("arguments"), where)
    return {"type": "tool_use", "id": call["id"], "name": name, "input": tool_input}


def _tool_result(message: dict[str, Any], where: str) -> dict[str, Any]:
    tool_call_id = message.get("tool_call_id")
    if not isinstance(tool_call_id, str) or not tool_call_id:
        raise bad_request(
            f"`{where}.tool_call_id` is required for a tool message", param=f"{where}.tool_call_id"
        )
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_call_id}
    text = _plain_text(message.get("content"), where)
    if text:
        block["content"] = text
    return block


# --- tools and JSON mode -------------------------------------------------------------------


def _tools(payload: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any] | None, bool]:
    """The `tools` and `tool_choice` to send, and whether the answer comes in JSON mode."""
    raw_tools = payload.get("tools") or []
    if not isinstance(raw_tools, list):
        raise bad_request("`tools` must be an array", param="tools")
    tools = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(raw_tools)]
    choice = _tool_choice(payload.get("tool_choice"), {t["name"] for t in tools})
    if choice is not None and not tools:
        raise bad_request("`tool_choice` needs `tools`", param="tool_choice")
    json_tool = _json_mode(payload.get("response_format"))
    # `required` and a named function make this turn a tool call: JSON mode has no say then.
    json_mode = json_tool is not None and (choice is None or choice["type"] in ("auto", "none"))
    if json_tool is not None and json_mode:
        if any(t["name"] == JSON_TOOL for t in tools):
            raise bad_request(
                f"a tool named {JSON_TOOL!r} clashes with JSON mode on Anthropic; rename it",
                param="tools",
            )
        if tools and (choice is None or choice["type"] == "auto"):
            # The client's tools stay callable; answering means calling the JSON tool.
            choice = {"type": "any"}
        else:
            choice = {"type": "tool", "name": JSON_TOOL}
        tools.append(json_tool)
    if payload.get("parallel_tool_calls") is False and tools:
        choice = choice or {"type": "auto"}
        if choice["type"] != "none":
            choice = {**choice, "disable_parallel_tool_use": True}
    return tools, choice, json_mode


def _tool(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        raise bad_request(f"`{where}` must be a function tool", param=where)
    function = tool.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise bad_request(f"`{where}.function.name` is required", param=f"{where}.function")
    name = function["name"]
    schema = function.get("parameters") or {"type": "object", "properties": {}}
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise bad_request(
            f"`{where}.function.parameters` must be a JSON schema of type object",
            param=f"{where}.function.parameters",
        )
    out: dict[str, Any] = {"name": name, "input_schema": {"type": "object", **schema}}
    description = function.get("description")
    if isinstance(description, str) and description:
        out["description"] = description
    return out


def _tool_choice(choice: Any, names: set[str]) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"type": "auto"}
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str):
            raise bad_request(
                "`tool_choice.function` must be an object with a string `name`: "
                '{"type": "function", "function": {"name": ...}}',
                param="tool_choice.function",
            )
        if name in names:
            return {"type": "tool", "name": name}
        raise bad_request(
            f"`tool_choice` names the function {name!r}, which is not in `tools`",
            param="tool_choice",
        )
    raise bad_request(
        '`tool_choice` must be "auto", "none", "required" or {"type": "function", ...}',
        param="tool_choice",
    )


def _json_mode(response_format: Any) -> dict[str, Any] | None:
    """The tool that carries a JSON answer, or None when the answer is plain text.

    The classic Messages API has no JSON mode. Forcing a tool call makes the answer a
    JSON object matching the schema (Claude is trained to fill tool inputs to their
    schema, and the tool's input is always an object); a system instruction could still
    let prose or a code fence around the JSON through.
    """
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {
            "name": JSON_TOOL,
            "description": "Give your whole answer as a JSON object by calling this tool.",
            "input_schema": {"type": "object"},
        }
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict):
            raise bad_request(
                "`response_format.json_schema` must be an object", param="response_format"
            )
        schema = spec.get("schema") or {"type": "object"}
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise bad_request(
                "`response_format.json_schema.schema` must have a root of type object on "
                "Anthropic (the answer is a tool's input, which is always an object)",
                param="response_format",
            )
        purpose = next(
            (p for p in (spec.get("description"), spec.get("name")) if isinstance(p, str) and p),
            "the answer",
        )
        return {
            "name": JSON_TOOL,
            "description": f"Give your whole answer by calling this tool ({purpose}).",
            "input_schema": schema,
        }
    raise bad_request(
        '`response_format.type` must be "text", "json_object" or "json_schema"',
        param="response_format",
    )
