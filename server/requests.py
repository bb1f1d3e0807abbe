"""Reading a client request: size limit, JSON, and only the fields a decision needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from spillgate.errors import GatewayError, bad_request
from spillgate.protocol import Endpoint
from starlette.requests import Request

# The field each endpoint cannot do without, and the JSON types it may have.
_REQUIRED: dict[Endpoint, tuple[str, tuple[type, ...]]] = {
    Endpoint.CHAT: ("messages", (list,)),
    Endpoint.COMPLETIONS: ("prompt", (str, list)),
    Endpoint.EMBEDDINGS: ("input", (str, list)),
}
_INT_FIELDS = ("max_tokens", "max_completion_tokens", "n", "seed", "top_logprobs")
_NUMBER_FIELDS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")


@dataclass(slots=True)
class ParsedRequest:
    body: bytes
    payload: dict[str, Any]
    model: str
    stream: bool


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise _too_large(limit)
        parts.append(part)
    return b"".join(parts) if len(parts) != 1 else parts[0]


def _too_large(limit: int) -> GatewayError:
    return GatewayError(
        413,
        f"request body is larger than the {limit}-byte limit (server.max_body_bytes)",
        code="request_too_large",
    )


def parse(body: bytes, endpoint: Endpoint) -> ParsedRequest:
    if not body:
        raise bad_request("the request body is empty; send a JSON object")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise bad_request(f"the request body is not valid JSON: {err}") from None
    if not isinstance(payload, dict):
        raise bad_request("the request body must be a JSON object")
    model = payload.get("model")
    if model is None:
        raise bad_request("`model` is required; GET /v1/models lists the models", param="model")
    if not isinstance(model, str) or not model:
        raise bad_request("`model` must be a non-empty string", param="model")
    stream = payload.get("stream", False)
    if not isinstance(stream, bool):
        raise bad_request("`stream` must be true or false", param="stream")
    field, types = _REQUIRED[endpoint]
    value = payload.get(field)
    if value is None:
        raise bad_request(f"`{field}` is required", param=field)
    if not isinstance(value, types):
        kinds = " or ".join("an array" if t is list else "a string" for t in types)
        raise bad_request(f"`{field}` must be {kinds}", param=field)
    for name in _INT_FIELDS:
        v = payload.get(name)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
            raise bad_request(f"`{name}` must be an integer", param=name)
    for name in _NUMBER_FIELDS:
        v = payload.get(name)
        if v is not None and (not isinstance(v, int | float) or isinstance(v, bool)):
            raise bad_request(f"`{name}` must be a number", param=name)
    return ParsedRequest(body=body, payload=payload, model=model, stream=stream)
