"""An OpenAI chat request → a Gemini `generateContent` request body.

Pure translation: what Gemini cannot express is a 400 that names the field, unless the
provider's `drop_params` lists it. Tool-call ids carry Gemini's thought signature
(see `gemini_ids`), so a conversation can go round the client and back without state here.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit

import orjson

from spillgate.errors import bad_request
from spillgate.fallback.gemini.ids import SKIP_SIGNATURE, split_call_id
from spillgate.fallback.gemini.schema import function_parameters, response_schema
from spillgate.fallback.wire import tool_arguments, unsupported_parameter

# Fields with no effect on the answer: accepted and not forwarded.
_ADVISORY = frozenset(
    {
        "model",
        "messages",
        "stream",
        "user",
        "metadata",
        "store",
        "prompt_cache_key",
        "safety_identifier",
    }
)
# OpenAI field → Gemini `generationConfig` field, for values that pass as they are.
_PASSTHROUGH = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",  # not OpenAI's, but vLLM clients send it and Gemini has it
    "seed": "seed",
    "n": "candidateCount",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
_HANDLED = frozenset(
    {
        *_PASSTHROUGH,
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "stream_options",
    }
)
# Image types Gemini reads, by file extension, for https URLs (Gemini needs the MIME type
# up front and fetches the URL itself).
_IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".heic": "image/heic",
    ".heif": "image/heif",
}
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)((?:;[^;,]*)*);base64,(.*)", re.DOTALL)


class RequestBuilder:
    """One provider's translation settings; `body()` does one request."""

    def __init__(self, provider: str, drop_params: Collection[str]) -> None:
        self.provider = provider
        self.drop_params = drop_params

    def body(self, payload: dict[str, Any]) -> dict[str, Any]:
        for name, value in payload.items():
            if name not in _ADVISORY and name not in _HANDLED and value is not None:
                self._unsupported(name)
        if payload.get("parallel_tool_calls") is False:
            self._unsupported(
                "parallel_tool_calls", "Gemini cannot be told to call one tool at a time"
            )
        if not isinstance(payload["messages"], list):
            raise bad_request("`messages` must be an array", param="messages")
        system, contents = _Messages().convert(payload["messages"])
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": system}
        tools, tool_config = _tools(payload)
        if tools:
            body["tools"] = tools
        if tool_config:
            body["toolConfig"] = tool_config
        config = self._generation_config(payload)
        if config:
            body["generationConfig"] = config
        return body

    def _unsupported(self, name: str, why: str = "") -> None:
        if name in self.drop_params:
            return
        raise unsupported_parameter(self.provider, "Gemini", name, why=why)

    def _generation_config(self, payload: dict[str, Any]) -> dict[str, Any]:
        config: dict[str, Any] = {}
        for name, field in _PASSTHROUGH.items():
            if payload.get(name) is not None:
                config[field] = payload[name]
        limit = payload.get("max_completion_tokens")
        if limit is None:
            limit = payload.get("max_tokens")
        if limit is not None:
            config["maxOutputTokens"] = limit
        stop = payload.get("stop")
        if isinstance(stop, str):
            config["stopSequences"] = [stop]
        elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
            if stop:
                config["stopSequences"] = stop
        elif stop is not None:
            raise bad_request("`stop` must be a string or an array of strings", param="stop")
        config.update(_response_format(payload.get("response_format")))
        return config


def _response_format(fmt: Any) -> dict[str, Any]:
    if fmt is None:
        return {}
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or "schema" not in spec:
            raise bad_request(
                "`response_format.json_schema.schema` is required for type json_schema",
                param="response_format",
            )
        return {
            "responseMimeType": "application/json",
            "responseJsonSchema": response_schema(spec["schema"], "response_format"),
        }
    raise bad_request(
        "`response_format.type` must be text, json_object or json_schema", param="response_format"
    )


def _tools(payload: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    tools = payload.get("tools") or []
    if not isinstance(tools, list):
        raise bad_request("`tools` must be an array", param="tools")
    declarations: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            raise bad_request(
                "only tools of type `function` can be sent to Gemini", param=f"tools[{i}]"
            )
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise bad_request("every function needs a `name`", param=f"tools[{i}].function.name")
        declaration: dict[str, Any] = {"name": name}
        description = fn.get("description")
        if description is not None and not isinstance(description, str):
            raise bad_request(
                "a function's `description` must be a string",
                param=f"tools[{i}].function.description",
            )
        if description:
            declaration["description"] = description
        parameters = function_parameters(fn.get("parameters"), f"tools[{i}].function.parameters")
        if parameters is not None:
            declaration["parameters"] = parameters
        declarations.append(declaration)

    choice = payload.get("tool_choice")
    if choice is None:
        return ([{"functionDeclarations": declarations}] if declarations else []), {}
    names = [d["name"] for d in declarations]
    mode, allowed = _tool_choice(choice, names)
    if allowed is not None and mode == "AUTO":
        # Gemini takes allowedFunctionNames only with ANY: restrict the declarations instead.
        declarations = [d for d in declarations if d["name"] in allowed]
        allowed = None
    config: dict[str, Any] = {"mode": mode}
    if allowed is not None:
        config["allowedFunctionNames"] = allowed
    if not declarations:
        if mode == "NONE":
            return [], {}
        raise bad_request("`tool_choice` asks for a tool call but `tools` is empty", "tool_choice")
    return [{"functionDeclarations": declarations}], {"functionCallingConfig": config}


def _tool_choice(choice: Any, names: list[str]) -> tuple[str, list[str] | None]:
    if choice in ("auto", "none", "required"):
        return {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice], None
    if isinstance(choice, dict) and choice.get("type") == "function":
        return "ANY", [_known(_function_name(choice), names)]
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        spec = choice.get("allowed_tools")
        tools = spec.get("tools") if isinstance(spec, dict) else None
        if not isinstance(spec, dict) or not isinstance(tools, list):
            raise bad_request(
                "`tool_choice.allowed_tools` must be an object with `mode` and `tools`",
                param="tool_choice.allowed_tools",
            )
        picked = [_known(_function_name(t), names) for t in tools]
        mode = spec.get("mode", "auto")
        if mode not in ("auto", "required"):
            raise bad_request(
                "`tool_choice.allowed_tools.mode` must be auto or required", param="tool_choice"
            )
        return ("ANY" if mode == "required" else "AUTO"), picked
    raise bad_request(
        "`tool_choice` must be none, auto, required, a {type: function} or an allowed_tools object",
        param="tool_choice",
    )


def _function_name(choice: Any) -> Any:
    """The `function.name` of a tool choice; None when the choice has no such shape."""
    function = choice.get("function") if isinstance(choice, dict) else None
    return function.get("name") if isinstance(function, dict) else None


def _known(name: Any, names: list[str]) -> str:
    if not isinstance(name, str) or name not in names:
        raise bad_request(
            f"`tool_choice` names function {name!r}, which is not among `tools`",
            param="tool_choice",
        )
    return name


class _Messages:
    """OpenAI `messages` → Gemini `systemInstruction` parts and `contents`."""

    def __init__(self) -> None:
        self.system: list[dict[str, Any]] = []
        self.contents: list[dict[str, Any]] = []
        self.call_names: dict[str, str] = {}  # tool_call_id → function name, for tool results

    def convert(self, messages: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                raise bad_request("every message must be an object", param=f"messages[{i}]")
            role = message.get("role")
            if role in ("system", "developer"):
                # Gemini has one system instruction: every system message joins it, in order.
                self.system += [{"text": t} for t in _texts(message.get("content"), i)]
            elif role == "user":
                self._add("user", _user_parts(message.get("content"), i))
            elif role == "assistant":
                self._add("model", self._assistant_parts(message, i))
            elif role == "tool":
                self._add("user", [self._tool_result(message, i)])
            else:
                raise bad_request(
                    "`role` must be system, developer, user, assistant or tool",
                    param=f"messages[{i}].role",
                )
        if not self.contents:
            raise bad_request(
                "`messages` needs at least one user, assistant or tool message", param="messages"
            )
        return self.system, self.contents

    def _add(self, role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if self.contents and self.contents[-1]["role"] == role:
            # Gemini wants turns to alternate: consecutive same-role messages become one turn.
            self.contents[-1]["parts"] += parts
        else:
            self.contents.append({"role": role, "parts": parts})

    def _assistant_parts(self, message: dict[str, Any], i: int) -> list[dict[str, Any]]:
        content = message.get("content")
        parts = [{"text": t} for t in _texts(content, i, allow_refusal=True) if t]
        calls = message.get("tool_calls") or []
        if not isinstance(calls, list):
            raise bad_request("`tool_calls` must be an array", param=f"messages[{i}].tool_calls")
        for j, call in enumerate(calls):
            param = f"messages[{i}].tool_calls[{j}]"
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise bad_request("a tool call needs `function.name`", param=param)
            args = tool_arguments(fn.get("arguments"), param)
            call_id = call.get("id")
            if isinstance(call_id, str):
                self.call_names[call_id] = fn["name"]
            part: dict[str, Any] = {"functionCall": {"name": fn["name"], "args": args}}
            signature = split_call_id(call_id) if isinstance(call_id, str) else None
            if signature:
                part["thoughtSignature"] = signature
            elif j == 0 and not self._turn_has_call():
                # Gemini 3 rejects a function-call step whose first call carries no signature;
                # history from elsewhere has none, and Google documents this placeholder.
                part["thoughtSignature"] = SKIP_SIGNATURE
            parts.append(part)
        return parts

    def _turn_has_call(self) -> bool:
        last = self.contents[-1] if self.contents else None
        return bool(
            last and last["role"] == "model" and any("functionCall" in p for p in last["parts"])
        )

    def _tool_result(self, message: dict[str, Any], i: int) -> dict[str, Any]:
        call_id = message.get("tool_call_id")
        name = self.call_names.get(call_id) if isinstance(call_id, str) else None
        if name is None:
            raise bad_request(
                f"`tool_call_id` {call_id!r} matches no tool call of an earlier assistant "
                "message; Gemini needs the function's name, so keep the assistant turn in history",
                param=f"messages[{i}].tool_call_id",
            )
        text = "".join(_texts(message.get("content"), i))
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            parsed = None
        # Gemini wants an object: a JSON object result goes as it is, anything else wrapped.
        response = parsed if isinstance(parsed, dict) else {"result": text}
        return {"functionResponse": {"name": name, "response": response}}


def _texts(content: Any, i: int, allow_refusal: bool = False) -> list[str]:
    """The text of a message that may hold only text (system, assistant, tool)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise bad_request("`content` must be a string or an array", param=f"messages[{i}].content")
    out = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            out.append(part["text"])
        elif kind == "refusal" and allow_refusal and isinstance(part.get("refusal"), str):
            out.append(part["refusal"])
        else:
            raise bad_request(
                "this message may hold only text parts", param=f"messages[{i}].content[{j}]"
            )
    return out


def _user_parts(content: Any, i: int) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    if not isinstance(content, list):
        raise bad_request("`content` must be a string or an array", param=f"messages[{i}].content")
    parts = []
    for j, part in enumerate(content):
        param = f"messages[{i}].content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append({"text": part["text"]})
        elif kind == "image_url":
            parts.append(_image(part.get("image_url"), param))
        elif kind == "input_audio":
            parts.append(_audio(part.get("input_audio"), param))
        elif kind == "file":
            parts.append(_file(part.get("file"), param))
        else:
            raise bad_request(
                "a user content part must be text, image_url, input_audio or file", param=param
            )
    return parts


def _image(spec: Any, param: str) -> dict[str, Any]:
    url = spec.get("url") if isinstance(spec, dict) else None
    if not isinstance(url, str):
        raise bad_request("`image_url.url` is required", param=f"{param}.image_url.url")
    if url.startswith("data:"):
        return _inline_data(url, f"{param}.image_url.url")
    parsed = urlsplit(url)
    if parsed.scheme != "https" or not parsed.netloc:
        raise bad_request(
            "an image URL must be https or a base64 data URL", param=f"{param}.image_url.url"
        )
    path = parsed.path.lower()
    mime = next((m for ext, m in _IMAGE_TYPES.items() if path.endswith(ext)), None)
    if mime is None:
        raise bad_request(
            "Gemini needs an image's type up front and this URL's path does not end in one of "
            f"{', '.join(_IMAGE_TYPES)}; send the image as a base64 data URL instead",
            param=f"{param}.image_url.url",
        )
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _audio(spec: Any, param: str) -> dict[str, Any]:
    audio_format = spec.get("format") if isinstance(spec, dict) else None
    if not isinstance(audio_format, str) or audio_format not in _AUDIO_TYPES:
        raise bad_request("`input_audio.format` must be wav or mp3", param=f"{param}.input_audio")
    if not isinstance(spec.get("data"), str):
        raise bad_request("`input_audio.data` must be base64", param=f"{param}.input_audio.data")
    return {"inlineData": {"mimeType": _AUDIO_TYPES[spec["format"]], "data": spec["data"]}}


def _file(spec: Any, param: str) -> dict[str, Any]:
    data = spec.get("file_data") if isinstance(spec, dict) else None
    if not isinstance(data, str):
        raise bad_request(
            "Gemini can read a file only from `file.file_data` (a base64 data URL); "
            "uploaded file ids are OpenAI's own",
            param=f"{param}.file",
        )
    return _inline_data(data, f"{param}.file.file_data")


def _inline_data(url: str, param: str) -> dict[str, Any]:
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise bad_request("a data URL must look like data:<type>;base64,<data>", param=param)
    return {"inlineData": {"mimeType": match.group(1), "data": match.group(3)}}
