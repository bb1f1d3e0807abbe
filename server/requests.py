"""Reading a client request: size limit, JSON, and only the fields a decision needs."""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.datastructures import Headers
from starlette.requests import Request

from spillgate.errors import GatewayError, UpstreamError, bad_request
from spillgate.fallback.dialects import dialect_for
from spillgate.protocol import DIALECTS, Backend, Endpoint, TargetKind, UpstreamRequest
from spillgate.server.budgets import BudgetBook, may_spend
from spillgate.server.config_routing import SchedulerConfig
from spillgate.server.features import (
    needs_json_schema,
    prompt_prefix,
    prompt_token_bounds,
    requested_max_tokens,
    text_bytes,
)
from spillgate.server.keys import ApiKey
from spillgate.server.privacy.config import PrivacyConfig
from spillgate.server.privacy.egress import without_stripped_fields
from spillgate.server.privacy.offload import ScanRunner
from spillgate.server.scheduler import Privacy, RequestFeatures, prefix_key
from spillgate.server.validation import MAX_NESTING, check_request, nested_too_deep

#: No model answers with more tokens than this: a larger `max_tokens`, for a cloud target
#: whose own limit is not known, is refused. Sent on, it only holds the request while the
#: provider refuses or stalls.
LARGEST_OUTPUT_TOKENS = 1_048_576

# The field each endpoint cannot do without, and the JSON types it may have.
_REQUIRED: dict[Endpoint, tuple[str, tuple[type, ...]]] = {
    Endpoint.CHAT: ("messages", (list,)),
    Endpoint.COMPLETIONS: ("prompt", (str, list)),
    Endpoint.EMBEDDINGS: ("input", (str, list)),
}


@dataclass(slots=True)
class ParsedRequest:
    body: bytes
    payload: dict[str, Any]
    model: str
    stream: bool
    #: A Responses or Messages request read as chat: what its features are read from.
    chat: dict[str, Any] | None = None

    def as_chat(self, endpoint: Endpoint) -> tuple[Endpoint, dict[str, Any]]:
        """The endpoint and payload a decision reads: a dialect request's chat form."""
        if self.chat is None:
            return endpoint, self.payload
        return Endpoint.CHAT, self.chat


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


def json_object(body: bytes) -> dict[str, Any]:
    """A request body as a JSON object, or the 400 that says what is wrong with it."""
    if not body:
        raise bad_request("the request body is empty; send a JSON object")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise bad_request(f"the request body is not valid JSON: {err}") from None
    if not isinstance(payload, dict):
        raise bad_request("the request body must be a JSON object")
    return payload


def parse(body: bytes, endpoint: Endpoint) -> ParsedRequest:
    payload = json_object(body)
    if endpoint in DIALECTS:
        return _parse_dialect(body, payload, endpoint)
    if nested_too_deep(payload):
        raise bad_request(
            f"the request body nests objects and arrays more than {MAX_NESTING} levels deep",
            code="nesting_too_deep",
        )
    model = payload.get("model")
    if model is None:
        raise bad_request(
            "`model` is required; GET /v1/models lists the models",
            param="model",
            code="missing_required_parameter",
        )
    if not isinstance(model, str) or not model:
        raise bad_request("`model` must be a non-empty string", param="model", code="invalid_type")
    stream = payload.get("stream")
    if stream is None:
        stream = False
    elif not isinstance(stream, bool):
        raise bad_request("`stream` must be true or false", param="stream", code="invalid_type")
    if stream and endpoint is Endpoint.EMBEDDINGS:
        raise bad_request(
            "`stream` is not a parameter of /v1/embeddings (embeddings are answered whole); "
            "remove it",
            param="stream",
            code="unsupported_parameter",
        )
    field, types = _REQUIRED[endpoint]
    value = payload.get(field)
    if value is None:
        raise bad_request(f"`{field}` is required", param=field, code="missing_required_parameter")
    if not isinstance(value, types):
        kinds = " or ".join("an array" if t is list else "a string" for t in types)
        raise bad_request(f"`{field}` must be {kinds}", param=field, code="invalid_type")
    check_request(payload, endpoint)
    return ParsedRequest(body=body, payload=payload, model=model, stream=stream)


def _parse_dialect(body: bytes, payload: dict[str, Any], endpoint: Endpoint) -> ParsedRequest:
    """A Responses or Messages request: its dialect reads it as chat, and in doing so
    checks it (400s name the fields in the API's own terms)."""
    if nested_too_deep(payload):
        raise bad_request(
            f"the request body nests objects and arrays more than {MAX_NESTING} levels deep",
            code="nesting_too_deep",
        )
    chat = dialect_for(endpoint).to_chat(payload)
    return ParsedRequest(body, payload, chat["model"], chat.get("stream") is True, chat)


def within_output_limit(request: UpstreamRequest, limit: int | None) -> UpstreamRequest:
    """The request with `max_tokens` and `max_completion_tokens` lowered to `limit`, the
    target's documented output limit: the route, not the client, chose the target. Without
    a known limit, a value no model could reach is refused (400, and the route moves on)."""
    payload = request.payload
    ceiling = LARGEST_OUTPUT_TOKENS if limit is None else limit
    over = {
        name: value
        for name in ("max_completion_tokens", "max_tokens", "max_output_tokens")
        if isinstance(value := payload.get(name), int) and value > ceiling
    }
    if not over:
        return request
    if limit is not None:
        return dataclasses.replace(request, payload={**payload, **dict.fromkeys(over, limit)})
    name, value = next(iter(over.items()))
    refused = UpstreamError(
        400,
        f"`{name}` is {value}, more than any model answers with ({LARGEST_OUTPUT_TOKENS}), "
        "and this target does not document its limit; lower it",
        type="invalid_request_error",
        code="integer_above_max_value",
    )
    refused.param = name
    raise refused


class FeatureReader:
    """Builds the decision's `RequestFeatures` from a parsed request and its headers."""

    def __init__(
        self,
        endpoint: Endpoint,
        scheduler: SchedulerConfig,
        privacy: PrivacyConfig,
        budgets: BudgetBook,
        scans: ScanRunner | None,
    ) -> None:
        """`budgets`: what each key has spent; `scans`: the personal-data scans (None when
        `privacy.detect` is off)."""
        self.endpoint = endpoint
        self.default_budget_ms = scheduler.latency_budget_ms
        self.prediction_margin = scheduler.prediction_margin
        self.prefix_affinity = scheduler.prefix_affinity
        self.on_prem_models = frozenset(privacy.on_prem_models)
        self.redact_policy = privacy.policy == "redact-then-spill"
        self.budgets = budgets
        self.scans = scans

    async def of(
        self,
        parsed: ParsedRequest,
        headers: Headers,
        candidates: list[Backend],
        key: ApiKey | None = None,
        request_id: str = "",
    ) -> RequestFeatures:
        endpoint, payload = parsed.as_chat(self.endpoint)
        size, messages, images, _files = text_bytes(payload, endpoint)
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
            prefix_key=self._prefix_key(endpoint, payload, candidates),
        )

    def _prefix_key(
        self, endpoint: Endpoint, payload: dict[str, Any], candidates: list[Backend]
    ) -> int | None:
        """The prompt prefix's affinity key, where it can matter: with `prefix_affinity`
        on and more than one local engine on the route (else None, at no cost)."""
        if not self.prefix_affinity:
            return None
        if sum(c.kind is TargetKind.LOCAL for c in candidates) < 2:
            return None
        return prefix_key(prompt_prefix(payload, endpoint))

    def _cloud_budget_ok(self, key: ApiKey | None, candidates: list[Backend]) -> bool:
        if key is None or (key.budget_day_usd is None and key.budget_month_usd is None):
            return True
        if not any(c.kind is TargetKind.CLOUD for c in candidates):
            return True
        return may_spend(key, self.budgets.spent(key.id, time.time())).allowed

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
        if self.scans is None:
            return Privacy.MAY_SPILL  # detection turned off (privacy.detect: false)
        # The early hint: what the egress guard will read, so the decision expects it.
        payload = without_stripped_fields(parsed.payload)
        findings = await self.scans.scan(lambda: payload, len(parsed.body), "ingress", request_id)
        if not findings:
            return Privacy.MAY_SPILL
        # Placeholders are put back in chat-shaped answers only: a Responses or Messages
        # request with findings stays on the box under either policy.
        redactable = self.redact_policy and self.endpoint not in DIALECTS
        return Privacy.REDACT_TO_SPILL if redactable else Privacy.LOCAL_ONLY
