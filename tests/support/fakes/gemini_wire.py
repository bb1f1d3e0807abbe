"""The Gemini API's documented request shape, as a checker, and its answer shapes.

`request_problems` checks a `generateContent` request body against the documented
`GenerateContentRequest` (google.ai.generativelanguage.v1beta): field names, roles, part
kinds, `Schema` keywords and types, `generationConfig` fields, tool config rules, and the
rule that a model turn's N function calls are answered by N function responses. It returns
what is wrong, in words, so a failing test says which field broke. Like Google's proto-JSON
parser, it takes a message field by its lowerCamelCase name or its proto (snake_case) name;
free-form fields (`args`, `response`, `responseJsonSchema`) keep their keys as sent.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

REQUEST_FIELDS = {
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "safetySettings",
    "generationConfig",
    "cachedContent",
}
PART_DATA = {
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
}
PART_META = {"thought", "thoughtSignature", "videoMetadata", "partMetadata", "mediaResolution"}
SCHEMA_FIELDS = {
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
}
SCHEMA_TYPES = {
    "TYPE_UNSPECIFIED",
    "STRING",
    "NUMBER",
    "INTEGER",
    "BOOLEAN",
    "ARRAY",
    "OBJECT",
    "NULL",
}
RESPONSE_JSON_SCHEMA_FIELDS = {
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
_NUMBER = (int, float)
GENERATION_CONFIG: dict[str, Any] = {
    "stopSequences": list,
    "responseMimeType": str,
    "responseSchema": dict,
    "responseJsonSchema": dict,
    "responseModalities": list,
    "candidateCount": int,
    "maxOutputTokens": int,
    "temperature": _NUMBER,
    "topP": _NUMBER,
    "topK": int,
    "seed": int,
    "presencePenalty": _NUMBER,
    "frequencyPenalty": _NUMBER,
    "responseLogprobs": bool,
    "logprobs": int,
    "enableEnhancedCivicAnswers": bool,
    "speechConfig": dict,
    "thinkingConfig": dict,
    "imageConfig": dict,
    "mediaResolution": str,
}
TOOL_FIELDS = {
    "functionDeclarations",
    "googleSearchRetrieval",
    "codeExecution",
    "googleSearch",
    "urlContext",
    "computerUse",
    "fileSearch",
    "googleMaps",
}
DECLARATION_FIELDS = {
    "name",
    "description",
    "parameters",
    "parametersJsonSchema",
    "response",
    "responseJsonSchema",
    "behavior",
}
FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")
MODES = {"MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"}
MIME_TYPES = {"text/plain", "application/json", "text/x.enum"}


def request_problems(body: Any) -> list[str]:
    problems: list[str] = []
    if not isinstance(body, dict):
        return ["the request body must be a JSON object"]
    body = message(body)
    for key in body.keys() - REQUEST_FIELDS:
        problems.append(f'Unknown name "{key}": Cannot find field.')
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        problems.append("contents is not specified")
        contents = []
    for i, content in enumerate(contents):
        _content(content, f"contents[{i}]", problems, system=False)
    _call_pairs(contents, problems)
    if "systemInstruction" in body:
        _content(body["systemInstruction"], "systemInstruction", problems, system=True)
    declared = _tools(body.get("tools"), problems)
    _tool_config(body.get("toolConfig"), declared, problems)
    _generation_config(body.get("generationConfig"), problems)
    for i, setting in enumerate(body.get("safetySettings") or []):
        if not isinstance(setting, dict) or set(setting) != {"category", "threshold"}:
            problems.append(f"safetySettings[{i}] needs exactly category and threshold")
    return problems


def _content(content: Any, where: str, problems: list[str], system: bool) -> None:
    if not isinstance(content, dict):
        problems.append(f"{where} must be an object")
        return
    content = message(content)
    for key in content.keys() - {"role", "parts"}:
        problems.append(f'{where}: Unknown name "{key}"')
    role = content.get("role")
    if not system and role not in ("user", "model"):
        problems.append(f"{where}.role must be user or model, not {role!r}")
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        problems.append(f"{where}.parts must be a non-empty array")
        return
    for j, part in enumerate(parts):
        _part(part, f"{where}.parts[{j}]", role, problems, system)


def _part(part: Any, where: str, role: Any, problems: list[str], system: bool) -> None:
    if not isinstance(part, dict):
        problems.append(f"{where} must be an object")
        return
    part = message(part)
    data = part.keys() & PART_DATA
    for key in part.keys() - PART_DATA - PART_META:
        problems.append(f'{where}: Unknown name "{key}"')
    if len(data) != 1:
        problems.append(f"{where} must hold exactly one of {sorted(PART_DATA)}, has {sorted(data)}")
        return
    kind = data.pop()
    value = message(part[kind]) if isinstance(part[kind], dict) else part[kind]
    if system and kind != "text":
        problems.append(f"{where}: systemInstruction takes text parts only")
    if kind == "text" and not isinstance(value, str):
        problems.append(f"{where}.text must be a string")
    elif kind == "inlineData":
        if not isinstance(value, dict) or set(value) != {"mimeType", "data"}:
            problems.append(f"{where}.inlineData needs exactly mimeType and data")
        elif not _base64(value["data"]):
            problems.append(f"{where}.inlineData.data is not base64")
    elif kind == "fileData":
        if not isinstance(value, dict) or not isinstance(value.get("fileUri"), str):
            problems.append(f"{where}.fileData.fileUri is required")
        elif value.keys() - {"mimeType", "fileUri", "displayName"}:
            problems.append(f"{where}.fileData has unknown fields")
        elif value["fileUri"].startswith(("http://", "https://")) and "mimeType" not in value:
            problems.append(f"{where}.fileData.mimeType is required for an external URL")
    elif kind == "functionCall":
        if role != "model":
            problems.append(f"{where}: functionCall parts belong to the model role")
        _call(value, "args", where + ".functionCall", problems)
    elif kind == "functionResponse":
        if role != "user":
            problems.append(f"{where}: functionResponse parts belong to the user role")
        _call(value, "response", where + ".functionResponse", problems)
    signature = part.get("thoughtSignature")
    if signature is not None and not _base64(signature):
        problems.append(f"{where}.thoughtSignature: Base64 decoding failed")


def _call(value: Any, payload: str, where: str, problems: list[str]) -> None:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        problems.append(f"{where}.name is required")
        return
    if value.keys() - {"name", payload, "id"}:
        problems.append(
            f"{where} has unknown fields {sorted(value.keys() - {'name', payload, 'id'})}"
        )
    if payload in value and not isinstance(value[payload], dict):
        problems.append(f"{where}.{payload} must be an object (a google.protobuf.Struct)")


def _call_pairs(contents: list[Any], problems: list[str]) -> None:
    """Each model turn's function calls are answered, all of them, by the next turn."""
    for i, content in enumerate(contents[:-1]):
        calls = _parts_of(content, "functionCall")
        if not calls:
            continue
        answers = _parts_of(contents[i + 1], "functionResponse")
        if len(answers) != len(calls):
            problems.append(
                "Please ensure that the number of function response parts is equal to the "
                f"number of function call parts of the function call turn (contents[{i}])."
            )
        elif sorted(c.get("name") for c in calls) != sorted(a.get("name") for a in answers):
            problems.append(f"function responses after contents[{i}] name other functions")


def _parts_of(content: Any, kind: str) -> list[dict[str, Any]]:
    parts = content.get("parts") if isinstance(content, dict) else None
    parts = [message(p) for p in parts or [] if isinstance(p, dict)]
    return [p[kind] for p in parts if isinstance(p.get(kind), dict)]


def message(fields: dict[str, Any]) -> dict[str, Any]:
    """A proto message's fields under their lowerCamelCase names."""
    return {_camel(k): v for k, v in fields.items()}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def _tools(tools: Any, problems: list[str]) -> set[str]:
    declared: set[str] = set()
    if tools is None:
        return declared
    if not isinstance(tools, list):
        problems.append("tools must be an array")
        return declared
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            problems.append(f"tools[{i}] must be an object")
            continue
        tool = message(tool)
        for key in tool.keys() - TOOL_FIELDS:
            problems.append(f'tools[{i}]: Unknown name "{key}"')
        for j, decl in enumerate(tool.get("functionDeclarations") or []):
            where = f"tools[{i}].functionDeclarations[{j}]"
            if not isinstance(decl, dict):
                problems.append(f"{where} must be an object")
                continue
            decl = message(decl)
            for key in decl.keys() - DECLARATION_FIELDS:
                problems.append(f'{where}: Unknown name "{key}"')
            name = decl.get("name")
            if not isinstance(name, str) or not FUNCTION_NAME.fullmatch(name):
                problems.append(f"{where}.name {name!r} is not a valid function name")
            else:
                declared.add(name)
            if "parameters" in decl:
                schema_problems(decl["parameters"], f"{where}.parameters", problems)
    return declared


def _tool_config(config: Any, declared: set[str], problems: list[str]) -> None:
    if config is None:
        return
    config = message(config) if isinstance(config, dict) else config
    if not isinstance(config, dict) or config.keys() - {"functionCallingConfig", "retrievalConfig"}:
        problems.append("toolConfig has unknown fields")
        return
    calling = message(config.get("functionCallingConfig") or {})
    if calling.keys() - {"mode", "allowedFunctionNames"}:
        problems.append("toolConfig.functionCallingConfig has unknown fields")
    mode = calling.get("mode", "MODE_UNSPECIFIED")
    if mode not in MODES:
        problems.append(f"toolConfig.functionCallingConfig.mode {mode!r} is not a Mode")
    allowed = calling.get("allowedFunctionNames")
    if allowed is not None:
        if mode not in ("ANY", "VALIDATED"):
            problems.append("allowedFunctionNames may only be set when the mode is ANY")
        for name in allowed:
            if name not in declared:
                problems.append(f"allowedFunctionNames names undeclared function {name!r}")


def _generation_config(config: Any, problems: list[str]) -> None:
    if config is None:
        return
    if not isinstance(config, dict):
        problems.append("generationConfig must be an object")
        return
    config = message(config)
    for key, value in config.items():
        kind = GENERATION_CONFIG.get(key)
        if kind is None:
            problems.append(f'generationConfig: Unknown name "{key}": Cannot find field.')
        elif not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            problems.append(f"generationConfig.{key} has the wrong type")
    stops = config.get("stopSequences")
    if isinstance(stops, list) and (len(stops) > 5 or not all(isinstance(s, str) for s in stops)):
        problems.append("generationConfig.stopSequences takes at most 5 strings")
    mime = config.get("responseMimeType")
    if mime is not None and mime not in MIME_TYPES:
        problems.append(f"generationConfig.responseMimeType {mime!r} is not supported")
    if "responseSchema" in config and "responseJsonSchema" in config:
        problems.append("responseSchema and responseJsonSchema cannot both be set")
    if "responseJsonSchema" in config:
        if mime != "application/json":
            problems.append("responseJsonSchema needs responseMimeType application/json")
        json_schema_problems(config["responseJsonSchema"], "responseJsonSchema", problems)
    if "responseSchema" in config:
        schema_problems(config["responseSchema"], "responseSchema", problems)


def schema_problems(schema: Any, where: str, problems: list[str]) -> None:
    """A Gemini `Schema` object (the OpenAPI 3.0 subset)."""
    if not isinstance(schema, dict):
        problems.append(f"{where} must be an object")
        return
    schema = message(schema)
    for key in schema.keys() - SCHEMA_FIELDS:
        problems.append(f'{where}: Unknown name "{key}": Cannot find field.')
    kind = schema.get("type")
    if kind is not None and kind not in SCHEMA_TYPES:
        problems.append(f"{where}.type: invalid value {kind!r} for enum Type")
    if "enum" in schema and kind != "STRING":
        problems.append(f"{where}.enum is only allowed for type STRING")
    properties = schema.get("properties")
    if properties is not None:
        if kind != "OBJECT" or not isinstance(properties, dict) or not properties:
            problems.append(f"{where}.properties: should be non-empty for OBJECT type")
        else:
            for name, sub in properties.items():
                schema_problems(sub, f"{where}.properties[{name}]", problems)
    for name in schema.get("required") or []:
        if name not in (properties or {}):
            problems.append(f"{where}.required names {name!r}, which is not a property")
    if "items" in schema:
        schema_problems(schema["items"], f"{where}.items", problems)
    for k, sub in enumerate(schema.get("anyOf") or []):
        schema_problems(sub, f"{where}.anyOf[{k}]", problems)


def json_schema_problems(schema: Any, where: str, problems: list[str]) -> None:
    """`responseJsonSchema`: only the documented keywords; beside `$ref`, only `$` keys."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        problems.append(f"{where} must be an object")
        return
    for key in schema.keys() - RESPONSE_JSON_SCHEMA_FIELDS:
        problems.append(f"{where}: keyword {key!r} is not supported")
    if "$ref" in schema and any(not k.startswith("$") for k in schema):
        problems.append(f"{where}: beside $ref only $-keywords may be set")
    for key in ("properties", "$defs"):
        for name, sub in (schema.get(key) or {}).items():
            json_schema_problems(sub, f"{where}.{key}[{name}]", problems)
    for key in ("items", "additionalProperties"):
        if key in schema:
            json_schema_problems(schema[key], f"{where}.{key}", problems)
    for key in ("anyOf", "oneOf", "prefixItems"):
        for k, sub in enumerate(schema.get(key) or []):
            json_schema_problems(sub, f"{where}.{key}[{k}]", problems)


def _base64(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        standard = value.replace("-", "+").replace("_", "/")
        base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def error_body(code: int, status: str, message: str, details: list[Any] | None = None) -> dict:
    """An error in the documented google.rpc.Status JSON shape."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}
