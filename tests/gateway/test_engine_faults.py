"""Engines that are slow, dead or dying, and clients that walk away."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from harness import (
    STANDIN,
    GatewayProcess,
    alive,
    children_of,
    free_port,
    standin_engine_config,
    wait_http,
)

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello there"}]}


def _gateway(tmp_path: Path, **engine_extra: object) -> GatewayProcess:
    server = engine_extra.pop("server", {})
    engine = standin_engine_config("e1", ["m"], **engine_extra)
    return GatewayProcess({"engines": [engine], "server": server}, tmp_path)


def _metric(gateway: GatewayProcess, line_start: str) -> float:
    for line in httpx.get(f"{gateway.url}/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {line_start}")


def _wait(predicate, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_client_disconnect_mid_stream_cancels_upstream(tmp_path: Path) -> None:
    with _gateway(tmp_path) as gw:
        engine = f"http://127.0.0.1:{gw.config['engines'][0]['port']}"
        httpx.post(f"{engine}/_standin/mode", json={"chunks": 200, "chunk_delay_s": 0.05})
        with httpx.stream(
            "POST", f"{gw.url}/v1/chat/completions", json={**CHAT, "stream": True}
        ) as r:
            lines = r.iter_lines()
            assert next(lines).startswith("data: ")
            # leave after the first chunk: the context manager closes the connection
        _wait(lambda: httpx.get(f"{engine}/_standin/stats").json()["cancelled_streams"] == 1)
        stats = httpx.get(f"{engine}/_standin/stats").json()
        assert stats["active_streams"] == 0 and stats["completed_streams"] == 0
        _wait(lambda: _metric(gw, 'spillgate_engine_in_flight{engine="e1"}') == 0.0)
        # The gateway still serves afterwards, and the abandoned request was counted as such.
        assert httpx.post(f"{gw.url}/v1/chat/completions", json=CHAT).status_code == 200
        assert (
            _metric(
                gw,
                'spillgate_requests_total{endpoint="chat/completions",reason="local",route="e1",status="499"}',
            )
            == 1
        )


def test_engine_dying_mid_stream_ends_with_error_event_then_restarts(tmp_path: Path) -> None:
    with _gateway(tmp_path) as gw:
        engine = f"http://127.0.0.1:{gw.config['engines'][0]['port']}"
        httpx.post(f"{engine}/_standin/mode", json={"chunks": 10, "exit_after_chunks": 3})
        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0)
        received = []
        with pytest.raises(openai.APIError, match="stopped mid-stream"):
            for chunk in client.chat.completions.create(**CHAT, stream=True):
                received.append(chunk)
        assert len(received) == 3
        # The supervisor restarts the engine; the gateway serves again.
        _wait(lambda: httpx.get(f"{gw.url}/readyz").status_code == 200, 30)
        assert _metric(gw, 'spillgate_engine_restarts{engine="e1"}') >= 1
        reply = client.chat.completions.create(**CHAT)
        assert reply.choices[0].message.content == "You said: hello there"


def test_no_engine_ready_is_503_with_retry_after(tmp_path: Path) -> None:
    gw = _gateway(tmp_path, args=["--startup-delay", "60"], server={"ready_wait_s": 0.3})
    with gw.start(wait_ready=False):
        assert httpx.get(f"{gw.url}/readyz").status_code == 503
        resp = httpx.post(f"{gw.url}/v1/chat/completions", json=CHAT)
        assert resp.status_code == 503
        assert resp.headers["retry-after"] == "5"
        assert resp.json()["error"]["code"] == "no_target_ready"


def test_slow_engine_start_holds_requests_until_ready(tmp_path: Path) -> None:
    gw = _gateway(tmp_path, args=["--startup-delay", "2"], server={"ready_wait_s": 30})
    with gw.start(wait_ready=False):
        resp = httpx.post(f"{gw.url}/v1/chat/completions", json=CHAT, timeout=30)
        assert resp.status_code == 200
        assert resp.json()["choices"][0]["message"]["content"] == "You said: hello there"


def test_request_held_for_a_starting_engine_that_cannot_take_it_is_400(tmp_path: Path) -> None:
    """Once ready, the engine's context window is too small for it: the client's to change."""
    gw = _gateway(tmp_path, args=["--startup-delay", "2"], server={"ready_wait_s": 30})
    too_long = {"model": "m", "messages": [{"role": "user", "content": "word " * 20_000}]}
    with gw.start(wait_ready=False):
        resp = httpx.post(f"{gw.url}/v1/chat/completions", json=too_long, timeout=30)
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["code"] == "context_too_long"


def test_engine_down_while_serving_gets_503_not_a_hang(tmp_path: Path) -> None:
    gw = _gateway(tmp_path, server={"ready_wait_s": 0.5})
    with gw:
        engine = f"http://127.0.0.1:{gw.config['engines'][0]['port']}"
        httpx.post(f"{engine}/_standin/mode", json={"healthy": False})
        _wait(lambda: httpx.get(f"{gw.url}/readyz").status_code == 503)
        resp = httpx.post(f"{gw.url}/v1/chat/completions", json=CHAT)
        assert resp.status_code == 503 and "retry-after" in resp.headers


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_no_engine_outlives_the_gateway(tmp_path: Path, sig: int) -> None:
    gw = _gateway(tmp_path).start()
    assert gw.proc is not None
    engines = children_of(gw.proc.pid)
    assert engines, "the gateway launched no engine process"
    gw.stop(sig)
    _wait(lambda: not any(alive(pid) for pid in engines), 20)


def test_attach_to_running_engine_by_url(tmp_path: Path) -> None:
    port = free_port()
    engine = subprocess.Popen(
        [*STANDIN, "--port", str(port), "--served-model-name", "ext-a", "ext-b"]
    )
    gport = free_port()
    with open(tmp_path / "gateway.log", "wb") as log:
        gateway = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "spillgate.server.cli",
                "serve",
                "--port",
                str(gport),
                "--local-url",
                f"http://127.0.0.1:{port}/v1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SPILLGATE_HOME": str(tmp_path)},
        )
    try:
        url = f"http://127.0.0.1:{gport}"
        wait_http(f"{url}/readyz", 20)
        # The model names were discovered from the engine's own /v1/models.
        _wait(lambda: len(httpx.get(f"{url}/v1/models").json()["data"]) == 2)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        reply = client.chat.completions.create(
            model="ext-b", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content == "You said: hi"
        gateway.terminate()
        gateway.wait(10)
        assert engine.poll() is None, "an attached engine is not the gateway's to stop"
    finally:
        gateway.kill()
        engine.terminate()
        engine.wait(10)
