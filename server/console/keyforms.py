"""The Keys page's changes: form fields read into the admin API's own key models
(`KeyCreate`, `KeyUpdate`), then the same store calls /admin/keys makes."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from spillgate.errors import GatewayError
from spillgate.server.admin import KeyCreate, KeyUpdate
from spillgate.server.keys import ApiKey, new_key_id, new_secret
from spillgate.server.ledger.store import DuplicateKeyName

if TYPE_CHECKING:
    from spillgate.server.gateway import Gateway

#: The limits a form may set; an empty field removes the limit.
INT_FIELDS = ("latency_budget_ms", "rpm", "tpm")
USD_FIELDS = ("budget_day_usd", "budget_month_usd")


class FormError(ValueError):
    """A form field the operator must change; the message names it."""


def _number(form: Mapping[str, str], name: str, kind: type) -> Any:
    text = form.get(name, "").strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number of US dollars"
        raise FormError(f"{name}: enter {what}, or leave it empty for no limit") from None


def limits(form: Mapping[str, str]) -> dict[str, Any]:
    """The limit fields, the on-prem flag and the allowed models, as the admin API takes
    them."""
    fields: dict[str, Any] = {name: _number(form, name, int) for name in INT_FIELDS}
    fields |= {name: _number(form, name, float) for name in USD_FIELDS}
    models = form.get("allowed_models", "")
    fields["allowed_models"] = [m.strip() for m in models.split(",") if m.strip()]
    fields["onprem_only"] = form.get("onprem_only") == "on"
    return fields


def _validated(model: type[KeyCreate] | type[KeyUpdate], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        item = err.errors()[0]
        field = ".".join(str(p) for p in item["loc"])
        raise FormError(f"{field}: {item['msg']}") from None


async def all_keys(gw: Gateway) -> list[ApiKey]:
    return [k for _, k in await gw.store.run(gw.store.keys)]


async def find(gw: Gateway, key_id: str) -> ApiKey:
    match = [k for k in await all_keys(gw) if k.id == key_id]
    if not match:
        raise GatewayError(404, f"no API key has the id {key_id!r}", code="key_not_found")
    return match[0]


async def create(gw: Gateway, form: Mapping[str, str]) -> tuple[ApiKey, str]:
    """A new key from the form: (the key, its secret, to be shown this once)."""
    body: KeyCreate = _validated(KeyCreate, {"name": form.get("name", "").strip(), **limits(form)})
    secret, key_hash, prefix = new_secret()
    now = time.time()
    key = ApiKey(
        id=new_key_id(),
        prefix=prefix,
        created_at=now,
        updated_at=now,
        **body.model_dump(exclude_none=True),
    )
    try:
        await gw.store.run(gw.store.insert_key, key, key_hash)
    except DuplicateKeyName:
        raise FormError(
            f"name: a live API key is already named {body.name!r}; choose another"
        ) from None
    gw.access.ring.put(key_hash, key)
    return key, secret


async def update(gw: Gateway, key_id: str, form: Mapping[str, str]) -> ApiKey:
    body: KeyUpdate = _validated(KeyUpdate, limits(form))
    key = await find(gw, key_id)
    if key.revoked:
        raise FormError(f"API key {key.name} is revoked; it cannot change")
    for name in body.model_fields_set:
        setattr(key, name, getattr(body, name))
    key.updated_at = time.time()
    await gw.store.run(gw.store.update_key, key)
    await gw.access.load(gw.store)
    return key


async def revoke(gw: Gateway, key_id: str) -> ApiKey:
    key = await find(gw, key_id)
    if not key.revoked:
        key.revoked_at = key.updated_at = time.time()
        await gw.store.run(gw.store.update_key, key)
        await gw.access.load(gw.store)
    return key
