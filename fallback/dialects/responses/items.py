"""A Responses request's `input` items as chat messages.

Messages keep their role (`developer` too: every chat kind reads it); a run of
`function_call` items becomes the `tool_calls` of one assistant message (merged into the
assistant text before it, as chat writes a turn that says something and calls tools);
a `function_call_output` is a `tool` message; `reasoning` items are dropped, since chat has
no place for them. Whatever points at state kept at OpenAI (`item_reference`, uploaded
`file_id`s) or runs there (built-in tool calls) is a 400 naming the item in Responses terms.
"""

from __future__ import annotations

from typing import Any

from spillgate.errors import GatewayError, bad_request

_ROLES = ("user", "system", "developer", "assistant")
_DETAILS = ("auto", "low", "high")
#: Item types that only exist where OpenAI runs a built-in tool or keeps state.
_OPENAI_ONLY = "it refers to a tool or state that only OpenAI's own service has"


def chat_messages(items: Any, instructions: str | None) -> list[dict[str, Any]]:
    """`input` (a string, or an array of items) and `instructions` as chat messages."""
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
        return messages
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise _invalid_type(where, "an object (an input item)")
        kind = item.get("type")
        if kind == "message" or (kind is None and "role" in item):
            messages.append(_message(item, where))
        elif kind == "function_call":
            _add_call(messages, item, where)
        elif kind == "function_call_output":
            messages.append(_call_output(item, where))
        elif kind == "reasoning":
            continue
        elif kind == "item_reference":
            raise bad_request(
                f"`{where}.type` is item_reference, and Spillgate keeps no stored items: send "
                "the item itself in `input`",
                param=f"{where}.type",
                code="unsupported_parameter",
            )
        elif isinstance(kind, str):
            raise bad_request(
                f"`{where}.type` is not an input item Spillgate can pass on ({_OPENAI_ONLY}); "
                "it takes message, function_call, function_call_output and reasoning items",
                param=f"{where}.type",
                code="unsupported_parameter",
            )
        else:
            raise bad_request(
                f"`{where}.type` is required: message, function_call, function_call_output "
                "or reasoning",
                param=f"{where}.type",
                code="missing_required_parameter",
            )
    return messages


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in _ROLES:
        raise bad_request(
            f"`{where}.role` must be one of user, system, developer, assistant",
            param=f"{where}.role",
            code="invalid_value" if isinstance(role, str) else "invalid_type",
        )
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise _invalid_type(f"{where}.content", "a string or an array of content parts")
    if not content:
        raise bad_request(
            f"`{where}.content` must hold at least one content part",
            param=f"{where}.content",
            code="invalid_value",
        )
    if role == "assistant":
        return {"role": role, "content": _assistant_text(content, where)}
    parts = [_input_part(part, f"{where}.content[{j}]") for j, part in enumerate(content)]
    return {"role": role, "content": parts}


def _assistant_text(content: list[Any], where: str) -> str:
    """An earlier assistant turn's parts as one string: every chat kind takes that."""
    texts = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        if not isinstance(part, dict):
            raise _invalid_type(at, "an object (a content part)")
        kind = part.get("type")
        if kind in ("output_text", "input_text"):
            texts.append(_string(part, "text", at))
        elif kind == "refusal":
            texts.append(_string(part, "refusal", at))
        else:
            raise bad_request(
                f"`{at}.type` must be output_text or refusal in an assistant message",
                param=f"{at}.type",
                code="invalid_value",
            )
    return "".join(texts)


def _input_part(part: Any, at: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise _invalid_type(at, "an object (a content part)")
    kind = part.get("type")
    if kind == "input_text":
        return {"type": "text", "text": _string(part, "text", at)}
    if kind == "input_image":
        return _image(part, at)
    if kind == "input_file":
        return _file(part, at)
    raise bad_request(
        f"`{at}.type` must be input_text, input_image or input_file",
        param=f"{at}.type",
        code="invalid_value",
    )


def _image(part: dict[str, Any], at: str) -> dict[str, Any]:
    if part.get("file_id") is not None:
        raise _uploaded(f"{at}.file_id", "image", "`image_url` (an https URL or a data URL)")
    url = part.get("image_url")
    if url is None:
        raise bad_request(
            f"`{at}.image_url` is required (an https URL or a data URL)",
            param=f"{at}.image_url",
            code="missing_required_parameter",
        )
    if not isinstance(url, str) or not url.startswith(("http://", "https://", "data:")):
        raise bad_request(
            f"`{at}.image_url` must be an http(s) URL or a data URL",
            param=f"{at}.image_url",
            code="invalid_value" if isinstance(url, str) else "invalid_type",
        )
    image: dict[str, Any] = {"url": url}
    detail = part.get("detail")
    if detail is not None:
        if detail not in _DETAILS:
            raise bad_request(
                f"`{at}.detail` must be auto, low or high",
                param=f"{at}.detail",
                code="invalid_value",
            )
        image["detail"] = detail
    return {"type": "image_url", "image_url": image}


def _file(part: dict[str, Any], at: str) -> dict[str, Any]:
    """A file sent inline becomes chat's `file` part; one kept at OpenAI cannot travel."""
    for field in ("file_id", "file_url"):
        if part.get(field) is not None:
            raise _uploaded(f"{at}.{field}", "file", "`file_data` (a base64 data URL)")
    data = part.get("file_data")
    if data is None:
        raise bad_request(
            f"`{at}.file_data` is required (a base64 data URL)",
            param=f"{at}.file_data",
            code="missing_required_parameter",
        )
    if not isinstance(data, str) or not data.startswith("data:"):
        raise bad_request(
            f"`{at}.file_data` must be a base64 data URL (data:<type>;base64,<data>)",
            param=f"{at}.file_data",
            code="invalid_value" if isinstance(data, str) else "invalid_type",
        )
    file: dict[str, Any] = {"file_data": data}
    name = part.get("filename")
    if name is not None:
        file["filename"] = _string(part, "filename", at)
    return {"type": "file", "file": file}


def _add_call(messages: list[dict[str, Any]], item: dict[str, Any], where: str) -> None:
    call = {
        "id": _string(item, "call_id", where),
        "type": "function",
        "function": {
            "name": _string(item, "name", where),
            "arguments": _string(item, "arguments", where),
        },
    }
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant" and isinstance(last["content"], str | None):
        last.setdefault("tool_calls", []).append(call)
        if last["content"] == "":
            last["content"] = None
        return
    messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _call_output(item: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = _string(item, "call_id", where)
    output = item.get("output")
    if isinstance(output, list):
        output = _output_text(output, where)
    elif not isinstance(output, str):
        raise _invalid_type(f"{where}.output", "a string or an array of input_text parts")
    return {"role": "tool", "tool_call_id": call_id, "content": output}


def _output_text(parts: list[Any], where: str) -> str:
    """A tool's output given as parts: chat's tool messages carry text only."""
    texts = []
    for j, part in enumerate(parts):
        at = f"{where}.output[{j}]"
        if not isinstance(part, dict) or part.get("type") != "input_text":
            raise bad_request(
                f"`{at}` must be an input_text part: a tool's output reaches a chat "
                "provider as text only",
                param=at,
                code="invalid_value",
            )
        texts.append(_string(part, "text", at))
    return "".join(texts)


def _string(holder: dict[str, Any], name: str, where: str) -> str:
    value = holder.get(name)
    if value is None:
        raise bad_request(
            f"`{where}.{name}` is required",
            param=f"{where}.{name}",
            code="missing_required_parameter",
        )
    if not isinstance(value, str):
        raise _invalid_type(f"{where}.{name}", "a string")
    return value


def _uploaded(field: str, what: str, instead: str) -> GatewayError:
    return bad_request(
        f"`{field}` names a {what} uploaded to OpenAI, which Spillgate cannot fetch; send the "
        f"{what} itself as {instead}",
        param=field,
        code="unsupported_parameter",
    )


def _invalid_type(field: str, expected: str) -> GatewayError:
    return bad_request(f"`{field}` must be {expected}", param=field, code="invalid_type")
