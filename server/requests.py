"""Reading a client request: size limit, JSON, and only the fields a decision needs."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from starlette.datastructures import Headers
from starlette.requests import Request

from spillgate.errors import GatewayError, bad_request
from spillgate.protocol import Backend, Endpoint, TargetKind
from spillgate.server.budgets import may_spend
from spillgate.server.features import (
    needs_json_schema,
    prompt_token_bounds,
    requested_max_tokens,
    text_bytes,
)
from spillgate.server.keys import ApiKey
from spillgate.server.privacy.egress import without_stripped_fields
from spillgate.server.scheduler import Privacy, RequestFeatures

if TYPE_CHECKING:
    from spillgate.server.gateway import Gateway

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
    if isinstance(value, list) and endpoint is Endpoint.CHAT:
        _check_arguments(value)
    for name in _INT_FIELDS:
        v = payload.get(name)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
            raise bad_request(f"`{name}` must be an integer", param=name)
    for name in _NUMBER_FIELDS:
        v = payload.get(name)
        if v is not None and (not isinstance(v, int | float) or isinstance(v, bool)):
            raise bad_request(f"`{name}` must be a number", param=name)
    return ParsedRequest(body=body, payload=payload, model=model, stream=stream)


def _check_arguments(messages: list[Any]) -> None:
    """Tool-call arguments are JSON text in a string (OpenAI's schema); an object there is
    refused rather than guessed at, as a provider adapter would otherwise send it on."""
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        calls = message.get("tool_calls")
        functions = [
            (f"messages[{i}].tool_calls[{j}].function", call.get("function"))
            for j, call in enumerate(calls if isinstance(calls, list) else ())
            if isinstance(call, dict)
        ]
        functions.append((f"messages[{i}].function_call", message.get("function_call")))
        for where, function in functions:
            if isinstance(function, dict) and not isinstance(function.get("arguments", ""), str):
                raise bad_request(
                    f"`{where}.arguments` must be a string of JSON text, not "
                    f"{_json_type(function['arguments'])}",
                    param=f"{where}.arguments",
                )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "an object" if isinstance(value, dict) else "an array"


class FeatureReader:
    """Builds the decision's `RequestFeatures` from a parsed request and its headers."""

    def __init__(self, gateway: Gateway, endpoint: Endpoint) -> None:
        self.gw = gateway
        self.endpoint = endpoint
        self.default_budget_ms = gateway.config.scheduler.latency_budget_ms
        self.prediction_margin = gateway.config.scheduler.prediction_margin
        privacy = gateway.config.privacy
        self.on_prem_models = frozenset(privacy.on_prem_models)
        self.redact_policy = privacy.policy == "redact-then-spill"

    async def of(
        self,
        parsed: ParsedRequest,
        headers: Headers,
        candidates: list[Backend],
        key: ApiKey | None = None,
        request_id: str = "",
    ) -> RequestFeatures:
        payload = parsed.payload
        size, messages, images, _files = text_bytes(payload, self.endpoint)
        estimate, upper = prompt_token_bounds(size, messages)
        return RequestFeatures(
            model=parsed.model,
            endpoint=self.endpoint,
            stream=parsed.stream,
            prompt_tokens=estimate,
            prompt_tokens_max=upper,
            max_tokens=requested_max_tokens(payload),
            needs_tools=bool(payload.get("tools")),
            needs_images=images,
            needs_json_schema=needs_json_schema(payload),
            privacy=await self._privacy(parsed, headers, candidates, key, request_id),
            latency_budget_ms=self._budget_ms(headers, key),
            prediction_margin=self.prediction_margin,
            cloud_budget_ok=self._cloud_budget_ok(key, candidates),
            tiebreak=random.getrandbits(16),
        )

    def _cloud_budget_ok(self, key: ApiKey | None, candidates: list[Backend]) -> bool:
        if key is None or (key.budget_day_usd is None and key.budget_month_usd is None):
            return True
        if not any(c.kind is TargetKind.CLOUD for c in candidates):
            return True
        return may_spend(key, self.gw.budgets.spent(key.id, time.time())).allowed

    def _budget_ms(self, headers: Headers, key: ApiKey | None) -> float:
        asked = headers.get("x-spillgate-max-ttft-ms")
        if asked is None:
            if key is not None and key.latency_budget_ms is not None:
                return float(key.latency_budget_ms)
            return self.default_budget_ms
        try:
            value = float(asked)
        except ValueError:
            raise bad_request(
                "header x-spillgate-max-ttft-ms must be a number of milliseconds"
            ) from None
        if not 0 < value < 86_400_000:
            raise bad_request("header x-spillgate-max-ttft-ms must be between 0 and 86400000")
        return value

    async def _privacy(
        self,
        parsed: ParsedRequest,
        headers: Headers,
        candidates: list[Backend],
        key: ApiKey | None,
        request_id: str,
    ) -> Privacy:
        marked = headers.get("x-spillgate-data")
        if marked is not None:
            if marked.strip().lower() != "on-prem":
                raise bad_request("header x-spillgate-data accepts one value: on-prem")
            return Privacy.LOCAL_ONLY
        if parsed.model in self.on_prem_models or (key is not None and key.onprem_only):
            return Privacy.LOCAL_ONLY
        if not any(c.kind is TargetKind.CLOUD for c in candidates):
            return Privacy.MAY_SPILL  # nowhere to leak to: no need to look
        if self.gw.scans is None:
            return Privacy.MAY_SPILL  # detection turned off (privacy.detect: false)
        # The early hint: what the egress guard will read, so the decision expects it.
        payload = without_stripped_fields(parsed.payload)
        findings = await self.gw.scans.scan(
            lambda: payload, len(parsed.body), "ingress", request_id
        )
        if not findings:
            return Privacy.MAY_SPILL
        return Privacy.REDACT_TO_SPILL if self.redact_policy else Privacy.LOCAL_ONLY
