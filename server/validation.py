"""What a request must look like before anything reads it: OpenAI's request schemas.

The shapes and ranges of ../shared/specs/openai-openapi.yaml (`CreateChatCompletionRequest`,
`CreateCompletionRequest`, `CreateEmbeddingRequest`) for every field the gateway, its
provider translators or an engine reads. A wrong type, a value out of its documented range
or a missing required field is a 400 that names the field in `param` and says, in
`code`, what is wrong with it, with the codes OpenAI's own API uses. Fields the spec does
not name pass untouched: local engines take their own (vLLM's `top_k`, `video_url` parts).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import orjson

from spillgate.errors import GatewayError, bad_request
from spillgate.protocol import Endpoint

#: JSON nested deeper than this is refused: it is as deep as orjson writes, and the body is
#: written again for cloud targets and renamed models (the Python walkers after it, privacy
#: scan and schema translation, take that much too).
MAX_NESTING = 254
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: `input` of an embeddings request: at most this many items (OpenAI's documented limit).
MAX_EMBEDDING_INPUTS = 2048

_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_TEXT_ONLY_ROLES = ("system", "developer", "tool")
#: Roles whose message may be a role and text alone (a tool message also needs its call).
_PLAIN_ROLES = frozenset(("system", "developer", "user", "assistant"))
_TOOL_CHOICES = ("none", "auto", "required")
#: `structural_tag` is vLLM's own; the other three are OpenAI's.
_RESPONSE_FORMATS = ("text", "json_object", "json_schema", "structural_tag")


def _type_error(param: str, wanted: str) -> GatewayError:
    return bad_request(f"`{param}` must be {wanted}", param=param, code="invalid_type")


def _missing(param: str, why: str = "") -> GatewayError:
    return bad_request(
        f"`{param}` is required{why}", param=param, code="missing_required_parameter"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


#: A field's check: its value (never null: null is the field left out) and its name.
Check = Callable[[Any, str], None]


def _int(low: int, high: int | None = None) -> Check:
    def check(value: Any, name: str) -> None:
        if not _is_int(value):
            raise _type_error(name, "an integer")
        if value < low:
            raise bad_request(
                f"`{name}` must be at least {low}, got {value}",
                param=name,
                code="integer_below_min_value",
            )
        if high is not None and value > high:
            raise bad_request(
                f"`{name}` must be at most {high}, got {value}",
                param=name,
                code="integer_above_max_value",
            )

    return check


def _number(low: float, high: float) -> Check:
    def check(value: Any, name: str) -> None:
        if not _is_number(value):
            raise _type_error(name, "a number")
        if not low <= value <= high:
            code = "decimal_below_min_value" if value < low else "decimal_above_max_value"
            raise bad_request(
                f"`{name}` must be between {low:g} and {high:g}, got {value:g}",
                param=name,
                code=code,
            )

    return check


def _of(kind: type, wanted: str) -> Check:
    def check(value: Any, name: str) -> None:
        _check_type(value, name, kind, wanted)

    return check


def _one_of(*allowed: str) -> Check:
    def check(value: Any, name: str) -> None:
        _check_choice(value, name, allowed)

    return check


def _check_type(value: Any, param: str, kind: type, wanted: str) -> None:
    """`value`, when given (not null), is of `kind` (never int: a boolean would pass)."""
    if value is not None and not isinstance(value, kind):
        raise _type_error(param, wanted)


def _check_choice(value: Any, param: str, allowed: Collection[str]) -> None:
    if value is not None and (not isinstance(value, str) or value not in allowed):
        raise bad_request(
            f"`{param}` must be one of {', '.join(allowed)}", param=param, code="invalid_value"
        )


def _check_string(value: Any, param: str) -> None:
    """A required string."""
    if value is None:
        raise _missing(param)
    if not isinstance(value, str):
        raise _type_error(param, "a string")


def nested_too_deep(payload: Any) -> bool:
    """More than `MAX_NESTING` levels of objects and arrays. Writing the parsed value is
    the fastest way to know: orjson writes 10 KB in about a microsecond, where counting
    the body's brackets read it at a byte a step, ten times slower."""
    try:
        orjson.dumps(payload)
    except orjson.JSONEncodeError:  # parsed JSON fails to write only for its depth
        return True
    return False


def check_request(payload: dict[str, Any], endpoint: Endpoint) -> None:
    """Raise a 400 `GatewayError` naming the first field that breaks OpenAI's schema."""
    checks = _FIELDS[endpoint]
    for name, value in payload.items():  # only the fields sent: most requests send few
        check = checks.get(name)
        if check is not None and value is not None:
            check(value, name)
    if endpoint is Endpoint.CHAT:
        _check_messages(payload["messages"])
    elif endpoint is Endpoint.COMPLETIONS:
        _check_completions(payload)
    else:
        _check_embeddings(payload)


def _check_stop(stop: Any, name: str) -> None:
    if isinstance(stop, str):
        return
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _type_error("stop", "a string or an array of strings")


def _check_stream_options(options: Any, name: str) -> None:
    _check_type(options, "stream_options", dict, "an object")
    for key in ("include_usage", "include_obfuscation"):
        _check_type(options.get(key), f"stream_options.{key}", bool, "true or false")


def _check_logit_bias(bias: Any, name: str) -> None:
    _check_type(bias, "logit_bias", dict, "an object of token ids to numbers")
    for token, value in bias.items():
        if not _is_number(value) or not -100 <= value <= 100:
            raise bad_request(
                f"`logit_bias[{token!r}]` must be a number between -100 and 100",
                param="logit_bias",
                code="invalid_value",
            )


# -- completions and embeddings ---------------------------------------------------------------


def _check_completions(payload: dict[str, Any]) -> None:
    _check_inputs(payload["prompt"], "prompt", None)
    best_of, n = payload.get("best_of"), payload.get("n")
    if best_of is not None and n is not None and best_of < n:
        raise bad_request(
            f"`best_of` ({best_of}) must be at least `n` ({n})",
            param="best_of",
            code="invalid_value",
        )


def _check_embeddings(payload: dict[str, Any]) -> None:
    value = payload["input"]
    if value == "":
        raise bad_request(
            "`input` must not be an empty string", param="input", code="invalid_value"
        )
    _check_inputs(value, "input", MAX_EMBEDDING_INPUTS)


def _check_inputs(value: Any, param: str, most: int | None) -> None:
    """A string, or a non-empty array of strings, of token ids, or of arrays of token ids."""
    if isinstance(value, str):
        return
    wanted = "a string, or an array of strings, of token ids or of arrays of token ids"
    if not value:
        raise bad_request(f"`{param}` must not be an empty array", param=param, code="empty_array")
    if most is not None and len(value) > most:
        raise bad_request(
            f"`{param}` may hold at most {most} items, got {len(value)}",
            param=param,
            code="array_above_max_length",
        )
    first = value[0]
    if isinstance(first, str):
        ok = all(isinstance(v, str) for v in value)
    elif _is_int(first):
        ok = all(_is_int(v) for v in value)
    else:
        ok = all(isinstance(v, list) and v and all(_is_int(t) for t in v) for v in value)
    if not ok:
        raise _type_error(param, wanted)


# -- chat -------------------------------------------------------------------------------------


def _check_messages(messages: list[Any]) -> None:
    if not messages:
        raise bad_request(
            "`messages` must hold at least one message", param="messages", code="empty_array"
        )
    for i, message in enumerate(messages):
        _check_message(message, f"messages[{i}]")


def _check_message(message: Any, where: str) -> None:
    if isinstance(message, dict) and len(message) == 2:
        # Most messages are a role and text: one look, as this runs for every message.
        role, content = message.get("role"), message.get("content")
        if type(role) is str and role in _PLAIN_ROLES and type(content) is str:
            return
    if not isinstance(message, dict):
        raise _type_error(where, "an object")
    role = message.get("role")
    if role is None:
        raise _missing(f"{where}.role")
    if not isinstance(role, str) or role not in _ROLES:
        raise bad_request(
            f"`{where}.role` must be one of {', '.join(_ROLES)}",
            param=f"{where}.role",
            code="invalid_value",
        )
    _check_type(message.get("name"), f"{where}.name", str, "a string")
    content = message.get("content")
    if content is None and role not in ("assistant", "function"):
        raise _missing(f"{where}.content", f" in a {role} message")
    if content is not None:
        _check_content(content, f"{where}.content", role)
    if role == "tool":
        _check_string(message.get("tool_call_id"), f"{where}.tool_call_id")
    if role == "function":
        _check_string(message.get("name"), f"{where}.name")
    _check_type(message.get("refusal"), f"{where}.refusal", str, "a string")
    _check_tool_calls(message.get("tool_calls"), f"{where}.tool_calls")
    call = message.get("function_call")
    if call is not None:
        _check_function(call, f"{where}.function_call")


def _check_content(content: Any, where: str, role: str) -> None:
    if isinstance(content, str):
        return
    if role == "function" or not isinstance(content, list):
        raise _type_error(where, "a string" if role == "function" else "a string or an array")
    if not content:
        raise bad_request(f"`{where}` must hold at least one part", param=where, code="empty_array")
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        if not isinstance(part, dict):
            raise _type_error(at, "an object")
        kind = part.get("type")
        if not isinstance(kind, str):
            raise _missing(f"{at}.type")
        if kind == "text" or (kind == "refusal" and role == "assistant"):
            if not isinstance(part.get(kind), str):
                raise _type_error(f"{at}.{kind}", "a string")
        elif role in _TEXT_ONLY_ROLES or role == "assistant":
            allowed = "text or refusal parts" if role == "assistant" else "text parts"
            raise bad_request(
                f"`{at}` is a {kind!r} part; a {role} message holds only {allowed}",
                param=f"{at}.type",
                code="invalid_value",
            )
        elif kind == "image_url":
            _check_strings_object(part.get("image_url"), f"{at}.image_url", ("url",))
        elif kind == "input_audio":
            _check_strings_object(part.get("input_audio"), f"{at}.input_audio", ("data", "format"))
        elif kind == "file":
            _check_type(part.get("file"), f"{at}.file", dict, "an object")
            if part.get("file") is None:
                raise _missing(f"{at}.file")
        # Other part types (vLLM's video_url, audio_url...) are the engine's to judge.


def _check_strings_object(value: Any, param: str, fields: tuple[str, ...]) -> None:
    """`value` is an object whose `fields` are all strings."""
    if not isinstance(value, dict) or not all(isinstance(value.get(f), str) for f in fields):
        named = " and ".join(f"`{f}`" for f in fields)
        raise _type_error(param, f"an object with string {named}")


def _check_tool_calls(calls: Any, where: str) -> None:
    if calls is None:
        return
    if not isinstance(calls, list):
        raise _type_error(where, "an array of tool calls")
    for j, call in enumerate(calls):
        at = f"{where}[{j}]"
        if not isinstance(call, dict):
            raise _type_error(at, "an object")
        _check_string(call.get("id"), f"{at}.id")
        kind = call.get("type")
        if kind is None:
            kind = "function"
        if kind == "custom":
            _check_strings_object(call.get("custom"), f"{at}.custom", ("name", "input"))
        elif kind == "function":
            _check_function(call.get("function"), f"{at}.function")
        else:
            raise bad_request(
                f"`{at}.type` must be function or custom", param=f"{at}.type", code="invalid_value"
            )


def _check_function(function: Any, where: str) -> None:
    """A function call: its `name`, and its `arguments` as JSON text in a string."""
    if function is None:
        raise _missing(where)
    if not isinstance(function, dict):
        raise _type_error(where, "an object with `name` and `arguments`")
    _check_string(function.get("name"), f"{where}.name")
    arguments = function.get("arguments")
    if arguments is None:
        raise _missing(f"{where}.arguments", " (JSON text in a string; '{}' for none)")
    if not isinstance(arguments, str):
        # An object here is refused rather than guessed at: a provider adapter would
        # otherwise send it on as it is.
        raise bad_request(
            f"`{where}.arguments` must be a string of JSON text, not {_json_type(arguments)}",
            param=f"{where}.arguments",
            code="invalid_type",
        )


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "an object" if isinstance(value, dict) else "an array"


def _check_tools(tools: Any, name: str) -> None:
    if not isinstance(tools, list):
        raise _type_error("tools", "an array")
    for i, tool in enumerate(tools):
        at = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise _type_error(at, "an object")
        kind = tool.get("type")
        if kind == "function":
            _check_declaration(tool.get("function"), f"{at}.function")
        elif kind == "custom":
            custom = tool.get("custom")
            if not isinstance(custom, dict) or not isinstance(custom.get("name"), str):
                raise _type_error(f"{at}.custom", "an object with a string `name`")
        else:
            raise bad_request(
                f"`{at}.type` must be function or custom", param=f"{at}.type", code="invalid_value"
            )


def _check_declaration(function: Any, where: str) -> None:
    """A function a model may call: a name, and optionally a description and a schema."""
    if not isinstance(function, dict):
        raise _type_error(where, "an object with a `name`")
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise _type_error(f"{where}.name", "a non-empty string")
    _check_type(function.get("description"), f"{where}.description", str, "a string")
    _check_type(function.get("parameters"), f"{where}.parameters", dict, "a JSON schema object")
    _check_type(function.get("strict"), f"{where}.strict", bool, "true or false")


def _check_tool_choice(choice: Any, name: str) -> None:
    if isinstance(choice, str) and choice in _TOOL_CHOICES:
        return
    wanted = (
        'none, auto, required, {"type": "function", "function": {"name": ...}}, '
        '{"type": "allowed_tools", ...} or {"type": "custom", ...}'
    )
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in ("function", "custom"):
        named = choice.get(kind)
        if not isinstance(named, dict) or not isinstance(named.get("name"), str):
            raise _type_error(f"tool_choice.{kind}", "an object with a string `name`")
        return
    if kind == "allowed_tools":
        spec = choice.get("allowed_tools")
        if not isinstance(spec, dict):
            raise _type_error("tool_choice.allowed_tools", "an object with `mode` and `tools`")
        _check_choice(spec.get("mode"), "tool_choice.allowed_tools.mode", ("auto", "required"))
        tools = spec.get("tools")
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            raise _type_error("tool_choice.allowed_tools.tools", "an array of objects")
        return
    raise bad_request(f"`tool_choice` must be {wanted}", param="tool_choice", code="invalid_value")


def _check_functions(functions: Any, name: str) -> None:
    """The deprecated `functions`, which engines still take."""
    if not isinstance(functions, list):
        raise _type_error("functions", "an array")
    for i, function in enumerate(functions):
        _check_declaration(function, f"functions[{i}]")


def _check_function_call(call: Any, name: str) -> None:
    if call in ("none", "auto"):
        return
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        raise bad_request(
            '`function_call` must be none, auto or {"name": ...}',
            param="function_call",
            code="invalid_value",
        )


def _check_response_format(fmt: Any, name: str) -> None:
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in _RESPONSE_FORMATS:
        raise bad_request(
            "`response_format` must be an object whose `type` is text, json_object or json_schema",
            param="response_format",
            code="invalid_value",
        )
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise _type_error(
                "response_format.json_schema", "an object with a `name` and a `schema`"
            )
        _check_type(spec.get("schema"), "response_format.json_schema.schema", dict, "an object")
        _check_type(spec.get("strict"), "response_format.json_schema.strict", bool, "true or false")


_SAMPLING: dict[str, Check] = {
    "max_completion_tokens": _int(1),
    "n": _int(1, 128),
    "seed": _int(INT64_MIN, INT64_MAX),
    "temperature": _number(0, 2),
    "top_p": _number(0, 1),
    "presence_penalty": _number(-2, 2),
    "frequency_penalty": _number(-2, 2),
    "stop": _check_stop,
    "logit_bias": _check_logit_bias,
    "stream_options": _check_stream_options,
    "user": _of(str, "a string"),
}
_TRUE_OR_FALSE = _of(bool, "true or false")
_OBJECT = _of(dict, "an object")
_STRING = _of(str, "a string")
#: Per endpoint, the fields with a type or range to hold, beside the one it requires.
_FIELDS: dict[Endpoint, dict[str, Check]] = {
    Endpoint.CHAT: {
        **_SAMPLING,
        "max_tokens": _int(1),  # a chat answer of no tokens is not an answer
        "top_logprobs": _int(0, 20),
        "logprobs": _TRUE_OR_FALSE,
        "parallel_tool_calls": _TRUE_OR_FALSE,
        "store": _TRUE_OR_FALSE,
        "metadata": _OBJECT,
        "audio": _OBJECT,
        "prediction": _OBJECT,
        "web_search_options": _OBJECT,
        "safety_identifier": _STRING,
        "prompt_cache_key": _STRING,
        "reasoning_effort": _STRING,
        "service_tier": _STRING,
        "modalities": _of(list, "an array"),
        "response_format": _check_response_format,
        "tools": _check_tools,
        "tool_choice": _check_tool_choice,
        "functions": _check_functions,
        "function_call": _check_function_call,
    },
    Endpoint.COMPLETIONS: {
        **_SAMPLING,
        "max_tokens": _int(0),  # 0, with `echo`, scores the prompt alone
        "logprobs": _int(0, 5),
        "best_of": _int(0, 20),
        "echo": _TRUE_OR_FALSE,
        "suffix": _STRING,
    },
    Endpoint.EMBEDDINGS: {
        "dimensions": _int(1),
        "encoding_format": _one_of("float", "base64"),
        "user": _STRING,
    },
}
