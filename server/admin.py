"""The admin API under /admin: keys (create, list, show, update, revoke), usage, and the
egress audit (report, chain verification).

Protected by its own bearer token (`admin.token`), never by an API key. Bodies are
validated here with pydantic and every error is an OpenAI-style error object that names
the field and says what to change.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Annotated, Any, get_args

import orjson
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from spillgate.errors import GatewayError, bad_request
from spillgate.server.keys import ApiKey, bearer_matches, new_key_id, new_secret
from spillgate.server.ledger.store import DuplicateKeyName, GroupBy, StoreUnavailable, UsageQuery
from spillgate.server.requests import json_object
from spillgate.server.usage import summarize

if TYPE_CHECKING:
    from spillgate.server.gateway import Gateway

KeyName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,63}$")]
ModelId = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Usd = Annotated[float, Field(ge=0, allow_inf_nan=False)]
_NOT_NULL = ("name", "allowed_models", "onprem_only", "tags", "log_prompts")


class _KeyFields(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    allowed_models: list[ModelId] | None = None
    onprem_only: bool | None = None
    latency_budget_ms: Annotated[int, Field(gt=0)] | None = None
    rpm: Annotated[int, Field(ge=1)] | None = None
    tpm: Annotated[int, Field(ge=1)] | None = None
    budget_day_usd: Usd | None = None
    budget_month_usd: Usd | None = None
    tags: dict[Annotated[str, StringConstraints(max_length=64)], str] | None = None
    log_prompts: bool | None = None


class KeyCreate(_KeyFields):
    name: KeyName


class KeyUpdate(_KeyFields):
    name: KeyName | None = None


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


def _error(err: GatewayError) -> Response:
    return Response(err.body(), err.status, headers=err.headers(), media_type="application/json")


def _validation_message(err: ValidationError) -> tuple[str, str | None]:
    item = err.errors()[0]
    field = ".".join(str(p) for p in item["loc"]) or None
    msg = item["msg"]
    if item["type"] == "extra_forbidden":
        msg = "unknown field; the key fields are: name, " + ", ".join(_KeyFields.model_fields)
    elif field and field.startswith("budget_") and item["type"] == "greater_than_equal":
        msg = "a budget cannot be negative; 0 allows no cloud spend, null removes the budget"
    elif field == "name" and item["type"] == "string_pattern_mismatch":
        msg = "use 1-64 letters, digits and _ . @ : - (starting with a letter or digit)"
    return (f"`{field}`: {msg}" if field else msg), field


async def _body(request: Request, model: type[BaseModel]) -> Any:
    data = json_object(await request.body())
    try:
        return model.model_validate(data)
    except ValidationError as err:
        message, field = _validation_message(err)
        raise bad_request(message, param=field) from None


def _when(value: str, param: str) -> float:
    """Epoch seconds from `2025-01-31`, an ISO date-time (UTC unless it says), or seconds."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(
            f"`{param}` must be a date (2025-01-31), an ISO date-time or epoch seconds",
            param=param,
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def require_admin(token: str | None, request: Request) -> None:
    """Raise unless the request carries the admin token (and the admin API is on)."""
    if token is None:
        raise GatewayError(
            403,
            "the admin API is off; set admin.token in the configuration to use it",
            type="permission_error",
            code="admin_disabled",
        )
    if not bearer_matches(request.headers.get("authorization"), token):
        raise GatewayError(
            401,
            "send the admin token as `Authorization: Bearer <admin.token>`",
            code="invalid_admin_token",
        )


class KeyBook:
    """Creating, changing and revoking API keys: the one implementation behind /admin/keys
    and the console's Keys page. Errors are `GatewayError`s that say what to change."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    async def all(self) -> list[ApiKey]:
        """Every key, revoked ones too, read fresh from the database."""
        await self.gw.access.load(self.gw.store)
        return [k for _, k in await self.gw.store.run(self.gw.store.keys)]

    async def find(self, ident: str) -> ApiKey:
        """A key by id or by name (a live key first)."""
        keys = await self.all()
        match = [k for k in keys if k.id == ident] or sorted(
            (k for k in keys if k.name == ident), key=lambda k: (k.revoked, -k.created_at)
        )
        if not match:
            raise GatewayError(
                404, f"no API key has the id or name {ident!r}", code="key_not_found"
            )
        return match[0]

    async def create(self, body: KeyCreate) -> tuple[ApiKey, str]:
        """A new key: (the key, its secret). The secret is never stored, only its hash, so
        this is the one time it can be shown."""
        secret, key_hash, prefix = new_secret()
        now = time.time()
        fields = body.model_dump(exclude_none=True)
        key = ApiKey(id=new_key_id(), prefix=prefix, created_at=now, updated_at=now, **fields)
        try:
            await self.gw.store.run(self.gw.store.insert_key, key, key_hash)
        except DuplicateKeyName:
            advice = "; choose another name or revoke that key first"
            raise _duplicate_name(body.name, advice) from None
        self.gw.access.ring.put(key_hash, key)
        return key, secret

    async def update(self, ident: str, body: KeyUpdate) -> ApiKey:
        """The fields the body sets, set (null removes a limit)."""
        for name in _NOT_NULL:
            if name in body.model_fields_set and getattr(body, name) is None:
                raise bad_request(f"`{name}` cannot be null", param=name)
        key = await self.find(ident)
        if key.revoked:
            raise GatewayError(
                409,
                f"API key {key.name} ({key.id}) is revoked; it cannot change",
                code="key_revoked",
            )
        for name in body.model_fields_set:
            setattr(key, name, getattr(body, name))
        key.updated_at = time.time()
        try:
            await self.gw.store.run(self.gw.store.update_key, key)
        except DuplicateKeyName:
            raise _duplicate_name(key.name, "") from None
        await self.gw.access.load(self.gw.store)
        return key

    async def revoke(self, ident: str) -> ApiKey:
        """Revoked from now on (at once on this replica); revoking twice changes nothing."""
        key = await self.find(ident)
        if not key.revoked:
            key.revoked_at = key.updated_at = time.time()
            await self.gw.store.run(self.gw.store.update_key, key)
            await self.gw.access.load(self.gw.store)
        return key


def _duplicate_name(name: str | None, advice: str) -> GatewayError:
    return GatewayError(
        409,
        f"a live API key is already named {name!r}{advice}",
        code="duplicate_key_name",
        param="name",
    )


def admin_router(gw: Gateway) -> APIRouter:
    router = APIRouter(prefix="/admin")
    token = gw.config.admin.token

    def check_admin(request: Request) -> None:
        require_admin(token, request)

    book = KeyBook(gw)

    def shown(key: ApiKey) -> dict[str, Any]:
        spent = gw.budgets.spent(key.id, time.time())
        return {**key.public(), "spend": {"day_usd": spent.day_usd, "month_usd": spent.month_usd}}

    async def guarded(request: Request, work: Any) -> Response:
        try:
            check_admin(request)
            return await work()
        except GatewayError as err:
            return _error(err)
        except StoreUnavailable:
            return _error(
                GatewayError(
                    503,
                    "the ledger database is unavailable; retry when it is back",
                    type="server_error",
                    code="ledger_unavailable",
                    retry_after_s=5,
                )
            )

    @router.post("/keys")
    async def create_key(request: Request) -> Response:
        async def work() -> Response:
            key, secret = await book.create(await _body(request, KeyCreate))
            # The only time the key itself is shown: only its hash is stored.
            return _json({**shown(key), "key": secret}, 201)

        return await guarded(request, work)

    @router.get("/keys")
    async def list_keys(request: Request) -> Response:
        async def work() -> Response:
            everything = request.query_params.get("include_revoked") in ("1", "true")
            keys = await book.all()
            return _json({"data": [shown(k) for k in keys if everything or not k.revoked]})

        return await guarded(request, work)

    @router.get("/keys/{ident}")
    async def show_key(request: Request, ident: str) -> Response:
        async def work() -> Response:
            return _json(shown(await book.find(ident)))

        return await guarded(request, work)

    @router.patch("/keys/{ident}")
    async def update_key(request: Request, ident: str) -> Response:
        async def work() -> Response:
            key = await book.update(ident, await _body(request, KeyUpdate))
            return _json(shown(key))

        return await guarded(request, work)

    @router.delete("/keys/{ident}")
    async def revoke_key(request: Request, ident: str) -> Response:
        async def work() -> Response:
            key = await book.revoke(ident)
            return _json(shown(key))

        return await guarded(request, work)

    @router.get("/usage")
    async def usage(request: Request) -> Response:
        async def work() -> Response:
            q = request.query_params
            unknown = set(q) - {"key", "model", "target", "since", "until", "group_by"}
            if unknown:
                raise bad_request(
                    f"unknown filter {sorted(unknown)[0]!r}; filters: key, model, target, "
                    "since, until, group_by"
                )
            group_by = q.get("group_by", "key")
            if group_by not in get_args(GroupBy):
                raise bad_request(
                    "`group_by` must be one of key, model, target, day", param="group_by"
                )
            key_id = (await book.find(q["key"])).id if "key" in q else None
            since, until = _period(q.get("since"), q.get("until"))
            query = UsageQuery(key_id, q.get("model"), q.get("target"), since, until, group_by)
            rows = await gw.store.run(gw.store.usage, query)
            names = {k.id: k.name for _, k in await gw.store.run(gw.store.keys)}
            data = summarize(rows, gw.price_per_token, names if group_by == "key" else {})
            return _json({"group_by": group_by, "data": data})

        return await guarded(request, work)

    @router.get("/audit/egress")
    async def egress_audit(request: Request) -> Response:
        async def work() -> Response:
            q = request.query_params
            unknown = set(q) - {"since", "until"}
            if unknown:
                raise bad_request(f"unknown filter {sorted(unknown)[0]!r}; filters: since, until")
            since, until = _period(q.get("since"), q.get("until"))
            report = await gw.store.run(gw.store.egress_report, since, until)
            return _json(report.to_json())

        return await guarded(request, work)

    @router.get("/audit/verify")
    async def egress_verify(request: Request) -> Response:
        async def work() -> Response:
            return _json((await gw.store.run(gw.store.verify_egress)).to_json())

        return await guarded(request, work)

    return router


def _period(since_text: str | None, until_text: str | None) -> tuple[float | None, float | None]:
    since = _when(since_text, "since") if since_text is not None else None
    until = _when(until_text, "until") if until_text is not None else None
    if since is not None and until is not None and until <= since:
        raise bad_request("`until` must be later than `since`", param="until")
    return since, until
