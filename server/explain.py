"""Why would a request go where it goes? The decision and the numbers behind it, live.

`POST /admin/route/explain` (admin token) takes `{"request": <OpenAI body>, "headers":
{...}, "endpoint": "chat/completions"}` and answers what the scheduler would decide for it
right now, without sending it anywhere. `spillgate route --explain REQUEST.json` prints it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

from spillgate.errors import GatewayError, bad_request
from spillgate.models.gpu import GpuState
from spillgate.protocol import Endpoint
from spillgate.server.admin import require_admin
from spillgate.server.planner import Planner
from spillgate.server.requests import json_object
from spillgate.server.scheduler import LocalState
from spillgate.server.validation import MAX_NESTING


async def explain(
    planners: dict[str, Planner],
    admin_token: str | None,
    gpus: Callable[[], Sequence[GpuState]],
    request: Request,
) -> Response:
    """`planners`: each endpoint's, by path (`/v1/chat/completions`); `gpus`: the GPUs as
    last sampled."""
    try:
        require_admin(admin_token, request)
        asked = json_object(await request.body())
        if not isinstance(asked.get("request"), dict):
            raise bad_request('send {"request": <an OpenAI request body>, "headers": {...}}')
        endpoint = str(asked.get("endpoint", Endpoint.CHAT.value))
        planner = planners.get(f"/v1/{endpoint}")
        if planner is None:
            raise bad_request(f"unknown endpoint {endpoint!r}", param="endpoint")
        headers = Headers({k.lower(): str(v) for k, v in (asked.get("headers") or {}).items()})
        answer = await _explain(planner, asked["request"], headers)
        answer["gpus"] = [dataclasses.asdict(g) for g in gpus()]
    except GatewayError as err:
        return Response(err.body(), err.status, media_type="application/json")
    return Response(orjson.dumps(answer, default=str), media_type="application/json")


async def _explain(planner: Planner, body: dict[str, Any], headers: Headers) -> dict[str, Any]:
    """The request path's own plan, run dry: no admission, no budget claim, nothing sent."""
    try:
        raw = orjson.dumps(body)
    except orjson.JSONEncodeError:  # deeper than a request may be: parse says so
        raise bad_request(
            f"the request nests objects and arrays more than {MAX_NESTING} levels deep",
            code="nesting_too_deep",
        ) from None
    plan = await planner.plan(headers, raw)
    decision, features = plan.decision, plan.features
    return {
        "model": plan.parsed.model,
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
        "local": [_local_snapshot(s) for s in plan.local],
        "cloud": [dataclasses.asdict(s) for s in plan.cloud],
    }


def _local_snapshot(state: LocalState) -> dict[str, Any]:
    """A local engine as the decision saw it, with where its prefill rate came from."""
    return {
        **dataclasses.asdict(state),
        "prefill_source": "measured" if state.prefill_measured else "configured",
    }
