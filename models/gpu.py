"""Per-GPU memory and utilisation through NVML, sampled in the background.

Utilisation is a weak load signal (a GPU at 100% can still have batch room); the scheduler
uses it as context beside the engines' own queue and KV-cache figures. Without a GPU, a
driver or the NVML library, the sampler says so once at info level and reports no GPUs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("spillgate.gpu")


@dataclass(frozen=True, slots=True)
class GpuState:
    """One GPU as of `sampled_at` (a `time.monotonic()` reading)."""

    index: int
    name: str
    uuid: str
    memory_used_bytes: int
    memory_total_bytes: int
    #: Percent of the last sample period in which a kernel ran (NVML's `gpu` utilisation).
    utilization_pct: int
    sampled_at: float

    @property
    def memory_used_fraction(self) -> float:
        return self.memory_used_bytes / self.memory_total_bytes if self.memory_total_bytes else 0.0


def _load_nvml() -> Any | None:
    """The initialised `pynvml` module, or None where NVML cannot be used here."""
    try:
        import pynvml
    except ImportError:
        log.info("no GPU metrics: the nvidia-ml-py package is not installed")
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        log.info("no GPU metrics: NVML is not available here (%s)", exc)
        return None
    return pynvml


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class GpuSampler:
    """Samples every GPU NVML sees; `latest` holds the last sample (empty without NVML).

    NVML is initialised on the first sample, so constructing a sampler costs nothing.
    """

    def __init__(
        self,
        *,
        interval_s: float = 1.0,
        on_sample: Callable[[tuple[GpuState, ...]], None] | None = None,
    ) -> None:
        self.interval_s = interval_s
        self.latest: tuple[GpuState, ...] = ()
        self._on_sample = on_sample
        self._nvml: Any | None = None
        self._tried = False
        self._failing = False

    @property
    def available(self) -> bool:
        """True once NVML has been initialised; False before the first sample or without it."""
        return self._nvml is not None

    def sample(self) -> tuple[GpuState, ...]:
        """Read every GPU now (blocking NVML calls of microseconds each); () without NVML."""
        if not self._tried:
            self._tried = True
            self._nvml = _load_nvml()
        nvml = self._nvml
        if nvml is None:
            return ()
        now = time.monotonic()
        states = []
        try:
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                rates = nvml.nvmlDeviceGetUtilizationRates(handle)
                states.append(
                    GpuState(
                        index=index,
                        name=_text(nvml.nvmlDeviceGetName(handle)),
                        uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                        memory_used_bytes=int(memory.used),
                        memory_total_bytes=int(memory.total),
                        utilization_pct=int(rates.gpu),
                        sampled_at=now,
                    )
                )
        except nvml.NVMLError as exc:
            # A lost GPU or a driver reload: report nothing rather than stale numbers, and say
            # so once per episode, not every second.
            if not self._failing:
                log.warning("GPU metrics unavailable: %s", exc)
            self._failing = True
            return ()
        if self._failing:
            log.info("GPU metrics available again")
        self._failing = False
        return tuple(states)

    async def run(self) -> None:
        """Sample every `interval_s` until cancelled; stop quietly if there is no NVML."""
        while True:
            self.latest = await asyncio.to_thread(self.sample)
            if self._on_sample is not None:
                self._on_sample(self.latest)
            if not self.available:
                return
            await asyncio.sleep(self.interval_s)

    def close(self) -> None:
        if self._nvml is not None:
            self._nvml.nvmlShutdown()
            self._nvml = None
