"""Cloud budgets per key: what each key has spent today and this month, and may it spend more.

`may_spend` is the pure check the scheduler calls before it lets a request spill; the
`BudgetBook` keeps the spend it reads, from the ledger database (every replica's records)
plus this gateway's own records that the database does not have yet.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from spillgate.server.keys import ApiKey
from spillgate.server.ledger.store import Store, StoreUnavailable
from spillgate.server.observe import Metrics

log = logging.getLogger("spillgate.budgets")

_DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class Spend:
    """Cloud spend in USD of one key since the start of the UTC day and of the UTC month."""

    day_usd: float = 0.0
    month_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class BudgetVerdict:
    allowed: bool
    #: Why not, in words a client can act on (None when allowed).
    message: str | None = None
    #: `onprem_only`, `daily_budget_exceeded` or `monthly_budget_exceeded`.
    code: str | None = None


ALLOWED = BudgetVerdict(True)


def may_spend(key: ApiKey | None, spent: Spend, estimated_cost_usd: float = 0.0) -> BudgetVerdict:
    """May `key` send a request that costs about `estimated_cost_usd` to a cloud provider?

    Pure: no I/O, no clock. `key` None means auth is off (no budget applies).
    """
    if key is None:
        return ALLOWED
    if key.onprem_only:
        return BudgetVerdict(False, "this API key is on-prem only", "onprem_only")
    for limit, used, period, code in (
        (key.budget_day_usd, spent.day_usd, "daily", "daily_budget_exceeded"),
        (key.budget_month_usd, spent.month_usd, "monthly", "monthly_budget_exceeded"),
    ):
        if limit is not None and (used >= limit or used + estimated_cost_usd > limit):
            return BudgetVerdict(
                False,
                f"this API key's {period} cloud budget of ${limit:.2f} is spent "
                f"(${used:.4f} used); ask your operator to raise it",
                code,
            )
    return ALLOWED


def period_starts(now: float) -> tuple[float, float]:
    """Epoch seconds of the start of the UTC day and of the UTC month holding `now`."""
    day = now - now % _DAY_S
    t = time.gmtime(now)
    return day, float(calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0)))


@dataclass(slots=True)
class _Charge:
    seq: int
    key_id: str
    cost_usd: float
    ts: float


class BudgetBook:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._db: dict[str, Spend] = {}
        self._db_periods = (0.0, 0.0)
        #: This run's charged records that the last database read did not include.
        self._pending: list[_Charge] = []

    def charge(self, seq: int, key_id: str, cost_usd: float, ts: float) -> None:
        """Count a record (ledger sequence number `seq`) with cloud cost against its key."""
        if cost_usd > 0:
            self._pending.append(_Charge(seq, key_id, cost_usd, ts))

    def spent(self, key_id: str, now: float) -> Spend:
        day_start, month_start = period_starts(now)
        db = self._db.get(key_id, Spend())
        day = db.day_usd if self._db_periods[0] == day_start else 0.0
        month = db.month_usd if self._db_periods[1] == month_start else 0.0
        for c in self._pending:
            if c.key_id == key_id:
                day += c.cost_usd if c.ts >= day_start else 0.0
                month += c.cost_usd if c.ts >= month_start else 0.0
        return Spend(day, month)

    def refreshed(
        self, sums: dict[str, tuple[float, float]], periods: tuple[float, float], seen_seq: int
    ) -> None:
        """Take a database read that includes this run's records up to `seen_seq`."""
        self._db = {k: Spend(d, m) for k, (d, m) in sums.items()}
        self._db_periods = periods
        self._pending = [c for c in self._pending if c.seq > seen_seq]

    def export(self, keys: list[ApiKey], now: float) -> None:
        gauge = self.metrics.budget_remaining
        for key in keys:
            spent = self.spent(key.id, now)
            for period, limit, used in (
                ("day", key.budget_day_usd, spent.day_usd),
                ("month", key.budget_month_usd, spent.month_usd),
            ):
                if limit is not None:
                    gauge.labels(key.name, period).set(max(0.0, limit - used))

    async def refresh_forever(
        self,
        store: Store,
        seen_seq: Callable[[int], int],
        keys: Callable[[], list[ApiKey]],
        interval_s: float,
    ) -> None:
        """Re-read spend from the database every `interval_s` (other replicas spend too)."""
        while True:
            await self.refresh(store, seen_seq)
            self.export(keys(), time.time())
            await asyncio.sleep(interval_s)

    async def refresh(self, store: Store, seen_seq: Callable[[int], int]) -> None:
        periods = period_starts(time.time())

        def read() -> tuple[dict[str, tuple[float, float]], int]:
            # On the store's thread, so no batch commits between the sum and the count.
            return store.spend_since(*periods), store.rows_written

        try:
            sums, rows_written = await store.run(read)
        except StoreUnavailable:
            return  # the ledger writer reports the outage; keep counting locally
        self.refreshed(sums, periods, seen_seq(rows_written))
