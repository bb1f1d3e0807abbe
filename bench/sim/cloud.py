"""Cloud providers as the simulator sees them: latency, speed, price, rate limits.

Time to first token is lognormal: `median` and `p99` fix it (sigma = ln(p99 / median) / z99),
plus a prompt-reading term per prompt token. Each request draws its luck once per provider
from the seed, so every policy that sends request 17 to a provider meets the same latency.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from spillgate.fallback.prices import Price, PriceBook, cost_usd
from spillgate.protocol import Usage

Z99 = 2.3263  # the standard normal's 99th percentile


@dataclass(frozen=True, slots=True)
class CloudProfile:
    name: str  # the provider family, as fallback/prices.json names it
    model: str
    price: Price
    ttft_median_s: float
    ttft_p99_s: float
    prompt_s_per_token: float
    requests_per_minute: int | None = None  # None: no rate limit modelled

    @property
    def sigma(self) -> float:
        return math.log(self.ttft_p99_s / self.ttft_median_s) / Z99

    def cost_usd(self, prompt_tokens: int, output_tokens: int) -> float:
        return cost_usd(self.price, Usage(prompt_tokens, output_tokens))

    def ttft_s(self, prompt_tokens: int, z: float) -> float:
        return self.ttft_median_s * math.exp(self.sigma * z) + prompt_tokens * (
            self.prompt_s_per_token
        )


# TTFT medians are of the order public trackers (Artificial Analysis) show for these models;
# the p99s are our assumption of a heavy tail (about 4x the median), and the prompt term
# (20,000 prompt tokens/s) an assumption too. Output speed is not modelled: the benchmark
# measures time to first token only.
# (family, model, TTFT median s, TTFT p99 s, s per prompt token)
_LATENCY = (
    ("gemini", "gemini-2.0-flash", 0.45, 2.0, 0.00005),
    ("openai", "gpt-4o-mini", 0.40, 1.6, 0.00005),
    ("anthropic", "claude-3-5-haiku", 0.65, 2.5, 0.00005),
)


def default_providers() -> tuple[CloudProfile, ...]:
    """The simulated providers, priced from the gateway's own list (fallback/prices.json)."""
    book = PriceBook.shipped()
    providers = []
    for family, model, median, p99, per_prompt_token in _LATENCY:
        price = book.lookup(family, model)
        if price is None:
            raise LookupError(f"fallback/prices.json has no price for {family}/{model}")
        providers.append(CloudProfile(family, model, price, median, p99, per_prompt_token))
    return tuple(providers)


@dataclass(frozen=True, slots=True)
class CloudAnswer:
    provider: str
    ttft_s: float
    cost_usd: float


class Cloud:
    """The providers during one run: draws, rate-limit windows, and the first tokens a
    gateway has seen so far (never those still to come), in the order they arrived."""

    def __init__(self, providers: Sequence[CloudProfile], seed: int, n_requests: int) -> None:
        self.providers = {p.name: p for p in providers}
        rng = random.Random(seed)
        self._luck = [[rng.gauss(0.0, 1.0) for _ in providers] for _ in range(n_requests)]
        self._index = {p.name: i for i, p in enumerate(providers)}
        self._sent: dict[str, deque[float]] = {p.name: deque() for p in providers}
        self._pending: list[tuple[float, str, float]] = []
        self.observed: list[tuple[str, float]] = []  # (provider, TTFT s)

    def by_price(self) -> list[CloudProfile]:
        """Cheapest first, for a typical request (output priced at a quarter of the tokens)."""
        return sorted(self.providers.values(), key=lambda p: 3 * p.price.input + p.price.output)

    def observe_until(self, t: float) -> None:
        while self._pending and self._pending[0][0] <= t:
            _, name, ttft = heapq.heappop(self._pending)
            self.observed.append((name, ttft))

    def headroom(self, name: str, t: float) -> int | None:
        """Requests still allowed in the current minute; None when unlimited."""
        limit = self.providers[name].requests_per_minute
        if limit is None:
            return None
        sent = self._sent[name]
        while sent and sent[0] <= t - 60.0:
            sent.popleft()
        return limit - len(sent)

    def send(
        self, name: str, request_id: int, prompt_tokens: int, output_tokens: int, t: float
    ) -> CloudAnswer | None:
        """One request sent at `t`; None when the provider's rate limit answers 429."""
        headroom = self.headroom(name, t)
        if headroom is not None and headroom <= 0:
            return None
        self._sent[name].append(t)
        profile = self.providers[name]
        ttft = profile.ttft_s(prompt_tokens, self._luck[request_id][self._index[name]])
        heapq.heappush(self._pending, (t + ttft, name, ttft))
        return CloudAnswer(name, ttft, profile.cost_usd(prompt_tokens, output_tokens))
