"""The Keys page's changes: form fields read into the admin API's own key models
(`KeyCreate`, `KeyUpdate`), then handed to the same `KeyBook` that serves /admin/keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from spillgate.errors import GatewayError
from spillgate.server.admin import KeyBook, KeyCreate, KeyUpdate
from spillgate.server.keys import ApiKey

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
    return await KeyBook(gw).all()


async def find(gw: Gateway, key_id: str) -> ApiKey:
    return await KeyBook(gw).find(key_id)


async def create(gw: Gateway, form: Mapping[str, str]) -> tuple[ApiKey, str]:
    """A new key from the form: (the key, its secret, to be shown this once)."""
    body: KeyCreate = _validated(KeyCreate, {"name": form.get("name", "").strip(), **limits(form)})
    try:
        return await KeyBook(gw).create(body)
    except GatewayError as err:
        raise _form_error(err) from None


async def update(gw: Gateway, key_id: str, form: Mapping[str, str]) -> ApiKey:
    body: KeyUpdate = _validated(KeyUpdate, limits(form))
    try:
        return await KeyBook(gw).update(key_id, body)
    except GatewayError as err:
        raise _form_error(err) from None


async def revoke(gw: Gateway, key_id: str) -> ApiKey:
    return await KeyBook(gw).revoke(key_id)


def _form_error(err: GatewayError) -> Exception:
    """A refusal the operator can fix in the form (a name taken, a revoked key) is shown
    on it; anything else (404) stays the gateway's error."""
    if err.status == 409:
        return FormError(f"{err.param or 'key'}: {err.message}")
    return err
