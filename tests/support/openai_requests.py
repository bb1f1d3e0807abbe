"""Valid requests from OpenAI's own request schemas, for property tests.

`CreateChatCompletionRequest`, `CreateCompletionRequest` and `CreateEmbeddingRequest` of
../shared/specs/openai-openapi.yaml (see its README), `$ref`s resolved into one schema
each (`request_schema`: what a request must satisfy), then trimmed for generation
(`generation_schema`): small, fast, and only fields providers accept, with a chosen field
(`FOCUS`) made sure to be there so that rare fields come up as often as common ones.
`requests(schema_name, focus, native)` is the hypothesis-jsonschema strategy (`native`:
without what only OpenAI's own API takes); `string_leaves` lists where a request holds
text a client chose, values and made-up keys.
"""

from __future__ import annotations

import copy
import json
import types
from collections.abc import Iterator
from functools import cache
from typing import Any

import jsonschema
import yaml
from harness import ROOT
from hypothesis import strategies as st
from hypothesis.internal.conjecture import utils as conjecture_utils
from hypothesis_jsonschema import _from_schema as hypothesis_jsonschema_internals
from hypothesis_jsonschema import from_schema

SPEC = ROOT.parent / "shared" / "specs" / "openai-openapi.yaml"

# Two adjustments to hypothesis-jsonschema 0.23, in its own module only:
# - it draws object properties with `many.more()`, which newer Hypothesis replaced by
#   iteration: give it the old interface;
# - it builds the strategy of an object's property anew, canonicalising its whole schema,
#   each time it draws one (most of the time a big request took): build each once. The
#   schemas it passes are parts of its canonical schema, alive as long as the strategy,
#   so their identity is a key (kept alive in the cache with the strategy).
_internals: Any = hypothesis_jsonschema_internals
if not hasattr(conjecture_utils.many, "more"):

    class _StepwiseMany(conjecture_utils.many):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.__enter__()
            self._steps = iter(self)

        def more(self) -> bool:
            if next(self._steps, False) is None:
                return True
            self.__exit__(None)
            return False

    _internals.cu = types.SimpleNamespace(many=_StepwiseMany)

_build_merged = _internals.merged_as_strategies
_merged: dict[tuple[int, ...], tuple[Any, ...]] = {}


def _merged_once(schemas: list[Any], *, alphabet: Any, custom_formats: Any) -> Any:
    key = (*map(id, schemas), id(alphabet), id(custom_formats))
    if key not in _merged:
        built = _build_merged(schemas, alphabet=alphabet, custom_formats=custom_formats)
        _merged[key] = (schemas, alphabet, custom_formats, built)
    return _merged[key][-1]


_internals.merged_as_strategies = _merged_once


# -- OpenAI's request schemas, resolved and trimmed ----------------------------------------

_ANNOTATIONS = {"description", "example", "examples", "title", "deprecated", "default",
                "discriminator", "readOnly", "writeOnly", "externalDocs", "nullable"}  # fmt: skip


@cache
def _components() -> dict[str, Any]:
    with open(SPEC) as f:
        spec = yaml.load(f, Loader=yaml.CSafeLoader)
    schemas: dict[str, Any] = spec["components"]["schemas"]
    return schemas


def _resolve(node: Any, stack: tuple[str, ...] = ()) -> Any:
    """`node` with every `$ref` inlined (a recursive one cut to `{}`), annotations gone."""
    if isinstance(node, list):
        return [_resolve(item, stack) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        inner = {} if name in stack else _resolve(_components()[name], (*stack, name))
        rest = _resolve({k: v for k, v in node.items() if k != "$ref"}, stack)
        return {**inner, **rest}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _ANNOTATIONS or key.startswith("x-"):
            continue
        if key in ("properties", "patternProperties"):
            out[key] = {name: _resolve(sub, stack) for name, sub in value.items()}
        else:
            out[key] = _resolve(value, stack)
    return out


def _flatten(schema: dict[str, Any]) -> dict[str, Any]:
    """A request whose top level is `allOf` of objects, as one object."""
    if "allOf" not in schema:
        return schema
    merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
    for part in schema["allOf"]:
        part = _flatten(part)
        merged["properties"].update(part.get("properties", {}))
        merged["required"] += part.get("required", [])
    return merged


@cache
def request_schema(name: str) -> dict[str, Any]:
    """The spec's request schema, resolved: what a planted request must still satisfy."""
    return _flatten(_resolve(_components()[name]))


# A tool's parameters and a JSON-schema response format are "any object" in the spec; as
# clients send them they are JSON Schemas, whose descriptions are free text.
_PARAMETERS = {
    "type": "object",
    "properties": {
        "type": {"const": "object"},
        "description": {"type": "string"},
        "properties": {
            "type": "object",
            "maxProperties": 2,
            "patternProperties": {
                "^[a-z][a-z_]{0,11}$": {
                    "type": "object",
                    "properties": {
                        "type": {"enum": ["string", "integer", "boolean"]},
                        "description": {"type": "string"},
                    },
                    "required": ["type"],
                    "additionalProperties": False,
                }
            },
            "additionalProperties": False,
        },
    },
    "required": ["type", "properties"],
    "additionalProperties": False,
}
_NAME = {"type": "string", "pattern": "^[a-zA-Z][a-zA-Z0-9_-]{0,15}$"}
_IMAGE_URL = {"type": "string", "pattern": "^https://example\\.com/[a-z]{1,8}\\.(png|jpg)$"}
# What each endpoint's generated requests may carry: the fields that hold text, and a few
# knobs every provider accepts. The rest (audio, logprobs, n, seed, service tier...) only
# makes providers refuse the request, which proves nothing here.
_KEEP = {
    "CreateChatCompletionRequest": {
        "messages", "metadata", "user", "safety_identifier", "prompt_cache_key", "stop",
        "response_format", "prediction", "tools", "tool_choice", "functions", "function_call",
        "temperature", "max_completion_tokens",
    },
    "CreateCompletionRequest": {"prompt", "suffix", "stop", "user", "max_tokens", "temperature"},
    "CreateEmbeddingRequest": {"input", "user", "encoding_format"},
}  # fmt: skip
_BOUNDS = {"temperature": (0, 1), "max_completion_tokens": (1, 64), "max_tokens": (1, 64)}


def _property(name: str, schema: Any) -> Any:
    if isinstance(schema, dict) and schema.get("type") == "string":
        if name == "name":
            return _NAME
        if name == "url":  # an image: providers take https or data URLs
            return _IMAGE_URL
    return _trim(schema, name)


def _trim(node: Any, key: str | None = None) -> Any:
    """Small, fast to generate: `oneOf` as `anyOf` (its branches are told apart by a
    `type` or `role` anyway), no keys the spec does not name, arrays of at most three
    items, short strings, names as the API documents them, tool parameters and response
    schemas as JSON Schemas."""
    if isinstance(node, list):
        return [_trim(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("type") == "object" and node.get("additionalProperties") is True:
        return copy.deepcopy(_PARAMETERS)
    out: dict[str, Any] = {}
    for name, value in node.items():
        if name == "properties":
            out[name] = {p: _property(p, sub) for p, sub in value.items()}
        elif name == "oneOf":
            out["anyOf"] = _trim(value)
        else:
            out[name] = _trim(value)
    if out.get("type") == "array":
        out["maxItems"] = min(out.get("maxItems", 3), 3)
    if out.get("type") == "string" and not {"enum", "const", "pattern"} & set(out):
        out["maxLength"] = min(out.get("maxLength", 16), 16)
        out.pop("format", None)
    if out.get("type") == "integer":  # token ids, counts: what a tokenizer could give
        out["minimum"] = max(out.get("minimum", 0), 0)
        out["maximum"] = min(out.get("maximum", 50_000), 50_000)
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False  # no made-up keys: the spec's fields only
    if out.get("type") == "object" and isinstance(out.get("additionalProperties"), dict):
        out["maxProperties"] = 2
    if key in _BOUNDS:
        low, high = _BOUNDS[key]
        return {"type": "integer" if key != "temperature" else "number",
                "minimum": low, "maximum": high}  # fmt: skip
    return out


# Per endpoint, the fields a case makes sure its request has, so that rare fields are
# planted in as often as common ones: a top-level field, or a kind of chat message.
FOCUS = {
    "chat": ("messages", "tools", "functions", "response_format", "prediction", "metadata",
             "stop", "user", "safety_identifier", "prompt_cache_key", "tool_calls", "name"),
    "completions": ("prompt", "suffix", "stop", "user"),
    "embeddings": ("input", "user"),
}  # fmt: skip


def _branch(schema: dict[str, Any], test: Any) -> dict[str, Any]:
    """The one `anyOf` branch of `schema` that passes `test`."""
    return next(b for b in schema["anyOf"] if test(b))


def _openai_only(branch: Any) -> bool:
    """Legacy `function` messages, custom (grammar) tools, audio and file parts: OpenAI's
    own, which the Anthropic and Mistral adapters refuse."""
    if not isinstance(branch, dict):
        return False
    properties = branch.get("properties") or {}
    role, kind = (properties.get(k, {}).get("enum") for k in ("role", "type"))
    return role == ["function"] or kind in (["custom"], ["allowed_tools"], ["input_audio"],
                                            ["file"])  # fmt: skip


def _without_openai_only(node: Any) -> Any:
    if isinstance(node, list):
        return [_without_openai_only(item) for item in node if not _openai_only(item)]
    if isinstance(node, dict):
        return {k: _without_openai_only(v) for k, v in node.items()}
    return node


@cache
def generation_schema(name: str, focus: str, native: bool = False) -> dict[str, Any]:
    """`native`: for a provider that translates the request rather than forwarding it."""
    full = request_schema(name)
    keep = _KEEP[name]
    properties = _trim({k: v for k, v in full["properties"].items() if k in keep})
    if native:
        properties = _without_openai_only(properties)
    required = [k for k in full.get("required", []) if k in keep]
    if focus in properties and focus not in required:
        required.append(focus)
        wanted = properties[focus]
        if focus == "response_format":
            wanted = _branch(wanted, lambda b: "json_schema" in b.get("properties", {}))
        elif "anyOf" in wanted:  # not the null branch
            wanted = {"anyOf": [b for b in wanted["anyOf"] if b.get("type") != "null"]}
        if wanted.get("type") == "array":
            wanted = {**wanted, "minItems": 1}
        if wanted.get("type") == "object" or focus == "metadata":
            wanted = (
                _branch(wanted, lambda b: b.get("type") == "object")
                if "anyOf" in wanted
                else wanted
            )
            wanted = {**wanted, "minProperties": 1}
        properties[focus] = wanted
    if "messages" in properties:
        properties["messages"]["minItems"] = 1
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}  # fmt: skip


@cache
def message_schema(focus: str, native: bool = False) -> dict[str, Any]:
    """A chat message that carries `focus`: an assistant turn with function tool calls,
    or a user turn with a `name`."""
    messages = generation_schema("CreateChatCompletionRequest", "messages", native)
    branches = messages["properties"]["messages"]["items"]["anyOf"]
    if focus == "tool_calls":
        turn = _branch(
            {"anyOf": branches}, lambda b: b["properties"]["role"]["enum"] == ["assistant"]
        )
        calls = copy.deepcopy(turn["properties"]["tool_calls"])
        calls["items"] = _branch(calls["items"], lambda b: "function" in b["properties"])
        calls["minItems"] = 1
        return {**turn, "properties": {**turn["properties"], "tool_calls": calls},
                "required": ["role", "tool_calls"]}  # fmt: skip
    turn = _branch({"anyOf": branches}, lambda b: b["properties"]["role"]["enum"] == ["user"])
    return {**turn, "required": [*turn["required"], "name"]}


@cache
def enum_keys() -> frozenset[str]:
    """Keys whose string values are enumerated somewhere in the spec (roles, types,
    modes...): a value planted there makes the request invalid, so none is."""
    found = {"model"}

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for name, sub in (node.get("properties") or {}).items():
                branches = sub.get("anyOf", []) + sub.get("oneOf", []) + [sub]
                if any("enum" in b or "const" in b for b in branches if isinstance(b, dict)):
                    found.add(name)
            for value in node.values():
                walk(value)

    for name in _KEEP:
        walk(request_schema(name))
    return frozenset(found)


Path = tuple[str | int, ...]
# Objects whose keys the client makes up: `metadata`, and a JSON schema's `properties`.
_FREE_KEYS = ("metadata", "properties")


class Key(str):
    """The last step of a path that names a dict key itself, not its value."""


def string_leaves(value: Any, path: Path = ()) -> Iterator[Path]:
    """Paths of every string a client chose: values (enumerated ones not), and the keys
    of `metadata` and of JSON schemas' `properties`."""
    if isinstance(value, dict):
        free = bool(path) and path[-1] in _FREE_KEYS
        for key, item in value.items():
            if free:
                yield (*path, Key(key))
            if isinstance(item, str) and key in enum_keys() and not free:
                continue
            yield from string_leaves(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from string_leaves(item, (*path, i))
    elif isinstance(value, str):
        yield path


def field_of(path: Path) -> str:
    """`messages.3.tool_calls.0.function.arguments` → `messages[].tool_calls[].function.arguments`;
    a made-up key reads `*`, a planted key `<key>`."""
    out, previous = "", None
    for part in path:
        if isinstance(part, int):
            out += "[]"
        elif isinstance(part, Key):
            out += ".<key>"
        else:
            out += ".*" if previous in _FREE_KEYS else f".{part}"
        previous = part
    return out.lstrip(".")


def get_at(value: Any, path: Path) -> Any:
    for part in path:
        if isinstance(part, Key):
            return str(part)
        value = value[part]
    return value


def put_at(value: Any, path: Path, new: Any) -> None:
    parent, last = get_at(value, path[:-1]), path[-1]
    if isinstance(last, Key):  # rename the key, its value kept
        parent[new] = parent.pop(str(last))
    else:
        parent[last] = new


def is_arguments(path: Path) -> bool:
    """Tool-call or legacy function-call arguments: JSON text in a string."""
    return len(path) >= 2 and path[-1] == "arguments" and path[-2] in ("function", "function_call")


def json_arguments(request: dict[str, Any]) -> None:
    """Tool-call arguments are JSON text in every real request; the schema says string."""
    for path in list(string_leaves(request)):
        if is_arguments(path):
            put_at(request, path, json.dumps({"q": get_at(request, path)}))


@cache
def requests(schema_name: str, focus: str, native: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Requests of `schema_name` that carry `focus`; `message` for a chat message."""
    if schema_name == "message":
        schema = message_schema(focus, native)
    else:
        schema = generation_schema(schema_name, focus, native)
    return from_schema(schema).map(_as_object)


def _as_object(value: Any) -> dict[str, Any]:
    assert isinstance(value, dict)
    return value


def fit_for_translation(request: dict[str, Any]) -> None:
    """What providers that translate the request check: a tool result answers a call made
    before it (its `tool_call_id` becomes the last call's id; one with no call before it
    goes), and some user turn has text."""
    messages, last_call = [], None
    for message in request.get("messages", []):
        for call in message.get("tool_calls") or []:
            last_call = call.get("id", last_call)
        if message.get("role") == "tool":
            if last_call is None:
                continue
            message["tool_call_id"] = last_call
        messages.append(message)
    if "messages" in request:
        if not any(m.get("role") == "user" and m.get("content") for m in messages):
            messages.append({"role": "user", "content": "Hello"})
        request["messages"] = messages


@cache
def validator(schema_name: str) -> jsonschema.Draft202012Validator:
    """Checks a request against the spec's schema, untrimmed."""
    return jsonschema.Draft202012Validator(request_schema(schema_name))
