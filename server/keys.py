"""API keys: how they are made, stored (a hash only) and checked on each request.

A key is `sk-sg-` and 43 URL-safe characters (256 random bits), shown once when it is made.
The database keeps its SHA-256: with that much entropy a plain hash cannot be reversed or
guessed, and checking a request costs one hash and one dict lookup, no database call.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

from spillgate.errors import GatewayError

KEY_PREFIX = "sk-sg-"
_SHOWN_CHARS = len(KEY_PREFIX) + 4


@dataclass(slots=True)
class ApiKey:
    id: str
    name: str
    #: The first characters of the key, to recognise it in listings.
    prefix: str
    #: Model ids the key may ask for; empty means every model.
    allowed_models: list[str] = field(default_factory=list)
    #: Never spill this key's requests to a cloud provider.
    onprem_only: bool = False
    latency_budget_ms: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    budget_day_usd: float | None = None
    budget_month_usd: float | None = None
    tags: dict[str, str] = field(default_factory=dict)
    #: The operator's opt-in to log this key's prompts and completions.
    log_prompts: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0
    revoked_at: float | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def may_use(self, model: str) -> bool:
        return not self.allowed_models or model in self.allowed_models

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data["revoked"] = self.revoked
        return data


def new_secret() -> tuple[str, str, str]:
    """A fresh key: (the key itself, its hash, its shown prefix)."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    return secret, hash_secret(secret), secret[:_SHOWN_CHARS]


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Whether an `Authorization` header is `Bearer <token>`, compared in constant time.

    Compared as bytes: `hmac.compare_digest` refuses str with non-ASCII characters.
    """
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(_header_bytes(given.strip()), token.encode())


def _header_bytes(value: str) -> bytes:
    # The ASGI server decoded the header's bytes as latin-1: this gives the client's bytes.
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode()


def _unauthorized(message: str) -> GatewayError:
    return GatewayError(401, message, code="invalid_api_key")


class KeyRing:
    """Every key by hash, in memory, reloaded from the database in the background."""

    def __init__(self) -> None:
        self._by_hash: dict[str, ApiKey] = {}

    def replace(self, rows: list[tuple[str, ApiKey]]) -> None:
        self._by_hash = dict(rows)

    def put(self, key_hash: str, key: ApiKey) -> None:
        self._by_hash[key_hash] = key

    def by_id(self, key_id: str) -> ApiKey | None:
        return next((k for k in self._by_hash.values() if k.id == key_id), None)

    def live(self) -> list[ApiKey]:
        return [k for k in self._by_hash.values() if not k.revoked]

    def authenticate(self, authorization: str | None) -> ApiKey:
        """The key a request's `Authorization` header carries; 401 when there is none."""
        if not authorization:
            raise _unauthorized(
                "no API key: send `Authorization: Bearer sk-sg-...` (or `x-api-key: sk-sg-...`, "
                "as Anthropic clients do; ask your operator for a key)"
            )
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise _unauthorized("the Authorization header must be `Bearer <your API key>`")
        key = self._by_hash.get(hash_secret(secret.strip()))
        if key is None:
            raise _unauthorized("the API key is not known here; check it, or ask for a new one")
        if key.revoked:
            raise _unauthorized("the API key was revoked; ask your operator for a new one")
        return key


def forbid_model(key: ApiKey, model: str) -> GatewayError:
    allowed = ", ".join(key.allowed_models)
    return GatewayError(
        403,
        f"this API key may not use model {model!r}; it may use: {allowed}",
        type="permission_error",
        code="model_not_allowed",
        param="model",
    )
