"""A circuit breaker per cloud target: stop sending to a provider that keeps failing.

closed: requests flow; `failure_threshold` failures in a row open the circuit.
open: the target is skipped for `cooldown_s` (or as long as a provider's Retry-After asks).
half-open: after the cooldown one probe request may go; its success closes the circuit,
its failure opens it again. The clock is injected so the states can be tested without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum


class BreakerState(IntEnum):
    """The value of the `spillgate_circuit_state` gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int = 5,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._open_until: float | None = None
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._open_until is None:
            return BreakerState.CLOSED
        if self._clock() < self._open_until:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def allows_request(self) -> bool:
        """Closed, or half-open with no probe in flight yet."""
        state = self.state
        return state is BreakerState.CLOSED or (
            state is BreakerState.HALF_OPEN and not self._probing
        )

    def on_attempt(self) -> None:
        if self.state is BreakerState.HALF_OPEN:
            self._probing = True

    def record_success(self) -> None:
        self._failures = 0
        self._open_until = None
        self._probing = False

    def record_inconclusive(self) -> None:
        """An answer that says nothing of the provider's health (the client's own bad
        request): no count changes, and a half-open probe leaves room for the next one."""
        self._probing = False

    def record_failure(self) -> None:
        self._failures += 1
        half_open = self.state is BreakerState.HALF_OPEN
        self._probing = False
        if half_open or self._failures >= self.failure_threshold:
            self._open_until = self._clock() + self.cooldown_s

    def hold(self, seconds: float) -> None:
        """The provider asked us to stay away this long (a Retry-After we would not wait out)."""
        until = self._clock() + seconds
        if self._open_until is None or until > self._open_until:
            self._open_until = until
        self._probing = False

    def seconds_until_retry(self) -> float:
        if self._open_until is None:
            return 0.0
        return max(0.0, self._open_until - self._clock())
