"""Who may make a request: the API key (401), the model it may use (403), its rate (429)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from spillgate.server.keys import ApiKey, KeyRing, forbid_model
from spillgate.server.ledger.store import Store, StoreUnavailable
from spillgate.server.limits import Limiter
from spillgate.server.observe import Metrics

log = logging.getLogger("spillgate.auth")


def credential(headers: Mapping[str, str]) -> str | None:
    """The key a client sent: `Authorization: Bearer <key>` as OpenAI clients send it, or
    `x-api-key: <key>` as Anthropic clients do (the first, when both are sent)."""
    authorization = headers.get("authorization")
    if authorization is not None:
        return authorization
    api_key = headers.get("x-api-key")
    return f"Bearer {api_key}" if api_key is not None else None


class Access:
    def __init__(self, enabled: bool, limiter: Limiter, metrics: Metrics) -> None:
        #: False only when the operator turned auth off (`auth.enabled: false`).
        self.enabled = enabled
        self.ring = KeyRing()
        self.limiter = limiter
        self.metrics = metrics

    def authenticate(self, authorization: str | None) -> ApiKey | None:
        """The caller's key, or None when auth is off; raises the 401 otherwise."""
        if not self.enabled:
            return None
        try:
            return self.ring.authenticate(authorization)
        except Exception:
            self.metrics.auth_failures.inc()
            raise

    async def admit(self, key: ApiKey | None, model: str) -> None:
        """403 when `key` may not use `model`; 429 when it is over its rate."""
        if key is None:
            return
        if not key.may_use(model):
            raise forbid_model(key, model)
        await self.limiter.admit(key)

    async def load(self, store: Store) -> None:
        self.ring.replace(await store.run(store.keys))

    async def refresh_forever(self, store: Store, interval_s: float) -> None:
        """Pick up keys created, changed or revoked through another replica."""
        while True:
            await asyncio.sleep(interval_s)
            # On failure keep the keys we have; the ledger writer reports the outage.
            with contextlib.suppress(StoreUnavailable):
                await self.load(store)
