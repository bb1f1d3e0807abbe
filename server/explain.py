"""Why would a request go where it goes? The decision and the numbers behind it, live.

`POST /admin/route/explain` (admin token) takes `{"request": <OpenAI body>, "headers":
{...}, "endpoint": "chat/completions"}` and answers what the scheduler would decide for it
right now, without sending it anywhere. `spillgate route --explain REQUEST.json` prints it.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import orjson
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

from spillgate.errors import GatewayError, bad_request
from spillgate.models.engine import LocalEngine
from spillgate.protocol import Endpoint
from spillgate.server.admin import require_admin
from spillgate.server.requests import parse
from spillgate.server.scheduler import decide
from spillgate.server.validation import MAX_NESTING

if TYPE_CHECKING:
    from spillgate.server.app import Handler
    from spillgate.server.gateway import Gateway


async def explain(gw: Gateway, handlers: dict[str, Handler], request: Request) -> Response:
    try:
        require_admin(gw.config.admin.token, request)
        try:
            asked = orjson.loads(await request.body())
        except orjson.JSONDecodeError as err:
            raise bad_request(f"the body is not valid JSON: {err}") from None
        if not isinstance(asked, dict) or not isinstance(asked.get("request"), dict):
            raise bad_request('send {"request": <an OpenAI request body>, "headers": {...}}')
        endpoint = str(asked.get("endpoint", Endpoint.CHAT.value))
        handler = handlers.get(f"/v1/{endpoint}")
        if handler is None:
            raise bad_request(f"unknown endpoint {endpoint!r}", param="endpoint")
        headers = Headers({k.lower(): str(v) for k, v in (asked.get("headers") or {}).items()})
        answer = await _explain(gw, handler, asked["request"], headers)
    except GatewayError as err:
        return Response(err.body(), err.status, media_type="application/json")
    return Response(orjson.dumps(answer, default=str), media_type="application/json")


async def _explain(
    gw: Gateway, handler: Handler, body: dict[str, Any], headers: Headers
) -> dict[str, Any]:
    try:
        raw = orjson.dumps(body)
    except orjson.JSONEncodeError:  # deeper than a request may be: parse says so
        raise bad_request(
            f"the request nests objects and arrays more than {MAX_NESTING} levels deep",
            code="nesting_too_deep",
        ) from None
    parsed = parse(raw, handler.endpoint)
    key = gw.access.authenticate(headers.get("authorization"))
    candidates = gw.targets_for(parsed.model)
    if candidates is None:
        raise handler._unknown_model(parsed.model)
    features = await handler.features.of(parsed, headers, candidates, key)
    if gw.monitor is not None:
        local_engines = [c for c in candidates if isinstance(c, LocalEngine)]
        features = await gw.monitor.exact_prompt_tokens(features, parsed.payload, local_engines)
    local, cloud = gw.runtime.views(candidates, gw.cloud_caps)
    decision = decide(features, local, cloud)
    return {
        "model": parsed.model,
        "decision": {
            "targets": list(decision.targets),
            "reason": decision.reason.value,
            "predicted_local_ttft_ms": decision.predicted_local_ttft_ms,
            "must_queue": decision.must_queue,
            "redact": decision.redact,
            "numbers": decision.explain,
        },
        "features": {
            **dataclasses.asdict(features),
            "endpoint": features.endpoint.value,
            "privacy": features.privacy.value,
        },
        "local": [dataclasses.asdict(s) for s in local],
        "cloud": [dataclasses.asdict(s) for s in cloud],
        "gpus": [dataclasses.asdict(g) for g in (gw.monitor.gpus if gw.monitor else ())],
    }
