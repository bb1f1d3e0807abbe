"""Start real processes for tests: the gateway (through its CLI), stand-in engines, and fake
cloud providers run as their own processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
STANDIN = [sys.executable, str(ROOT / "tests" / "support" / "standin_engine.py")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float = 30.0, status: int = 200) -> None:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = httpx.get(url, timeout=2.0)
            if last.status_code == status:
                return
        except httpx.HTTPError as err:
            last = err
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer {status} in {timeout_s}s (last: {last!r})")


def standin_engine_config(name: str, models: list[str], port: int | None = None, **extra: Any):
    """An `engines:` entry that makes the gateway launch a stand-in engine."""
    return {
        "name": name,
        "model": models[0],
        "served_model_names": models,
        "launcher": STANDIN,
        "port": port or free_port(),
        "health_interval_s": 0.2,
        **extra,
    }


class GatewayProcess:
    """`spillgate serve --config FILE` as a child process on a free loopback port."""

    def __init__(self, config: dict[str, Any], workdir: Path, env: dict[str, str] | None = None):
        self.port = free_port()
        config = {**config, "server": {"port": self.port, **config.get("server", {})}}
        config.setdefault("home", str(workdir / "home"))
        # Tests run the gateway as a single-user box unless they configure keys themselves.
        config.setdefault("auth", {"enabled": False})
        self.config = config
        self.workdir = workdir
        self.config_path = workdir / "spillgate.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "gateway.log"
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_ready: bool = True, timeout_s: float = 60.0) -> GatewayProcess:
        with open(self.log_path, "ab") as log:
            self.proc = self._spawn(log)
        wait_http(f"{self.url}/healthz", timeout_s)
        if wait_ready:
            wait_http(f"{self.url}/readyz", timeout_s)
        return self

    def _spawn(self, log: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "spillgate.server.cli",
                "serve",
                "--config",
                str(self.config_path),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            cwd=self.workdir,
        )

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_engine_ready(self, engine: str, timeout_s: float = 30.0) -> None:
        """Wait until /readyz says `engine` is ready: the gateway as a whole is ready as soon
        as any target is (a cloud target at once), so a test of the engine waits for it."""
        deadline = time.monotonic() + timeout_s
        while not httpx.get(f"{self.url}/readyz").json()["engines"].get(engine):
            assert time.monotonic() < deadline, f"engine {engine!r} never became ready"
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> GatewayProcess:
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FakeProviderProcess:
    """A fake provider (`tests/support/fakes/NAME_server.py --port`) as a child process on a free
    loopback port, steered through its `/_fake/` HTTP API."""

    def __init__(self, script: str, api_key: str, workdir: Path) -> None:
        self.script = ROOT / "tests" / "support" / "fakes" / script
        self.api_key = api_key
        self.port = free_port()
        self.log_path = workdir / f"{self.script.stem}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeProviderProcess:
        command = [sys.executable, str(self.script), "--port", str(self.port)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*command, "--api-key", self.api_key], stdout=log, stderr=subprocess.STDOUT
            )
        wait_http(f"{self.url}/_fake/received")
        return self

    def answer(self, spec: dict[str, Any]) -> None:
        """Queue the next answer, in the fake's own JSON form."""
        httpx.post(f"{self.url}/_fake/answer", json=spec).raise_for_status()

    def fail(self, spec: dict[str, Any]) -> None:
        httpx.post(f"{self.url}/_fake/fault", json=spec).raise_for_status()

    def received(self) -> list[dict[str, Any]]:
        reply = httpx.get(f"{self.url}/_fake/received")
        reply.raise_for_status()
        seen: list[dict[str, Any]] = reply.json()
        return seen

    def reset(self) -> None:
        httpx.post(f"{self.url}/_fake/reset").raise_for_status()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def children_of(pid: int) -> list[int]:
    """Every live descendant of `pid` (read from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == current]
        found += kids
        frontier += kids
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
