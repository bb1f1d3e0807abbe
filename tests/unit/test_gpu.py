"""GPU state through NVML: real GPUs where there are some, a quiet nothing where there are none."""

from __future__ import annotations

import logging

import pynvml
import pytest

from spillgate.models.gpu import GpuSampler


def _nvml_present() -> bool:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


HAS_NVML = _nvml_present()


@pytest.mark.skipif(HAS_NVML, reason="this machine has NVML; the GPU test below covers it")
async def test_without_nvml_reports_no_gpus_once_and_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen = []
    sampler = GpuSampler(interval_s=0.01, on_sample=seen.append)
    with caplog.at_level(logging.INFO, logger="spillgate.gpu"):
        await sampler.run()  # returns at once: there is nothing to sample
        assert sampler.sample() == ()
    assert sampler.latest == () and seen == [()]
    assert not sampler.available
    records = [r for r in caplog.records if r.name == "spillgate.gpu"]
    assert len(records) == 1 and records[0].levelno == logging.INFO
    assert "no GPU metrics" in records[0].getMessage()


@pytest.mark.skipif(not HAS_NVML, reason="no NVML here; the degrade test above covers it")
def test_samples_every_gpu_nvml_sees() -> None:
    sampler = GpuSampler()
    try:
        states = sampler.sample()
        assert sampler.available and len(states) == pynvml.nvmlDeviceGetCount() >= 1
        for i, gpu in enumerate(states):
            assert gpu.index == i and gpu.name and gpu.uuid.startswith("GPU-")
            assert 0 < gpu.memory_used_bytes <= gpu.memory_total_bytes
            assert 0 <= gpu.utilization_pct <= 100
            assert 0.0 < gpu.memory_used_fraction <= 1.0
    finally:
        sampler.close()
