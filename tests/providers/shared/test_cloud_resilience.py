"""The circuit breaker's states and the retry rule, driven with a fake clock (no sleeping)."""

from __future__ import annotations

from spillgate.errors import UpstreamError
from spillgate.fallback.breaker import BreakerState, CircuitBreaker
from spillgate.fallback.resilience import RetryPolicy, retry_after_seconds


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_threshold_then_half_opens_for_one_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=30, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED and breaker.allows_request()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allows_request()
    assert breaker.seconds_until_retry() == 30
    clock.now += 30
    assert breaker.state is BreakerState.HALF_OPEN and breaker.allows_request()
    breaker.on_attempt()
    assert not breaker.allows_request(), "only one probe may go while half-open"
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allows_request()


def test_a_failed_probe_reopens_at_once() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=5, cooldown_s=10, clock=clock)
    for _ in range(5):
        breaker.record_failure()
    clock.now += 10
    breaker.on_attempt()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.seconds_until_retry() == 10


def test_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=10, clock=Clock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_hold_keeps_the_target_out_as_long_as_the_provider_asked() -> None:
    clock = Clock()
    breaker = CircuitBreaker(clock=clock)
    breaker.hold(120)
    assert breaker.state is BreakerState.OPEN
    clock.now += 119
    assert not breaker.allows_request()
    clock.now += 1
    assert breaker.allows_request()


def _error(status: int, retry_after: float | None = None, code: str | None = None) -> UpstreamError:
    return UpstreamError(status, "x", code=code, retry_after_s=retry_after)


def test_retry_waits_out_a_short_retry_after_but_not_a_long_one() -> None:
    policy = RetryPolicy(max_attempts=3, max_retry_after_s=10)
    assert policy.delay(0, _error(429, retry_after=2), remaining_s=100) == 2
    assert policy.delay(0, _error(429, retry_after=30), remaining_s=100) is None


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    low = RetryPolicy(max_attempts=10, backoff_base_s=1, backoff_max_s=4, random=lambda: 0.0)
    high = RetryPolicy(max_attempts=10, backoff_base_s=1, backoff_max_s=4, random=lambda: 1.0)
    err = _error(503)
    assert [low.delay(a, err, 100) for a in range(4)] == [0.5, 1.0, 2.0, 2.0]
    assert [high.delay(a, err, 100) for a in range(4)] == [1.0, 2.0, 4.0, 4.0]


def test_no_retry_for_client_errors_auth_failures_or_past_the_budget() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.delay(0, UpstreamError(400, "bad", retryable=False), 100) is None
    assert policy.delay(0, _error(502, code="provider_auth_failed"), 100) is None
    assert policy.delay(2, _error(500), 100) is None, "attempts are used up"
    assert policy.delay(0, _error(429, retry_after=5), remaining_s=3) is None, "past the deadline"


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"retry-after": "7"}) == 7
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert retry_after_seconds({"retry-after": date}, now=1445412470.0) == 10
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None
