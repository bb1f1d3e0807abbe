"""Admin JSON for what the console shows that the admin API did not have: the recent
decisions (with their explanations) and the live overview. Behind the admin token."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from spillgate.errors import GatewayError, bad_request
from spillgate.server.admin import require_admin
from spillgate.server.console.overview import overview
from spillgate.server.decisions import DecisionRing, Filters

if TYPE_CHECKING:
    from spillgate.server.gateway import Gateway

FILTERS = ("route", "reason", "key", "model")
MAX_LIMIT = 1000


def _json(data: object, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


def _error(err: GatewayError) -> Response:
    return Response(err.body(), err.status, headers=err.headers(), media_type="application/json")


def decision_filters(query: dict[str, str]) -> tuple[Filters, int]:
    """Filters and limit from query parameters; 400 naming an unknown one."""
    unknown = set(query) - {*FILTERS, "limit"}
    if unknown:
        raise bad_request(
            f"unknown filter {sorted(unknown)[0]!r}; filters: {', '.join(FILTERS)}, limit"
        )
    limit_text = query.get("limit", "100")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
        raise bad_request(f"`limit` must be a whole number from 1 to {MAX_LIMIT}", param="limit")
    values = {name: query.get(name) or None for name in FILTERS}
    return Filters(**values), int(limit_text)


def decisions_json(ring: DecisionRing, query: dict[str, str]) -> dict[str, object]:
    filters, limit = decision_filters(query)
    return {"data": [r.to_json() for r in ring.recent(filters, limit)], "kept": len(ring.records)}


def live_admin_router(gw: Gateway) -> APIRouter:
    router = APIRouter(prefix="/admin")
    token = gw.config.admin.token

    @router.get("/decisions")
    async def decisions(request: Request) -> Response:
        try:
            require_admin(token, request)
            return _json(decisions_json(gw.decisions, dict(request.query_params)))
        except GatewayError as err:
            return _error(err)

    @router.get("/decisions/{request_id}")
    async def decision(request: Request, request_id: str) -> Response:
        try:
            require_admin(token, request)
            found = gw.decisions.find(request_id)
            if found is None:
                raise GatewayError(
                    404,
                    f"no recent decision has the request id {request_id!r} (only the most "
                    f"recent {gw.decisions.records.maxlen} are kept)",
                    code="decision_not_found",
                )
            return _json(found.to_json(with_explain=True))
        except GatewayError as err:
            return _error(err)

    @router.get("/overview")
    async def live(request: Request) -> Response:
        try:
            require_admin(token, request)
            return _json(overview(gw))
        except GatewayError as err:
            return _error(err)

    return router
