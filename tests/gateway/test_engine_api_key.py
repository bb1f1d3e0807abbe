"""A launched engine takes a key only the gateway knows, handed over out of `ps`'s sight; an
attached engine's configured key is sent too; vLLM flags that would undo either are refused.

The stand-in engine enforces the key on /v1 as vLLM's `--api-key` does.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from harness import (
    STANDIN,
    GatewayProcess,
    children_of,
    free_port,
    standin_engine_config,
    wait_http,
)

from spillgate.models.launch import request_logging_off, vllm_argv
from spillgate.server.config import ConfigError, from_dict

MESSAGES = [{"role": "user", "content": "hello engine"}]
PROVIDER_KEY = "sk-provider-key-the-engine-must-not-see-0123"


def standin_pid(gateway: GatewayProcess) -> int:
    assert gateway.proc is not None
    for pid in children_of(gateway.proc.pid):
        if "standin_engine.py" in Path(f"/proc/{pid}/cmdline").read_text():
            return pid
    raise AssertionError("the gateway launched no stand-in engine")


def environment(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(p.decode().split("=", 1) for p in pairs if b"=" in p)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = {
        "engines": [standin_engine_config("standin", ["standin-model"])],
        # Never called: its key, taken from the gateway's environment, is what matters.
        "providers": [{"name": "oai", "kind": "openai", "base_url": "http://127.0.0.1:9/v1",
                       "api_key": "${ENGINE_KEY_TEST_OPENAI_KEY}", "models": ["gpt-4o-mini"]}],
    }  # fmt: skip
    env = {"ENGINE_KEY_TEST_OPENAI_KEY": PROVIDER_KEY}
    with GatewayProcess(config, tmp_path_factory.mktemp("engine-key"), env=env) as gw:
        yield gw


def test_a_launched_engine_refuses_whoever_lacks_the_gateway_s_key(
    gateway: GatewayProcess,
) -> None:
    engine = f"http://127.0.0.1:{gateway.config['engines'][0]['port']}"
    body = {"model": "standin-model", "messages": MESSAGES}
    assert httpx.post(f"{engine}/v1/chat/completions", json=body).status_code == 401
    key = environment(standin_pid(gateway))["VLLM_API_KEY"]
    assert len(key) >= 32
    authorised = {"authorization": f"Bearer {key}"}
    resp = httpx.post(f"{engine}/v1/chat/completions", json=body, headers=authorised)
    assert resp.status_code == 200
    # The gateway itself gets through: requests, and the model listing its scraper reads.
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    assert client.chat.completions.create(model="standin-model", messages=MESSAGES)  # type: ignore[arg-type]
    stats = httpx.get(f"{engine}/_standin/stats").json()
    assert stats["unauthorized"] == 1  # ours, above; none of the gateway's


def test_the_key_is_not_on_the_command_line_nor_in_any_log(gateway: GatewayProcess) -> None:
    pid = standin_pid(gateway)
    key = environment(pid)["VLLM_API_KEY"]
    argv = Path(f"/proc/{pid}/cmdline").read_text()
    assert key not in argv and "--api-key" not in argv
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert key not in ps
    assert key not in gateway.logs()
    home = Path(gateway.config["home"])
    assert all(key not in log.read_text() for log in (home / "logs").glob("engine-*.log"))


def test_a_launched_engine_inherits_none_of_the_gateway_s_provider_keys(
    gateway: GatewayProcess,
) -> None:
    gateway_env = environment(gateway.proc.pid) if gateway.proc else {}
    assert gateway_env["ENGINE_KEY_TEST_OPENAI_KEY"] == PROVIDER_KEY  # the gateway has it
    engine_env = environment(standin_pid(gateway))
    assert "ENGINE_KEY_TEST_OPENAI_KEY" not in engine_env
    assert all(PROVIDER_KEY not in value for value in engine_env.values())
    assert "PATH" in engine_env  # the rest of the environment is still inherited


def test_an_attached_engine_gets_its_configured_key(tmp_path: Path) -> None:
    port = free_port()
    key = "attached-engine-key-0123456789"
    engine = subprocess.Popen(
        [*STANDIN, "--port", str(port), "--served-model-name", "attached-model"],
        env={**os.environ, "VLLM_API_KEY": key},
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        # No model names configured: the gateway learns them from the guarded /v1/models.
        config = {"engines": [{"name": "attached", "url": f"http://127.0.0.1:{port}/v1",
                               "api_key": key, "health_interval_s": 0.2}]}  # fmt: skip
        with GatewayProcess(config, tmp_path) as gateway:
            resp = httpx.post(
                f"{gateway.url}/v1/chat/completions",
                json={"model": "attached-model", "messages": MESSAGES},
            )
            assert resp.status_code == 200, resp.text
            assert key not in gateway.logs()
    finally:
        engine.terminate()
        engine.wait(10)


def test_an_attached_engine_refusing_the_key_is_the_gateway_s_fault_not_the_client_s(
    tmp_path: Path,
) -> None:
    port = free_port()
    engine = subprocess.Popen(
        [*STANDIN, "--port", str(port), "--served-model-name", "attached-model"],
        env={**os.environ, "VLLM_API_KEY": "the-engine-s-real-key-0123456789"},
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        config = {"engines": [{"name": "attached", "url": f"http://127.0.0.1:{port}/v1",
                               "served_model_names": ["attached-model"],
                               "api_key": "a-wrong-key-0123456789"}]}  # fmt: skip
        with GatewayProcess(config, tmp_path) as gateway:
            resp = httpx.post(
                f"{gateway.url}/v1/chat/completions",
                json={"model": "attached-model", "messages": MESSAGES},
            )
            assert resp.status_code == 502  # a 401 would tell the client its own key is bad
            assert "engines[].api_key" in resp.json()["error"]["message"]
    finally:
        engine.terminate()
        engine.wait(10)


@pytest.mark.parametrize(
    ("engine", "words"),
    [
        ({"args": ["--api-key", "mine"]}, "--api-key"),
        ({"args": ["--api_key=mine"]}, "--api-key"),
        ({"args": ["--enable-log-requests"]}, "prompts"),
        ({"args": ["--enable-log-outputs"]}, "completions"),
        ({"env": {"VLLM_API_KEY": "mine-0123456789"}}, "VLLM_API_KEY"),
        ({"api_key": "mine-0123456789"}, "random key"),
    ],
)
def test_flags_that_would_open_a_launched_engine_are_refused(
    engine: dict[str, object], words: str
) -> None:
    launched = {"name": "e", "model": "some/model", **engine}
    with pytest.raises(ConfigError, match=words):
        from_dict({"engines": [launched]})


def test_vllm_before_0_10_1_is_told_not_to_log_requests() -> None:
    assert request_logging_off((0, 9, 2)) == ["--disable-log-requests"]
    # Later versions log none unless asked, and 0.11 removed the flag.
    assert request_logging_off((0, 10, 1)) == []
    assert request_logging_off((0, 32, 0)) == []
    argv = vllm_argv(None, "some/model", 8001, ["m"], ["--max-num-seqs", "4"])
    assert "--api-key" not in argv and "--enable-log-requests" not in argv
    assert argv[-2:] == ["--max-num-seqs", "4"]
