"""JSON Schema (as OpenAI clients send it) → the schema dialects the Gemini API accepts.

Function parameters go out as Gemini's `Schema` object, an OpenAPI 3.0 subset: upper-case
`type`, `nullable` instead of `"null"` types, no `$ref`, no `additionalProperties`. Structured
output goes out as `responseJsonSchema`, which takes JSON Schema but documents only a list
of keywords. Both converters keep what the dialect knows and drop the rest, the same choices
the official `google-genai` SDK makes for the Gemini Developer API.
"""

from __future__ import annotations

from typing import Any

from spillgate.errors import GatewayError, bad_request

# Gemini `Schema` fields (google.ai.generativelanguage.v1beta.Schema), besides the ones
# converted below (type, properties, items, anyOf, enum, format, required).
_SCHEMA_COPIED = (
    "title",
    "description",
    "nullable",
    "default",
    "example",
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minimum",
    "maximum",
    "propertyOrdering",
)
_TYPES = {"string", "number", "integer", "boolean", "array", "object", "null"}
# Gemini honours `format` only for these (type, format) pairs.
_FORMATS = {
    "STRING": {"enum", "date-time"},
    "NUMBER": {"float", "double"},
    "INTEGER": {"int32", "int64"},
}

# The keywords `responseJsonSchema` documents; others are dropped rather than risked.
RESPONSE_JSON_SCHEMA_KEYS = frozenset(
    {
        "$id",
        "$defs",
        "$ref",
        "$anchor",
        "type",
        "format",
        "title",
        "description",
        "enum",
        "items",
        "prefixItems",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "anyOf",
        "oneOf",
        "properties",
        "additionalProperties",
        "required",
        "propertyOrdering",
    }
)


def function_parameters(schema: Any, param: str) -> dict[str, Any] | None:
    """A tool's `parameters` as a Gemini `Schema`; None when it takes no arguments.

    Gemini rejects an OBJECT whose `properties` is empty, so a no-argument tool is declared
    without `parameters` at all.
    """
    if schema is None:
        return None
    if not isinstance(schema, dict):
        raise bad_request("a function's `parameters` must be a JSON Schema object", param=param)
    defs = {**_object_at(schema, "definitions"), **_object_at(schema, "$defs")}
    converted = _to_gemini(schema, defs, (), param)
    if converted.get("type") == "OBJECT" and not converted.get("properties"):
        return None
    return converted


def response_schema(schema: Any, param: str) -> dict[str, Any]:
    """`response_format.json_schema.schema` as Gemini's `responseJsonSchema`."""
    if not isinstance(schema, dict):
        raise bad_request("`response_format.json_schema.schema` must be an object", param=param)
    return _to_json_schema(schema)


def _to_gemini(
    node: Any, defs: dict[str, Any], seen: tuple[str, ...], param: str
) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise bad_request("every sub-schema must be a JSON object", param=param)
    node, seen = _inline(node, defs, seen, param)
    types = node.get("type")
    type_list = types if isinstance(types, list) else [] if types is None else [types]
    if any(not isinstance(t, str) or t not in _TYPES for t in type_list):
        raise bad_request(f"unknown JSON Schema type {types!r}", param=param)
    nullable = "null" in type_list
    concrete = [t for t in type_list if t != "null"]
    out: dict[str, Any] = {}
    variants = node.get("anyOf", node.get("oneOf"))
    if isinstance(variants, list):
        kept = []
        for sub in variants:
            if isinstance(sub, dict) and sub.get("type") == "null":
                nullable = True  # Optional[X] arrives as anyOf [X, null]
            else:
                kept.append(_to_gemini(sub, defs, seen, param))
        if len(kept) == 1:
            out.update(kept[0])
        elif kept:
            out["anyOf"] = kept
    if len(concrete) == 1:
        out["type"] = concrete[0].upper()
    elif len(concrete) > 1:
        out["anyOf"] = [{"type": t.upper()} for t in concrete]
    elif nullable and not out:
        out["type"] = "NULL"

    enum = node.get("enum")
    if "const" in node:
        enum = [node["const"]]
    if isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum):
        # Gemini enums are string-only; a numeric enum is dropped, its type kept.
        out["enum"] = enum
        out.setdefault("type", "STRING")

    fmt = node.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS.get(out.get("type", ""), ()):
        out["format"] = fmt

    properties = node.get("properties")
    if isinstance(properties, dict) and properties:
        out["properties"] = {
            name: _to_gemini(sub, defs, seen, f"{param}.properties.{name}")
            for name, sub in properties.items()
        }
        required = [r for r in _names_at(node, "required") if r in properties]
        if required:
            out["required"] = required
    items = node.get("items")
    if isinstance(items, dict):
        out["items"] = _to_gemini(items, defs, seen, f"{param}.items")

    for key in _SCHEMA_COPIED:
        if key in node and node[key] is not None:
            out[key] = node[key]
    if nullable:
        out["nullable"] = True
    return out


def _inline(
    node: dict[str, Any], defs: dict[str, Any], seen: tuple[str, ...], param: str
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Resolve `$ref` and `allOf`, which Gemini's `Schema` lacks, into one plain node."""
    node = dict(node)
    ref = node.pop("$ref", None)
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if not ref.startswith(("#/$defs/", "#/definitions/")) or not isinstance(
            defs.get(name), dict
        ):
            raise bad_request(f"`$ref` {ref!r} does not point into `$defs`", param=param)
        if name in seen:
            raise _recursive(name, param)
        target, seen = _inline(defs[name], defs, (*seen, name), param)
        node = {**target, **node}
    all_of = node.pop("allOf", None)
    if isinstance(all_of, list):
        merged: dict[str, Any] = {}
        for sub in all_of:
            if isinstance(sub, dict):
                part, _ = _inline(sub, defs, seen, param)
                props = {**_object_at(merged, "properties"), **_object_at(part, "properties")}
                required = [*_names_at(merged, "required"), *_names_at(part, "required")]
                merged.update(part)
                if props:
                    merged["properties"] = props
                if required:
                    merged["required"] = list(dict.fromkeys(required))
        node = {**merged, **node}
    return node, seen


def _object_at(node: dict[str, Any], key: str) -> dict[str, Any]:
    """`node[key]` when it is an object: a malformed schema is the provider's to refuse."""
    value = node.get(key)
    return value if isinstance(value, dict) else {}


def _names_at(node: dict[str, Any], key: str) -> list[str]:
    value = node.get(key)
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _recursive(name: str, param: str) -> GatewayError:
    return bad_request(
        f"the schema refers to `{name}` from inside itself; Gemini function declarations "
        "cannot express recursive schemas, so flatten it or send it as a string",
        param=param,
    )


def _to_json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_to_json_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        # Documented: beside `$ref`, only `$`-keywords may be set.
        return {
            k: _ref(v) if k == "$ref" else _to_json_schema(v)
            for k, v in node.items()
            if k.startswith("$")
        }
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "definitions":
            key = "$defs"
        if key == "const":
            key, value = "enum", [value]
        if key not in RESPONSE_JSON_SCHEMA_KEYS:
            continue
        if key in ("properties", "$defs") and isinstance(value, dict):
            out[key] = {name: _to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "oneOf", "prefixItems"):
            out[key] = _to_json_schema(value)
        else:
            out[key] = value
    return out


def _ref(ref: Any) -> Any:
    if isinstance(ref, str) and ref.startswith("#/definitions/"):
        return "#/$defs/" + ref[len("#/definitions/") :]
    return ref
