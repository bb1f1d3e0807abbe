"""Requests and tokens per minute, per key: in-process, or shared through Redis.

Both keep per-minute counters and estimate the last 60 seconds as the current minute plus
the part of the previous minute still inside the window (the sliding-window estimate), so
a burst at a minute's edge cannot pass twice the limit. With Redis the check and the count
are one Lua script, atomic across every gateway that shares it. TPM counts the tokens of
answered requests: a request is refused once the window's tokens have reached the limit.

When Redis does not answer, limits fall back to in-process counters (logged once, gauge
`spillgate_limits_redis_up` at 0) and Redis is tried again every `limits.redis_retry_s`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from spillgate.errors import GatewayError
from spillgate.server.config import LimitsConfig
from spillgate.server.keys import ApiKey
from spillgate.server.observe import Metrics
from spillgate.server.urls import redact_url

log = logging.getLogger("spillgate.limits")

_WINDOW_S = 60
_NO_LIMIT = -1

# KEYS: rpm now, rpm previous minute, tpm now, tpm previous minute.
# ARGV: rpm limit, tpm limit (-1: none), fraction of the current minute gone.
_ADMIT_LUA = """
local f = tonumber(ARGV[3])
local function recent(now_key, prev_key)
  return tonumber(redis.call('GET', prev_key) or '0') * (1 - f)
       + tonumber(redis.call('GET', now_key) or '0')
end
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
if rpm >= 0 and recent(KEYS[1], KEYS[2]) + 1 > rpm then return 'rpm' end
if tpm >= 0 and recent(KEYS[3], KEYS[4]) >= tpm then return 'tpm' end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], 150)
return ''
"""


@dataclass(slots=True)
class _Window:
    minute: int
    now: float = 0.0
    previous: float = 0.0

    def roll(self, minute: int) -> None:
        if minute != self.minute:
            self.previous = self.now if minute == self.minute + 1 else 0.0
            self.now = 0.0
            self.minute = minute

    def recent(self, fraction_gone: float) -> float:
        return self.previous * (1 - fraction_gone) + self.now


class LocalCounters:
    """The same estimate in one process's memory."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], _Window] = {}

    def _window(self, key_id: str, kind: str, minute: int) -> _Window:
        window = self._windows.get((key_id, kind))
        if window is None:
            window = self._windows[(key_id, kind)] = _Window(minute)
        window.roll(minute)
        return window

    def admit(self, key: ApiKey, now: float) -> str | None:
        minute, gone = divmod(now, _WINDOW_S)
        fraction = gone / _WINDOW_S
        requests = self._window(key.id, "rpm", int(minute))
        if key.rpm is not None and requests.recent(fraction) + 1 > key.rpm:
            return "rpm"
        tokens = self._window(key.id, "tpm", int(minute))
        if key.tpm is not None and tokens.recent(fraction) >= key.tpm:
            return "tpm"
        requests.now += 1
        return None

    def add_tokens(self, key_id: str, tokens: int, now: float) -> None:
        self._window(key_id, "tpm", int(now // _WINDOW_S)).now += tokens


class Limiter:
    def __init__(self, config: LimitsConfig, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self.local = LocalCounters()
        self._redis = None
        self._script = None
        self._redis_down_until = 0.0
        self._background: set[asyncio.Task[None]] = set()
        if config.redis_url:
            import redis.asyncio as aioredis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            self._redis = aioredis.Redis.from_url(
                config.redis_url,
                socket_timeout=config.redis_timeout_s,
                socket_connect_timeout=config.redis_timeout_s,
                retry=Retry(NoBackoff(), 0),  # a slow Redis must not multiply the wait
            )
            self._script = self._redis.register_script(_ADMIT_LUA)
            metrics.limits_redis_up.set(1)

    @property
    def shared(self) -> bool:
        return self._redis is not None and time.monotonic() >= self._redis_down_until

    async def admit(self, key: ApiKey) -> None:
        """Count one request of `key`; 429 with Retry-After when over its RPM or TPM."""
        if key.rpm is None and key.tpm is None:
            return
        now = time.time()
        over = await self._admit_shared(key, now) if self.shared else "local"
        if over == "local":
            over = self.local.admit(key, now)
        if over is not None:
            self.metrics.rate_limited.labels(over).inc()
            limit = key.rpm if over == "rpm" else key.tpm
            unit = "requests" if over == "rpm" else "tokens"
            raise GatewayError(
                429,
                f"rate limit reached: this API key may use {limit} {unit} per minute; "
                "retry after the time in the Retry-After header",
                type="rate_limit_error",
                code=f"{over}_limit_exceeded",
                retry_after_s=math.ceil(_WINDOW_S - now % _WINDOW_S),
            )

    async def _admit_shared(self, key: ApiKey, now: float) -> str | None:
        """The Redis verdict, or "local" when Redis did not answer."""
        assert self._script is not None
        minute = int(now // _WINDOW_S)
        keys = [
            _redis_key(key.id, kind, m) for kind in ("rpm", "tpm") for m in (minute, minute - 1)
        ]
        args = [_limit(key.rpm), _limit(key.tpm), (now % _WINDOW_S) / _WINDOW_S]
        try:
            verdict = await self._script(keys=keys, args=args)
        except Exception as err:  # any Redis failure: connection, timeout, protocol
            self._fall_back(err)
            return "local"
        self._back()
        return verdict.decode() if verdict else None

    def add_tokens(self, key: ApiKey, tokens: int) -> None:
        """Count an answered request's tokens (off the request path when shared)."""
        if key.tpm is None or tokens <= 0:
            return
        now = time.time()
        if not self.shared:
            self.local.add_tokens(key.id, tokens, now)
            return
        task = asyncio.create_task(self._add_shared(key.id, tokens, now))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _add_shared(self, key_id: str, tokens: int, now: float) -> None:
        assert self._redis is not None
        name = _redis_key(key_id, "tpm", int(now // _WINDOW_S))
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.incrby(name, tokens)
            pipe.expire(name, 150)
            await pipe.execute()
        except Exception as err:
            self._fall_back(err)
            self.local.add_tokens(key_id, tokens, now)

    def _fall_back(self, err: Exception) -> None:
        self.metrics.limits_fallbacks.inc()
        if self._redis_down_until == 0.0:
            log.error(
                "Redis for shared rate limits is unreachable; limits are per gateway until "
                "it returns",
                extra={"error": type(err).__name__, "redis": _redis_host(self.config)},
            )
        self.metrics.limits_redis_up.set(0)
        self._redis_down_until = time.monotonic() + self.config.redis_retry_s

    def _back(self) -> None:
        if self._redis_down_until != 0.0:
            self._redis_down_until = 0.0
            self.metrics.limits_redis_up.set(1)
            log.info("Redis is back; rate limits are shared again")

    async def close(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._redis is not None:
            await self._redis.aclose()


def _limit(value: int | None) -> int:
    return _NO_LIMIT if value is None else value


def _redis_key(key_id: str, kind: str, minute: int) -> str:
    return f"spillgate:limit:{key_id}:{kind}:{minute}"


def _redis_host(config: LimitsConfig) -> str:
    return redact_url(config.redis_url or "")
