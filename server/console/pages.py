"""The console's pages under /ui: sign-in, overview, decisions, keys, usage, egress.

Server-rendered HTML (Jinja2, autoescaped) and one small script that refreshes the
overview. Every page but sign-in needs a session; every POST needs its session's CSRF
token and a same-origin Origin (or Referer). With no `admin.token`, the console is off.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

import jinja2
import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from spillgate.errors import GatewayError
from spillgate.server.console import keyforms
from spillgate.server.console.api import decision_filters, decisions_json
from spillgate.server.console.charts import stacked_bars
from spillgate.server.console.overview import key_labels, overview
from spillgate.server.console.session import (
    COOKIE,
    Session,
    SessionBook,
    SigninThrottle,
    csrf_ok,
    same_origin,
    same_text,
)
from spillgate.server.ledger.store import GroupBy, StoreUnavailable, UsageQuery
from spillgate.server.usage import summarize

if TYPE_CHECKING:
    from spillgate.server.gateway import Gateway

HERE = Path(__file__).resolve().parent
STATIC = {"console.css": "text/css", "overview.js": "text/javascript"}
MAX_FORM_BYTES = 16 * 1024
GROUPS: tuple[GroupBy, ...] = ("key", "model", "day", "target")
_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
    "x-frame-options": "DENY",
}
NAV = (
    ("overview", "Overview"),
    ("decisions", "Decisions"),
    ("keys", "Keys"),
    ("usage", "Usage"),
    ("egress", "Egress audit"),
)


def _clock(ts: float | None) -> str:
    if ts is None:
        return "—"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _usd(value: float | None) -> str:
    if value is None:
        return "—"
    if 0 < value < 0.01:
        return f"${value:.6f}"
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(clock=_clock, usd=_usd, pct=_pct)
    env.globals["nav"] = NAV
    return env


def _date(value: str, param: str) -> float | None:
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise GatewayError(400, f"{param}: enter a date as 2025-01-31", code="bad_date") from None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


def console_router(gw: Gateway) -> APIRouter:
    router = APIRouter(prefix="/ui", include_in_schema=False)
    token = gw.config.admin.token
    env = templates()
    sessions = SessionBook()
    throttle = SigninThrottle()
    static = {name: (HERE / "static" / name).read_bytes() for name in STATIC}

    def html(name: str, session: Session | None, status: int = 200, **context: Any) -> Response:
        body = env.get_template(name).render(
            csrf=session.csrf if session else "", signed_in=session is not None, **context
        )
        return Response(body, status, headers=_HEADERS, media_type="text/html")

    def session_of(request: Request) -> Session | None:
        return sessions.get(request.cookies.get(COOKIE))

    def to_signin(request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/ui/signin?next={quote(target)}", 303, headers=_HEADERS)

    async def form_of(request: Request) -> dict[str, str]:
        raw = await request.body()
        if len(raw) > MAX_FORM_BYTES:
            raise GatewayError(413, "the form is too large", code="form_too_large")
        return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))

    def origin_ok(request: Request) -> bool:
        h = request.headers
        return same_origin(h.get("origin"), h.get("referer"), request.url.scheme, h.get("host"))

    def refused(session: Session | None, why: str) -> Response:
        return html("refused.html", session, 403, message=why)

    async def change(request: Request) -> tuple[Session, dict[str, str]] | Response:
        """The session and form of a POST that may change something, or the refusal."""
        session = session_of(request)
        if session is None:
            return to_signin(request)
        if not origin_ok(request):
            return refused(session, "This change did not come from a console page (Origin).")
        form = await form_of(request)
        if not csrf_ok(session, form.get("csrf")):
            return refused(session, "This form is stale or forged (CSRF token); reload the page.")
        return session, form

    if token is None:

        @router.get("")
        @router.get("/{rest:path}")
        @router.post("/{rest:path}")
        async def disabled(request: Request) -> Response:
            return html("disabled.html", None, 404)

        return router

    @router.get("")
    async def root(request: Request) -> Response:
        return RedirectResponse("/ui/overview", 303, headers=_HEADERS)

    @router.get("/static/{name}")
    async def asset(name: str) -> Response:
        if name not in static:
            return Response(b"not found", 404, media_type="text/plain")
        headers = {"x-content-type-options": "nosniff", "cache-control": "no-cache"}
        return Response(static[name], headers=headers, media_type=STATIC[name])

    # -- sign-in --------------------------------------------------------------------------

    def next_page(value: str | None) -> str:
        # Only a console path: never an open redirect to another site.
        if value and value.startswith("/ui/") and not value.startswith("/ui//"):
            return value
        return "/ui/overview"

    @router.get("/signin")
    async def signin_form(request: Request) -> Response:
        return html("signin.html", None, next=next_page(request.query_params.get("next")))

    @router.post("/signin")
    async def signin(request: Request) -> Response:
        form = await form_of(request)
        target = next_page(form.get("next"))
        if not origin_ok(request):
            return html("signin.html", None, 403, next=target, error="Sign in from this page.")
        client = request.client.host if request.client else "unknown"
        wait_s = throttle.retry_in_s(client)
        if wait_s > 0:
            error = f"Too many wrong tokens; try again in {int(wait_s) + 1} seconds."
            reply = html("signin.html", None, 429, next=target, error=error)
            reply.headers["retry-after"] = str(int(wait_s) + 1)
            return reply
        if not same_text(form.get("token"), token):
            throttle.failed(client)
            return html("signin.html", None, 401, next=target, error="That token is not right.")
        throttle.succeeded(client)
        session_id, _ = sessions.open()
        reply = RedirectResponse(target, 303, headers=_HEADERS)
        reply.set_cookie(
            COOKIE,
            session_id,
            max_age=int(sessions.ttl_s),
            path="/ui",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return reply

    @router.post("/signout")
    async def signout(request: Request) -> Response:
        checked = await change(request)
        if isinstance(checked, Response):
            return checked
        sessions.close(request.cookies.get(COOKIE))
        reply = RedirectResponse("/ui/signin", 303, headers=_HEADERS)
        reply.delete_cookie(COOKIE, path="/ui")
        return reply

    # -- overview -------------------------------------------------------------------------

    def overview_sections(data: dict[str, Any]) -> dict[str, str]:
        module = env.get_template("overview_sections.html").make_module({"o": data})
        return {name: str(getattr(module, name)()) for name in ("traffic", "health", "money")}

    @router.get("/overview")
    async def overview_page(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return to_signin(request)
        sections = overview_sections(overview(gw))
        return html("overview.html", session, active="overview", sections=sections)

    @router.get("/overview.json")
    async def overview_json(request: Request) -> Response:
        if session_of(request) is None:
            return Response(b'{"error":"signed out"}', 401, media_type="application/json")
        data = overview(gw)
        body = orjson.dumps({"data": data, "html": overview_sections(data)})
        return Response(body, headers=_HEADERS, media_type="application/json")

    # -- decisions ------------------------------------------------------------------------

    @router.get("/decisions")
    async def decisions_page(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return to_signin(request)
        query = {k: v for k, v in request.query_params.items() if v}
        try:
            filters, limit = decision_filters(query)
        except GatewayError as err:
            return html("refused.html", session, 400, message=err.message)
        rows = gw.decisions.recent(filters, limit)
        everything = list(gw.decisions.records)
        choices = {
            "route": sorted({r.route for r in everything}),
            "reason": sorted({r.reason for r in everything}),
            "model": sorted({r.model for r in everything}),
            "key": sorted({r.key_name or r.key_id for r in everything if r.key_id}),
        }
        return html(
            "decisions.html",
            session,
            active="decisions",
            rows=rows,
            filters=filters,
            choices=choices,
            keys=key_labels(rows),
            kept=len(everything),
        )

    @router.get("/decisions.json")
    async def decisions_data(request: Request) -> Response:
        if session_of(request) is None:
            return Response(b'{"error":"signed out"}', 401, media_type="application/json")
        try:
            data = decisions_json(gw.decisions, dict(request.query_params))
        except GatewayError as err:
            return Response(err.body(), err.status, media_type="application/json")
        return Response(orjson.dumps(data), headers=_HEADERS, media_type="application/json")

    @router.get("/decisions/{request_id}")
    async def decision_page(request: Request, request_id: str) -> Response:
        session = session_of(request)
        if session is None:
            return to_signin(request)
        found = gw.decisions.find(request_id)
        if found is None:
            message = f"No recent decision has the request id {request_id!r}."
            return html("refused.html", session, 404, message=message)
        explain = found.to_json(with_explain=True)["explain"]
        return html("decision.html", session, active="decisions", r=found, explain=explain)

    # -- keys -----------------------------------------------------------------------------

    async def keys_page(session: Session, status: int = 200, **context: Any) -> Response:
        keys = sorted(await keyforms.all_keys(gw), key=lambda k: (k.revoked, k.name))
        now = time.time()
        spent = {k.id: gw.budgets.spent(k.id, now) for k in keys}
        return html("keys.html", session, status, active="keys", keys=keys, spent=spent, **context)

    def store_down(session: Session) -> Response:
        message = "The ledger database is unavailable; retry when it is back."
        return html("refused.html", session, 503, message=message)

    @router.get("/keys")
    async def keys_list(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return to_signin(request)
        try:
            return await keys_page(session)
        except StoreUnavailable:
            return store_down(session)

    @router.post("/keys")
    async def keys_create(request: Request) -> Response:
        checked = await change(request)
        if isinstance(checked, Response):
            return checked
        session, form = checked
        try:
            key, secret = await keyforms.create(gw, form)
        except keyforms.FormError as err:
            return await keys_page(session, 400, error=str(err), form=form)
        except StoreUnavailable:
            return store_down(session)
        return await keys_page(session, 201, created=key, secret=secret)

    @router.get("/keys/{key_id}")
    async def key_page(request: Request, key_id: str) -> Response:
        session = session_of(request)
        if session is None:
            return to_signin(request)
        try:
            key = await keyforms.find(gw, key_id)
        except GatewayError as err:
            return html("refused.html", session, err.status, message=err.message)
        spent = gw.budgets.spent(key.id, time.time())
        return html("key.html", session, active="keys", key=key, spent=spent)

    @router.post("/keys/{key_id}")
    async def key_update(request: Request, key_id: str) -> Response:
        checked = await change(request)
        if isinstance(checked, Response):
            return checked
        session, form = checked
        try:
            key = await keyforms.update(gw, key_id, form)
        except keyforms.FormError as err:
            key = await keyforms.find(gw, key_id)
            spent = gw.budgets.spent(key.id, time.time())
            return html("key.html", session, 400, active="keys", key=key, spent=spent,
                        error=str(err))  # fmt: skip
        except GatewayError as err:
            return html("refused.html", session, err.status, message=err.message)
        spent = gw.budgets.spent(key.id, time.time())
        return html("key.html", session, active="keys", key=key, spent=spent, saved=True)

    @router.post("/keys/{key_id}/revoke")
    async def key_revoke(request: Request, key_id: str) -> Response:
        checked = await change(request)
        if isinstance(checked, Response):
            return checked
        session, _ = checked
        try:
            key = await keyforms.revoke(gw, key_id)
        except GatewayError as err:
            return html("refused.html", session, err.status, message=err.message)
        return await keys_page(session, revoked=key)

    # -- usage and egress -----------------------------------------------------------------

    @router.get("/usage")
    async def usage_page(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return to_signin(request)
        q = request.query_params
        group_by = q.get("group_by", "key")
        if group_by not in GROUPS:
            group_by = "key"
        try:
            since, until = _date(q.get("since", ""), "since"), _date(q.get("until", ""), "until")
            query = UsageQuery(None, None, None, since, until, group_by)
            rows = await gw.store.run(gw.store.usage, query)
            names = {k.id: k.name for k in await keyforms.all_keys(gw)}
        except GatewayError as err:
            return html("refused.html", session, err.status, message=err.message)
        except StoreUnavailable:
            return store_down(session)
        data = summarize(rows, gw.price_per_token, names if group_by == "key" else {})
        bars = [
            (
                str(g["name"] or g["group"] or "anonymous"),
                float(g["local_requests"]),
                float(g["requests"] - g["local_requests"]),
            )
            for g in data
        ]
        chart = stacked_bars(bars, ("served locally", "cloud or refused"))
        totals = {
            "requests": sum(g["requests"] for g in data),
            "cost_usd": sum(g["cost_usd"] for g in data),
            "saved_usd": sum(g["saved_usd"] or 0.0 for g in data),
        }
        return html(
            "usage.html",
            session,
            active="usage",
            rows=data,
            chart=chart,
            totals=totals,
            group_by=group_by,
            groups=GROUPS,
            since=q.get("since", ""),
            until=q.get("until", ""),
        )

    @router.get("/egress")
    async def egress_page(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return to_signin(request)
        q = request.query_params
        try:
            since, until = _date(q.get("since", ""), "since"), _date(q.get("until", ""), "until")
            report = (await gw.store.run(gw.store.egress_report, since, until)).to_json()
            verified = None
            if q.get("verify") == "1":
                verified = (await gw.store.run(gw.store.verify_egress)).to_json()
        except GatewayError as err:
            return html("refused.html", session, err.status, message=err.message)
        except StoreUnavailable:
            return store_down(session)
        return html(
            "egress.html",
            session,
            active="egress",
            report=report,
            verified=verified,
            since=q.get("since", ""),
            until=q.get("until", ""),
        )

    return router
