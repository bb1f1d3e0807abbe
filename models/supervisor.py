"""Launch vLLM engines as child processes, watch their health, restart them, stop them all.

Each child runs in its own process group, so stopping it reaches vLLM's own children (its
EngineCore and workers). Each child also gets a parent-death signal, so an engine never
outlives a gateway that was killed without a chance to clean up.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from spillgate.models.engine import LocalEngine
from spillgate.models.launch import API_KEY_ENV
from spillgate.scrub import holds_secret

log = logging.getLogger("spillgate.engine")

_PR_SET_PDEATHSIG = 1


@dataclass
class LaunchSpec:
    """How to start one engine process."""

    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    #: The key the engine requires on /v1 (vLLM's `--api-key`), given in its environment.
    api_key: str | None = field(default=None, repr=False)
    startup_timeout_s: float = 900.0
    health_interval_s: float = 2.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0


def _die_with_parent(parent: int) -> None:
    """Runs in the child between fork and exec: ask the kernel for SIGTERM when we die.

    SIGTERM rather than SIGKILL so vLLM can take its own EngineCore down with it. `parent`
    is the gateway's pid, taken before the fork: a parent that died before prctl took effect
    shows as another parent pid. (Not "is the parent pid 1": in a container the gateway is
    pid 1.)
    """
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(1)


def _reap_adopted(group: int) -> None:
    """Wait for the engine's processes that died after their parent, where we adopted them.

    In a container the gateway is pid 1, so an engine process whose parent is gone (vLLM's
    resource tracker, a worker) becomes our child; nobody else waits for it, and as a zombie
    it still counts as a member of its group, which `_kill_group` waits to see empty. The
    group's leader is asyncio's to wait for, never ours.
    """
    if os.getpid() != 1:
        return  # elsewhere init or a subreaper adopts them
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        pid = int(stat.parent.name)
        if state == "Z" and int(ppid) == 1 and int(pgrp) == group and pid != group:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


class HealthWatch:
    """Polls an engine's `/health` and keeps its `healthy` flag true to what it answers.

    For an attached engine whose model names were not configured, the first healthy probe
    also asks its `/v1/models` and hands the names to `on_models`.
    """

    def __init__(
        self,
        engine: LocalEngine,
        session: aiohttp.ClientSession,
        interval_s: float,
        on_models: Callable[[frozenset[str]], None] | None = None,
    ):
        self.engine = engine
        self._session = session
        self._interval_s = interval_s
        self._on_models = on_models

    async def discover_models(self) -> None:
        if self._on_models is None:
            return
        try:
            async with self._session.get(
                f"{self.engine.base_url}/models",
                headers=self.engine.auth_headers,
                timeout=aiohttp.ClientTimeout(total=5),
            ) as resp:
                listing = await resp.json(content_type=None)
            names = frozenset(str(m["id"]) for m in listing["data"])
        except (TimeoutError, aiohttp.ClientError, OSError, KeyError, TypeError, ValueError):
            log.warning("engine %s: could not list its models; will ask again", self.engine.name)
            return
        log.info("engine %s serves %s", self.engine.name, ", ".join(sorted(names)))
        self._on_models(names)
        self._on_models = None

    async def probe(self) -> bool:
        try:
            async with self._session.get(
                f"{self.engine.root_url}/health",
                headers=self.engine.auth_headers,
                timeout=aiohttp.ClientTimeout(total=5),
            ) as resp:
                return resp.status == 200
        except (TimeoutError, aiohttp.ClientError, OSError):
            return False

    async def run(self) -> None:
        while True:
            healthy = await self.probe()
            if healthy:
                await self.discover_models()
            if healthy != self.engine.healthy:
                log.info("engine %s is %s", self.engine.name, "ready" if healthy else "not ready")
            self.engine.set_health(healthy)
            await asyncio.sleep(self._interval_s)


class EngineProcess:
    """One supervised engine: start, wait for health, restart with backoff when it dies."""

    def __init__(self, engine: LocalEngine, spec: LaunchSpec, session: aiohttp.ClientSession):
        self.engine = engine
        self.spec = spec
        self.watch = HealthWatch(engine, session, spec.health_interval_s)
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self._stopping = False

    async def _spawn(self) -> asyncio.subprocess.Process:
        self.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.spec.log_path, "ab") as log_file:
            log_file.write(f"\n=== spillgate: starting engine at {time.ctime()}\n".encode())
            log_file.flush()
            process = await asyncio.create_subprocess_exec(
                *self.spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                env=self._environment(),
                start_new_session=True,
                preexec_fn=functools.partial(_die_with_parent, os.getpid()),
            )
        log.info(
            "engine %s started (pid %d), log %s", self.engine.name, process.pid, self.spec.log_path
        )
        return process

    def _environment(self) -> dict[str, str]:
        # The gateway's provider keys and tokens are no business of an engine's: a variable
        # holding one is not inherited (the engine's own configured `env` still is given).
        env = {name: value for name, value in os.environ.items() if not holds_secret(value)}
        env.update(self.spec.env)
        env.pop(API_KEY_ENV, None)  # not a key of the gateway's own environment
        if self.spec.api_key is not None:
            env[API_KEY_ENV] = self.spec.api_key
        return env

    async def _wait_ready(self, process: asyncio.subprocess.Process) -> bool:
        deadline = time.monotonic() + self.spec.startup_timeout_s
        while time.monotonic() < deadline:
            if process.returncode is not None:
                return False
            if await self.watch.probe():
                return True
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(process.wait(), timeout=0.5)
        log.error(
            "engine %s not healthy after %.0fs", self.engine.name, self.spec.startup_timeout_s
        )
        return False

    async def run(self) -> None:
        backoff = self.spec.backoff_initial_s
        while not self._stopping:
            self.process = process = await self._spawn()
            started = time.monotonic()
            if await self._wait_ready(process):
                log.info(
                    "engine %s ready after %.1fs", self.engine.name, time.monotonic() - started
                )
                self.engine.set_health(True)
                await self._watch_until_exit(process)
            self.engine.set_health(False)
            await self._kill_group(process)
            if self._stopping:
                return
            if time.monotonic() - started > 10 * self.spec.backoff_max_s:
                backoff = self.spec.backoff_initial_s  # it ran well for a long time: start over
            self.restarts += 1
            log.warning(
                "engine %s exited (code %s); restart %d in %.1fs, see %s",
                self.engine.name,
                process.returncode,
                self.restarts,
                backoff,
                self.spec.log_path,
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.spec.backoff_max_s)

    async def _watch_until_exit(self, process: asyncio.subprocess.Process) -> None:
        while process.returncode is None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(process.wait(), timeout=self.spec.health_interval_s)
            if process.returncode is None:
                self.engine.set_health(await self.watch.probe())

    async def stop(self, grace_s: float = 20.0) -> None:
        self._stopping = True
        if self.process is not None:
            await self._kill_group(self.process, grace_s)

    @staticmethod
    async def _kill_group(process: asyncio.subprocess.Process, grace_s: float = 10.0) -> None:
        """SIGTERM the engine's whole process group, then SIGKILL what is left."""
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                if process.returncode is None:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(process.wait(), timeout=0.2)
                    continue
                _reap_adopted(process.pid)
                try:
                    os.killpg(process.pid, 0)  # vLLM's own children may outlive the leader
                except ProcessLookupError:
                    return
                await asyncio.sleep(0.2)
