"""Request checks for the fake providers, from the providers' documented schemas.

OpenAI: the official `openai` SDK's request types (`CompletionCreateParams`, generated from
OpenAI's OpenAPI spec) are validated with pydantic, every nested list included, and a
top-level key the spec lacks is refused as OpenAI refuses it. A Responses request is checked
against the spec itself (`CreateResponse` of ../shared/specs/openai-openapi.yaml), whose
schemas (`spec_validator`) also check the Responses objects and events the gateway writes.
Mistral: its chat-completions request as documented (the fields of the `mistralai` SDK's
`ChatCompletionRequest`; unknown fields are a 422, tool-call ids nine letters or digits).
Each check returns None, or (status, body) of the error the real provider would answer.
"""

from __future__ import annotations

import functools
import re
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from openai.types.chat import completion_create_params as openai_params
from openai.types.responses import response_create_params
from pydantic import TypeAdapter, ValidationError

Problem = tuple[int, dict[str, Any]]

_OPENAI_STREAMING = TypeAdapter(openai_params.CompletionCreateParamsStreaming)
_OPENAI_WHOLE = TypeAdapter(openai_params.CompletionCreateParamsNonStreaming)
OPENAI_KEYS = frozenset(typing.get_type_hints(openai_params.CompletionCreateParamsBase)) | {
    "stream"
}


def openai_error(message: str, param: str | None = None, code: str | None = None) -> Problem:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return 400, {"error": error}


def check_openai(body: dict[str, Any]) -> Problem | None:
    unknown = sorted(set(body) - OPENAI_KEYS)
    if unknown:
        return openai_error(f"Unrecognized request argument supplied: {unknown[0]}", unknown[0])
    if body.get("stream_options") is not None and not body.get("stream"):
        return openai_error(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    adapter = _OPENAI_STREAMING if body.get("stream") else _OPENAI_WHOLE
    try:
        _consume(adapter.validate_python(body))
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return openai_error(f"Invalid value at '{where}': {first['msg']}", where)
    return None


def _consume(value: Any) -> None:
    """pydantic checks `Iterable[...]` fields lazily: walk them so every item is validated."""
    if isinstance(value, dict):
        for item in value.values():
            _consume(item)
    elif isinstance(value, str | bytes | int | float | bool) or value is None:
        return
    elif isinstance(value, Iterable):
        for item in value:
            _consume(item)


# -- Mistral --------------------------------------------------------------------------------

MISTRAL_KEYS = frozenset(
    {
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "stream",
        "stop",
        "random_seed",
        "response_format",
        "tools",
        "tool_choice",
        "presence_penalty",
        "frequency_penalty",
        "n",
        "prediction",
        "parallel_tool_calls",
        "safe_prompt",
        "prompt_mode",
    }
)
_MISTRAL_MESSAGE_KEYS = {
    "system": {"role", "content"},
    "user": {"role", "content"},
    "assistant": {"role", "content", "tool_calls", "prefix"},
    "tool": {"role", "content", "tool_call_id", "name"},
}
_MISTRAL_TOOL_CHOICES = {"auto", "none", "any", "required"}
_MISTRAL_ID = re.compile(r"^[A-Za-z0-9]{9}$")


def _mistral_422(loc: list[Any], msg: str, kind: str = "extra_forbidden") -> Problem:
    detail = [{"type": kind, "loc": ["body", *loc], "msg": msg, "input": None}]
    return 422, {
        "object": "error",
        "message": {"detail": detail},
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def _mistral_400(message: str) -> Problem:
    return 400, {
        "object": "error",
        "message": message,
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def check_mistral(body: dict[str, Any]) -> Problem | None:
    for key in body:
        if key not in MISTRAL_KEYS:
            return _mistral_422([key], "Extra inputs are not permitted")
    if not isinstance(body.get("model"), str):
        return _mistral_422(["model"], "Field required", "missing")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _mistral_422(["messages"], "Field required", "missing")
    for i, message in enumerate(messages):
        problem = _mistral_message(i, message)
        if problem:
            return problem
    choice = body.get("tool_choice")
    if isinstance(choice, str) and choice not in _MISTRAL_TOOL_CHOICES:
        return _mistral_422(["tool_choice"], "Input should be 'auto', 'none', 'any' or 'required'")
    if isinstance(choice, dict) and not isinstance(choice.get("function", {}).get("name"), str):
        return _mistral_422(["tool_choice", "function", "name"], "Field required", "missing")
    fmt = body.get("response_format")
    if fmt is not None and fmt.get("type") not in ("text", "json_object", "json_schema"):
        return _mistral_422(["response_format", "type"], "Input should be 'text', ...")
    return None


def _mistral_message(i: int, message: Any) -> Problem | None:
    if not isinstance(message, dict):
        return _mistral_422(["messages", i], "Input should be a valid dictionary", "dict_type")
    role = message.get("role")
    allowed = _MISTRAL_MESSAGE_KEYS.get(role)  # type: ignore[arg-type]
    if allowed is None:
        return _mistral_422(["messages", i, "role"], f"Input tag '{role}' does not match")
    for key in message:
        if key not in allowed:
            return _mistral_422(["messages", i, str(role), key], "Extra inputs are not permitted")
    content = message.get("content")
    if isinstance(content, list):
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in ("text", "image_url", "document_url", "reference"):
                return _mistral_422(["messages", i, "content", j], f"Input tag '{kind}' unknown")
    for call in message.get("tool_calls") or []:
        if not _MISTRAL_ID.match(str(call.get("id", ""))):
            return _mistral_400(
                f"Tool call id was {call.get('id')} but must be a-z, A-Z, 0-9, with a length of 9."
            )
    if role == "tool" and not _MISTRAL_ID.match(str(message.get("tool_call_id", ""))):
        return _mistral_400(
            f"Tool call id was {message.get('tool_call_id')} but must be a-z, A-Z, 0-9, "
            "with a length of 9."
        )
    return None


# -- OpenAI's Responses API -------------------------------------------------------------------

#: OpenAI's published OpenAPI description (see its README): the Responses API's schemas.
SPEC = Path(__file__).resolve().parents[3].parent / "shared" / "specs" / "openai-openapi.yaml"
RESPONSES_KEYS = frozenset(
    typing.get_type_hints(response_create_params.ResponseCreateParamsBase)
) | {"stream"}


def _as_json_schema(schema: Any) -> Any:
    """The spec's OpenAPI dialect as plain JSON Schema: `nullable: true` (which the spec still
    uses in places) is a null alternative, and `oneOf` is `anyOf`, since the spec's unions
    overlap (a message with a `type` is both an `EasyInputMessage` and an `Item`) and OpenAI
    picks the first that fits."""
    if isinstance(schema, list):
        return [_as_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    plain = {
        "anyOf" if k == "oneOf" else k: _as_json_schema(v)
        for k, v in schema.items()
        if not (k == "nullable" and isinstance(v, bool))
    }
    return {"anyOf": [plain, {"type": "null"}]} if schema.get("nullable") is True else plain


@functools.cache
def _spec_components() -> dict[str, Any]:
    with open(SPEC) as f:
        spec = yaml.load(f, Loader=yaml.CSafeLoader)
    return {"schemas": _as_json_schema(spec["components"]["schemas"])}


@functools.cache
def spec_validator(component: str) -> jsonschema.protocols.Validator:
    """A validator of one of the spec's `components/schemas` (`Response`, `CreateResponse`,
    `ResponseStreamEvent`, ...)."""
    ref = {"$ref": f"#/components/schemas/{component}", "components": _spec_components()}
    return jsonschema.Draft202012Validator(ref)


def spec_problems(component: str, value: Any) -> list[str]:
    """What in `value` breaks the spec's `component` schema, one line per error (none: [])."""
    errors = spec_validator(component).iter_errors(value)
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]


def check_openai_responses(body: dict[str, Any]) -> Problem | None:
    """A Responses create request as OpenAI checks it: no key the API lacks, and the spec's
    `CreateResponse` schema."""
    unknown = sorted(set(body) - RESPONSES_KEYS)
    if unknown:
        return openai_error(f"Unknown parameter: '{unknown[0]}'.", unknown[0], "unknown_parameter")
    if not isinstance(body.get("model"), str):
        return openai_error("Missing required parameter: 'model'.", "model")
    error = jsonschema.exceptions.best_match(spec_validator("CreateResponse").iter_errors(body))
    if error is not None:
        where = ".".join(map(str, error.absolute_path)) or None
        return openai_error(f"Invalid value at '{where}': {error.message[:200]}", where)
    return None
