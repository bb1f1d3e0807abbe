"""Cloud budgets per key: what each key has spent today and this month, and may it spend more.

`may_spend` is the pure check the scheduler calls before it lets a request spill; the
`BudgetBook` keeps the spend it reads, from the ledger database (every replica's records)
plus this gateway's own records that the database does not have yet, plus the worst-case
cost of the requests it has in flight at cloud targets (`CloudSpend`), so that neither one
large request nor many at once can run past a budget.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spillgate.errors import GatewayError
from spillgate.fallback.prices import Price, cost_usd
from spillgate.protocol import Endpoint, Usage
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
        if limit is None:
            continue
        if used >= limit:
            return BudgetVerdict(
                False,
                f"this API key's {period} cloud budget of ${limit:.2f} is spent "
                f"(${used:.4f} used); ask your operator to raise it",
                code,
            )
        if used + estimated_cost_usd > limit:
            return BudgetVerdict(
                False,
                f"this request may cost up to ${estimated_cost_usd:.4f} at a cloud target, "
                f"more than the ${limit - used:.4f} left of this API key's {period} cloud "
                f"budget of ${limit:.2f}; lower max_tokens or n, or ask your operator to "
                "raise it",
                code,
            )
    return ALLOWED


@dataclass(frozen=True, slots=True)
class OutputAsked:
    """The completion tokens a request may be billed for: `answers` answers (`n`, or
    `best_of`) of at most `per_answer` tokens (None: the request sets no limit)."""

    answers: int
    per_answer: int | None

    @classmethod
    def of(cls, payload: dict[str, Any], endpoint: Endpoint) -> OutputAsked:
        if endpoint is Endpoint.EMBEDDINGS:
            return cls(0, 0)
        answers = max(_count(payload.get("n")) or 1, _count(payload.get("best_of")) or 1)
        per_answer = _count(payload.get("max_completion_tokens"))
        if per_answer is None:
            per_answer = _count(payload.get("max_tokens"))
        return cls(answers, per_answer)

    def at_most(self, max_output: int | None, default_max_tokens: int) -> int:
        """At a target whose answers hold at most `max_output` tokens (None: unknown);
        `default_max_tokens` per answer where neither the request nor the target limits it."""
        per_answer = self.per_answer
        if per_answer is None:
            per_answer = max_output or default_max_tokens
        if max_output is not None:
            per_answer = min(per_answer, max_output)
        return self.answers * per_answer


def _count(value: Any) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return value if ok else None


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


@dataclass(eq=False, slots=True)
class _Hold:
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
        #: Worst-case costs of requests in flight at cloud targets (see CloudSpend).
        self._holds: set[_Hold] = set()

    def claim(
        self,
        key: ApiKey | None,
        prompt_tokens: int,
        output: OutputAsked,
        default_max_tokens: int,
    ) -> CloudSpend | None:
        """A request's claim on its key's cloud budget; None where no budget applies."""
        if key is None or (key.budget_day_usd is None and key.budget_month_usd is None):
            return None
        return CloudSpend(self, key, prompt_tokens, output, default_max_tokens)

    def charge(self, seq: int, key_id: str, cost_usd: float, ts: float) -> None:
        """Count a record (ledger sequence number `seq`) with cloud cost against its key."""
        if cost_usd > 0:
            self._pending.append(_Charge(seq, key_id, cost_usd, ts))

    def hold(self, key_id: str, cost_usd: float, ts: float) -> _Hold:
        """Count `cost_usd` as spent by `key_id` until `unhold`."""
        hold = _Hold(key_id, cost_usd, ts)
        self._holds.add(hold)
        return hold

    def unhold(self, hold: _Hold) -> None:
        self._holds.discard(hold)

    def spent(self, key_id: str, now: float) -> Spend:
        day_start, month_start = period_starts(now)
        db = self._db.get(key_id, Spend())
        day = db.day_usd if self._db_periods[0] == day_start else 0.0
        month = db.month_usd if self._db_periods[1] == month_start else 0.0
        counted: list[_Charge | _Hold] = [*self._pending, *self._holds]
        for c in counted:
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
                    gauge.labels(key.id, period).set(max(0.0, limit - used))

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


class CloudSpend:
    """One request's claim on its key's cloud budget.

    Before the request goes to a priced cloud target, `reserve` holds its worst case there
    as spent (prompt tokens at the input price, billable output tokens at the output
    price), so requests in parallel see each other's; a worst case the budget cannot cover
    is refused. At the end `release` gives the hold back, as the ledger record charges the
    real cost.
    """

    def __init__(
        self,
        book: BudgetBook,
        key: ApiKey,
        prompt_tokens: int,
        output: OutputAsked,
        default_max_tokens: int,
    ) -> None:
        self.book = book
        self.key = key
        self.prompt_tokens = prompt_tokens
        self.output = output
        self.default_max_tokens = default_max_tokens
        self._hold: _Hold | None = None

    def reserve(
        self, price: Price | None, max_output: int | None, now: float
    ) -> GatewayError | None:
        """Hold the worst case at a target of `price` whose answers hold at most
        `max_output` tokens (replacing an earlier target's hold); the 429 to answer when
        it does not fit. An unpriced target's answers are not costed: nothing to hold."""
        self.release()
        if price is None:
            return None
        output_tokens = self.output.at_most(max_output, self.default_max_tokens)
        worst = cost_usd(price, Usage(self.prompt_tokens, output_tokens))
        verdict = may_spend(self.key, self.book.spent(self.key.id, now), worst)
        if not verdict.allowed:
            return GatewayError(
                429,
                verdict.message or "this API key's cloud budget is spent",
                type="insufficient_quota",
                code="cloud_budget_exhausted",
            )
        self._hold = self.book.hold(self.key.id, worst, now)
        return None

    def release(self) -> None:
        if self._hold is not None:
            self.book.unhold(self._hold)
            self._hold = None
