"""Engines found through DNS: one attached engine per address a name resolves to.

In Kubernetes the vLLM engine pods sit behind a headless Service, whose DNS name resolves
to the addresses of the pods that are ready. The gateway resolves that name every few
seconds and keeps its set of attached engines equal to the answer: a new address becomes
an engine (health-watched like any attached engine), a vanished one is dropped. The
resolver is a plain async function, so tests hand in a fake answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import aiohttp

from spillgate.models.engine import LocalEngine
from spillgate.models.supervisor import HealthWatch

log = logging.getLogger("spillgate.discovery")

#: Resolves a DNS name to the addresses it points to now; raises `DiscoveryError` when the
#: answer cannot be had (which keeps the engines found so far).
Resolver = Callable[[str], Awaitable[list[str]]]

# getaddrinfo's answers for "this name has no address": the Service has no ready pod.
_NO_ADDRESS = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


class DiscoveryError(Exception):
    """The DNS answer could not be had (a timeout, a server failure): not "no pods"."""


async def resolve_dns(name: str) -> list[str]:
    """The system resolver's addresses for `name`, sorted; [] when the name has none."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        if err.errno in _NO_ADDRESS:
            return []
        raise DiscoveryError(f"cannot resolve {name}: {err.strerror}") from err
    return sorted({str(info[4][0]) for info in infos})


@dataclass(frozen=True)
class DiscoverySpec:
    """One group of discovered engines: `name@address` each, all on the same port."""

    group: str
    dns: str
    port: int
    interval_s: float
    health_interval_s: float
    served_models: frozenset[str]
    first_byte_timeout_s: float
    #: The key the engines take (vLLM's `--api-key`), when they are started with one.
    api_key: str | None = field(default=None, repr=False)


def engine_url(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}/v1"


class DiscoveredEngines:
    """Keeps the engines of one group in step with what its DNS name resolves to.

    `on_change(added, removed)` is called after each change, so the owner can update its
    routes; an engine is marked unhealthy before it is reported removed, so no new request
    picks it, while requests already running on it finish.
    """

    def __init__(
        self,
        spec: DiscoverySpec,
        session: aiohttp.ClientSession,
        on_change: Callable[[list[LocalEngine], list[LocalEngine]], None],
        resolve: Resolver = resolve_dns,
        on_models: Callable[[LocalEngine], Callable[[frozenset[str]], None]] | None = None,
    ) -> None:
        self.spec = spec
        self.engines: dict[str, LocalEngine] = {}
        self._session = session
        self._on_change = on_change
        self._resolve = resolve
        self._on_models = on_models
        self._watches: dict[str, asyncio.Task[None]] = {}
        self._last_error: str | None = None

    async def sync_once(self) -> None:
        try:
            addresses = set(await self._resolve(self.spec.dns))
        except DiscoveryError as err:
            # A DNS hiccup is not "every pod is gone": keep the engines we have.
            if str(err) != self._last_error:
                log.warning(
                    "engine group %s: %s; keeping %d engine(s)",
                    self.spec.group,
                    err,
                    len(self.engines),
                )
            self._last_error = str(err)
            return
        self._last_error = None
        added = [self._attach(a) for a in sorted(addresses - self.engines.keys())]
        removed = [self._detach(a) for a in sorted(self.engines.keys() - addresses)]
        if added or removed:
            log.info(
                "engine group %s: %s resolves to %d address(es); added %s, removed %s",
                self.spec.group,
                self.spec.dns,
                len(addresses),
                _names(added),
                _names(removed),
            )
            self._on_change(added, removed)

    def _attach(self, address: str) -> LocalEngine:
        engine = LocalEngine(
            f"{self.spec.group}@{address}",
            engine_url(address, self.spec.port),
            self._session,
            served_models=self.spec.served_models,
            first_byte_timeout_s=self.spec.first_byte_timeout_s,
            api_key=self.spec.api_key,
        )
        on_models = None
        if not self.spec.served_models and self._on_models is not None:
            on_models = self._on_models(engine)
        watch = HealthWatch(engine, self._session, self.spec.health_interval_s, on_models)
        self._watches[address] = asyncio.create_task(watch.run())
        self.engines[address] = engine
        return engine

    def _detach(self, address: str) -> LocalEngine:
        self._watches.pop(address).cancel()
        engine = self.engines.pop(address)
        engine.set_health(False)
        return engine

    async def run(self) -> None:
        try:
            while True:
                await self.sync_once()
                await asyncio.sleep(self.spec.interval_s)
        finally:
            await self._stop_watches(self._watches.values())

    @staticmethod
    async def _stop_watches(watches: Iterable[asyncio.Task[None]]) -> None:
        tasks = list(watches)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _names(engines: list[LocalEngine]) -> str:
    return ", ".join(e.name for e in engines) or "none"
