"""Background watchers that keep the runtime store (the scheduler's inputs) fresh.

One vLLM /metrics scraper per local engine (queue counts, KV-cache use, measured prefill
and decode speed, its context window), one GPU sampler per box (each engine's busiest GPU
into its runtime), and one token counter per engine for the rare request near the context
limit. None of them runs inside a request except the token
counter, and it only when the cheap bound cannot tell.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from spillgate.models.engine import LocalEngine
from spillgate.models.gpu import GpuSampler, GpuState
from spillgate.models.load import EngineLoad, LoadScraper, max_num_seqs_from_args
from spillgate.models.tokens import TokenCounter
from spillgate.protocol import Endpoint
from spillgate.server.observe import Metrics
from spillgate.server.runtime import RuntimeStore
from spillgate.server.scheduler import RequestFeatures

log = logging.getLogger("spillgate.monitor")

VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"


def engine_gpus(gpus: Sequence[GpuState], env: Mapping[str, str]) -> list[GpuState]:
    """The GPUs an engine launched with `env` runs on: those its `CUDA_VISIBLE_DEVICES`
    names (indices, or UUIDs as CUDA takes them: whole or a prefix), else every GPU."""
    visible = env.get(VISIBLE_DEVICES)
    if visible is None:
        return list(gpus)
    named = [v.strip() for v in visible.split(",") if v.strip()]
    chosen = []
    for gpu in gpus:
        for name in named:
            if (name.isdigit() and int(name) == gpu.index) or gpu.uuid.startswith(name):
                chosen.append(gpu)
                break
    return chosen


def busiest_utilization(gpus: Sequence[GpuState]) -> float | None:
    """The highest utilisation (0..1) among `gpus`; None when there are none."""
    if not gpus:
        return None
    return max(g.utilization_pct for g in gpus) / 100.0


class EngineMonitor:
    def __init__(
        self,
        runtime: RuntimeStore,
        session: aiohttp.ClientSession,
        metrics: Metrics,
        interval_s: float,
    ) -> None:
        self.runtime = runtime
        self.metrics = metrics
        self.gpus: tuple[GpuState, ...] = ()
        self._session = session
        self._interval_s = interval_s
        self._scrapers: dict[str, tuple[LoadScraper, asyncio.Task[None]]] = {}
        self._counters: dict[str, TokenCounter] = {}
        self._gpu = GpuSampler(interval_s=max(interval_s, 1.0), on_sample=self._on_gpus)
        self._gpu_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._gpu_task = asyncio.create_task(self._gpu.run())

    def watch(self, engine: LocalEngine, args: list[str] | None = None) -> None:
        if engine.name in self._scrapers:
            return
        scraper = LoadScraper(
            engine.root_url,
            self._session,
            interval_s=self._interval_s,
            max_num_seqs=max_num_seqs_from_args(args or []),
            on_load=lambda load, e=engine: self._on_load(e, load),
            auth_headers=engine.auth_headers,
        )
        self._scrapers[engine.name] = (scraper, asyncio.create_task(scraper.run()))

    def unwatch(self, engine: LocalEngine) -> None:
        entry = self._scrapers.pop(engine.name, None)
        if entry is not None:
            entry[1].cancel()
        self._counters.pop(engine.name, None)
        self.runtime.engines.pop(engine.name, None)

    def _on_load(self, engine: LocalEngine, load: EngineLoad) -> None:
        scraper = self._scrapers.get(engine.name)
        self.runtime.engine(engine).apply_load(load, scraper[0].limits if scraper else None)

    def _on_gpus(self, gpus: tuple[GpuState, ...]) -> None:
        self.gpus = gpus
        for gpu in gpus:
            self.metrics.gpu_memory_used.labels(str(gpu.index)).set(gpu.memory_used_bytes)
            self.metrics.gpu_memory_total.labels(str(gpu.index)).set(gpu.memory_total_bytes)
            self.metrics.gpu_utilization.labels(str(gpu.index)).set(gpu.utilization_pct)
        for name, runtime in self.runtime.engines.items():
            cfg = self.runtime.engine_config(name)
            own = engine_gpus(gpus, cfg.env if cfg is not None else {})
            runtime.gpu_utilization = busiest_utilization(own)

    async def exact_prompt_tokens(
        self,
        features: RequestFeatures,
        endpoint: Endpoint,
        payload: dict[str, Any],
        engines: list[LocalEngine],
    ) -> RequestFeatures:
        """Count the prompt with the engine's own tokenizer when the bound cannot say it fits.

        Never a guess by characters where it matters: only a count may call a request too
        long for the local context window. `endpoint` and `payload`: the request as it is
        counted (a Responses or Messages request as chat).
        """
        for engine in engines:
            runtime = self.runtime.engine(engine)
            limit = runtime.settings.capabilities.max_context or runtime.max_model_len
            if limit is None or features.prompt_tokens_max + features.max_tokens <= limit:
                continue
            counter = self._counter(engine)
            if counter is None:
                continue
            fit = await counter.fits(endpoint, payload, limit)
            if fit.counted and fit.prompt_tokens is not None:
                exact = fit.prompt_tokens
                return dataclasses.replace(features, prompt_tokens=exact, prompt_tokens_max=exact)
            if fit.prompt_tokens_upper is not None:
                tighter = min(features.prompt_tokens_max, fit.prompt_tokens_upper)
                features = dataclasses.replace(features, prompt_tokens_max=tighter)
        return features

    async def count_prompt(
        self, endpoint: Endpoint, payload: dict[str, Any], engines: list[LocalEngine]
    ) -> int | None:
        """The prompt's tokens, counted by the first of `engines` that can (None: none can)."""
        for engine in engines:
            counter = self._counter(engine)
            if counter is not None:
                counted = await counter.count(endpoint, payload)
                if counted is not None:
                    return counted
        return None

    def _counter(self, engine: LocalEngine) -> TokenCounter | None:
        counter = self._counters.get(engine.name)
        if counter is None and engine.served_models and engine.ready:
            model = sorted(engine.served_models)[0]
            counter = TokenCounter(
                engine.root_url, model, self._session, auth_headers=engine.auth_headers
            )
            self._counters[engine.name] = counter
        return counter

    async def stop(self) -> None:
        tasks = [task for _, task in self._scrapers.values()]
        if self._gpu_task is not None:
            tasks.append(self._gpu_task)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._gpu.close()
