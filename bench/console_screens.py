"""Screenshots of the operator console (docs/img/console_*.png), from a real run.

Starts a gateway with a stand-in engine (one request at a time, slowed so a burst
overflows it) and a fake OpenAI provider, makes a few keys with budgets, sends mixed
traffic (served locally, spilled on overload, an image the engine cannot read, one marked
on-prem, one refused for an unknown key), then opens each page in Debian's headless
Chromium (Playwright) at 1280 px width and saves it.

    .venv/bin/python bench/console_screens.py [--out docs/img]
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

from fakes.openai_server import FakeOpenAIServer  # noqa: E402
from harness import GatewayProcess, standin_engine_config  # noqa: E402

ADMIN_TOKEN = "screens-admin-token-0123456789"
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
PROVIDER_KEY = "sk-screens-provider-key"
IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/chart.png"}}
PAGES = ("overview", "decisions", "keys", "usage", "egress")


def make_key(url: str, name: str, **limits: Any) -> str:
    reply = httpx.post(f"{url}/admin/keys", json={"name": name, **limits}, headers=ADMIN)
    reply.raise_for_status()
    return str(reply.json()["key"])


def traffic(gateway: GatewayProcess, standin: str, keys: dict[str, str]) -> None:
    def chat(key: str, content: Any, headers: dict[str, str] | None = None) -> None:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
        with contextlib.suppress(openai.APIStatusError):  # refusals are part of the picture
            client.chat.completions.create(
                model="assistant",
                messages=[{"role": "user", "content": content}],
                max_tokens=32,
                extra_headers=headers or {},
            )

    for i in range(6):
        chat(keys["search-team"], f"summarise document {i}")
        chat(keys["support-bot"], f"draft a reply to ticket {i}")
    chat(keys["support-bot"], [{"type": "text", "text": "what does this show?"}, IMAGE])
    chat(keys["analytics"], [{"type": "text", "text": "read this chart"}, IMAGE])
    chat(keys["hr-assistant"], "a private note", {"x-spillgate-data": "on-prem"})
    chat("sk-sg-not-a-key", "hello")
    # A burst the slowed engine cannot take in time: the overflow spills (overload).
    httpx.post(f"{standin}/_standin/mode", json={"first_byte_delay_s": 1.2})
    jobs = [keys["search-team"]] * 4 + [keys["analytics"]] * 3 + [keys["support-bot"]] * 2
    with ThreadPoolExecutor(len(jobs)) as pool:
        list(pool.map(lambda key: chat(key, "rank these results"), jobs))
    httpx.post(f"{standin}/_standin/mode", json={})
    for i in range(3):
        chat(keys["hr-assistant"], f"kept local {i}", {"x-spillgate-data": "on-prem"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("no chromium on PATH: run `make browser-tools`")
    fake = FakeOpenAIServer("openai", PROVIDER_KEY).start()
    engine = standin_engine_config(
        "local",
        ["assistant-small"],
        scheduling={"max_concurrency": 1, "capabilities": {"images": False}},
    )
    config = {
        "engines": [engine],
        "providers": [
            {"name": "openai", "kind": "openai", "base_url": fake.base_url, "api_key": PROVIDER_KEY}
        ],
        "routes": {"assistant": ["assistant-small", "openai/gpt-4o-mini"]},
        "scheduler": {"latency_budget_ms": 800},
        "auth": {"enabled": True},
        "admin": {"token": ADMIN_TOKEN},
        "ledger": {"flush_interval_s": 0.05},
    }
    try:
        with tempfile.TemporaryDirectory() as tmp, GatewayProcess(config, Path(tmp)) as gateway:
            gateway.wait_engine_ready("local")
            keys = {
                "search-team": make_key(gateway.url, "search-team", budget_day_usd=5.0),
                "support-bot": make_key(gateway.url, "support-bot", budget_day_usd=2.0, rpm=600),
                "analytics": make_key(gateway.url, "analytics", budget_month_usd=50.0),
                "hr-assistant": make_key(gateway.url, "hr-assistant", onprem_only=True),
            }
            traffic(gateway, f"http://127.0.0.1:{engine['port']}", keys)
            time.sleep(1.5)  # the ledger's flush, and a fresh budget read
            shoot(gateway.url, chromium, args.out)
    finally:
        fake.stop()


def shoot(url: str, chromium: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{url}/ui/signin")
        page.get_by_label("Admin token").fill(ADMIN_TOKEN)
        page.get_by_role("button", name="Sign in").click()
        for name in PAGES:
            page.goto(f"{url}/ui/{name}")
            path = out / f"console_{name}.png"
            page.screenshot(path=str(path), full_page=True)
            print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        browser.close()


if __name__ == "__main__":
    main()
