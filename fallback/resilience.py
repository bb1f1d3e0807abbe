"""Timeouts and the retry rule for one cloud target: pure values and pure decisions."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from spillgate.errors import ErrorCode, UpstreamError

# Failures a second try at the same target cannot fix; the next target of the route may.
_NOT_WORTH_RETRYING_HERE = frozenset(
    {
        ErrorCode.PROVIDER_AUTH_FAILED,
        ErrorCode.PROVIDER_MODEL_NOT_FOUND,
        ErrorCode.PROVIDER_NOT_STREAMING,
        ErrorCode.UNSUPPORTED_PARAMETER,
        ErrorCode.UNSUPPORTED_ENDPOINT,
    }
)

# Answers in a 5xx status that say more about the request than about the provider.
_THE_REQUESTS_FAULT = frozenset(
    {ErrorCode.PROVIDER_MODEL_NOT_FOUND, ErrorCode.PROVIDER_NOT_STREAMING}
)


@dataclass(frozen=True)
class Timeouts:
    #: Opening the TCP (and TLS) connection.
    connect_s: float = 10.0
    #: From sending the request to the first byte of the answer, and the longest silence
    #: allowed between two reads of a stream.
    first_byte_s: float = 60.0
    #: The whole call, retries and the streamed answer included.
    total_s: float = 600.0


@dataclass(frozen=True)
class RetryPolicy:
    """Retries at the same target before the route moves on to its next target."""

    #: Tries in all at this target (1 = no retry).
    max_attempts: int = 2
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    #: A provider's Retry-After up to this long is waited out; a longer one moves the
    #: request on to the next target and keeps this one out of rotation that long.
    max_retry_after_s: float = 10.0
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def delay(self, attempt: int, err: UpstreamError, remaining_s: float) -> float | None:
        """Seconds to wait before try number `attempt + 1`, or None to stop trying here.

        `attempt` counts from 0 (the first try failed). Retried: 429 and 5xx answers,
        timeouts and refused connections. With a Retry-After, that; without, exponential
        backoff with jitter (half fixed, half random, so retrying clients spread out).
        """
        if not err.retryable or err.code in _NOT_WORTH_RETRYING_HERE:
            return None
        if not is_upstream_fault(err):
            return None
        if attempt + 1 >= self.max_attempts:
            return None
        if err.retry_after_s is not None:
            if err.retry_after_s > self.max_retry_after_s:
                return None
            wait = err.retry_after_s
        else:
            step = min(self.backoff_max_s, self.backoff_base_s * (2**attempt))
            wait = step / 2 + self.random() * step / 2
        return wait if wait < remaining_s else None


def is_upstream_fault(err: UpstreamError) -> bool:
    """Did the provider (or the way to it) fail, rather than the client's request?

    Faults: refused connections, timeouts, 5xx, 429, a stream cut short. A client's own bad
    request (400, 404, 413, 422 as the provider saw it; the OpenAI family's 404 travels as a
    502) is not one, nor is a stream request the provider answered whole: neither may count
    against the provider's breaker.
    """
    if err.code in _THE_REQUESTS_FAULT:
        return False
    return err.status == 429 or err.status >= 500


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """A provider's wish to be left alone, from `retry-after-ms` or `retry-after`.

    Every provider kind reads it here. `retry-after` is seconds or an HTTP date (RFC 9110).
    Header names are matched in any case (CloudTarget passes them lower-cased).
    """
    ms = _header(headers, "retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = _header(headers, "retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """`name` (lower case) in `headers`, whatever case they write it in."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value
