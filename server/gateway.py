"""The running gateway: its engines, their supervisors, the model registry, shared clients."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import Callable

import aiohttp
from spillgate.models.engine import LocalEngine
from spillgate.models.supervisor import EngineProcess, HealthWatch, LaunchSpec
from spillgate.protocol import Backend
from spillgate.server.access import Access
from spillgate.server.accounting import Accounting
from spillgate.server.budgets import BudgetBook
from spillgate.server.config import Config, EngineConfig
from spillgate.server.ledger.store import Store
from spillgate.server.ledger.writer import Ledger
from spillgate.server.limits import Limiter
from spillgate.server.observe import Metrics
from spillgate.server.tracing import Tracing
from spillgate.server.usage import PriceLookup, no_cloud_prices

log = logging.getLogger("spillgate.gateway")

VLLM_SERVER = ["-m", "vllm.entrypoints.openai.api_server"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vllm_argv(engine: EngineConfig, port: int) -> list[str]:
    """The command line of a launched engine: ours first, the user's vLLM arguments after."""
    launcher = engine.launcher or [sys.executable, *VLLM_SERVER]
    assert engine.model is not None
    return [
        *launcher,
        "--model",
        engine.model,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--served-model-name",
        *engine.model_names,
        *engine.args,
    ]


class Gateway:
    # Set by open_ledger(), before the gateway serves.
    ledger: Ledger
    accounting: Accounting

    def __init__(self, config: Config) -> None:
        self.config = config
        self.metrics = Metrics()
        self.engines: list[LocalEngine] = []
        self.processes: list[EngineProcess] = []
        self.session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._routes: dict[str, list[Backend]] = {}
        # -- keys, limits, budgets, ledger, tracing (issue 5) -------------------------------
        self.tracing = Tracing(config.tracing)
        self.limiter = Limiter(config.limits, self.metrics)
        self.access = Access(config.auth.enabled, self.limiter, self.metrics)
        self.budgets = BudgetBook(self.metrics)
        self.store = Store.for_home(config.ledger.url, config.home, config.ledger.connect_timeout_s)
        #: USD per token at the cloud route for a model: what "saved" is priced at.
        self.price_per_token: PriceLookup = no_cloud_prices
        self._ledger_open = False

    # -- registry ---------------------------------------------------------------------------

    def targets_for(self, model: str) -> list[Backend] | None:
        return self._routes.get(model)

    def model_ids(self) -> list[str]:
        return sorted(self._routes)

    def _build_routes(self) -> None:
        routes: dict[str, list[Backend]] = {}
        for engine in self.engines:
            for name in engine.served_models:
                routes.setdefault(name, []).append(engine)
        for alias, target in self.config.aliases.items():
            routes.setdefault(alias, []).extend(routes.get(target, []))
        self._routes = routes

    def target_model(self, model: str, backend: Backend) -> str:
        """The name `backend` knows `model` by (aliases resolve to the engine's own name)."""
        if model in getattr(backend, "served_models", ()):
            return model
        return self.config.aliases.get(model, model)

    @property
    def any_ready(self) -> bool:
        return any(e.ready for e in self.engines)

    # -- lifecycle --------------------------------------------------------------------------

    def open_ledger(self) -> None:
        """Connect to the ledger database and migrate it, before serving anything.

        Raises StoreUnavailable (the database) or SpoolLocked (another gateway's spool).
        """
        if self._ledger_open:
            return
        cfg = self.config.ledger
        self.store.open()
        self.ledger = Ledger(
            self.store,
            cfg.spool_dir or self.config.home / "ledger-spool",
            self.metrics,
            flush_interval_s=cfg.flush_interval_s,
            batch_size=cfg.batch_size,
        )
        self.accounting = Accounting(
            self.ledger,
            self.budgets,
            self.limiter,
            self.metrics,
            self.tracing,
            self.config.server.access_log,
        )
        self._ledger_open = True

    async def _start_accounting(self) -> None:
        self.open_ledger()
        self.ledger.start()
        await self.access.load(self.store)
        recovered = self.ledger.spool.recovered_records

        def seen_seq(rows_written: int) -> int:
            return max(0, rows_written - recovered)

        budgets = self.budgets.refresh_forever(
            self.store, seen_seq, self.access.ring.live, self.config.budgets.refresh_s
        )
        keys = self.access.refresh_forever(self.store, self.config.auth.key_refresh_s)
        self._tasks += [asyncio.create_task(budgets), asyncio.create_task(keys)]
        if self.access.enabled and not self.access.ring.live() and not self.config.admin.token:
            log.warning(
                "auth is on but no API key exists and admin.token is unset: no request can "
                "pass; set admin.token and create a key, or set auth.enabled: false"
            )
        elif not self.access.enabled:
            log.warning("auth is off (auth.enabled: false): any caller may use this gateway")

    async def start(self) -> None:
        await self._start_accounting()
        server = self.config.server
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True)
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=server.connect_timeout_s),
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )
        for cfg in self.config.engines:
            self._add_engine(cfg)
        self._build_routes()
        self._tasks.append(asyncio.create_task(self._export_engine_gauges()))

    def _add_engine(self, cfg: EngineConfig) -> None:
        assert self.session is not None
        server = self.config.server
        port = cfg.port or free_port()
        url = cfg.url or f"http://127.0.0.1:{port}/v1"
        engine = LocalEngine(
            cfg.name,
            url,
            self.session,
            served_models=frozenset(cfg.model_names),
            first_byte_timeout_s=server.first_byte_timeout_s,
        )
        self.engines.append(engine)
        if cfg.url is not None:
            discover = None if cfg.served_model_names else self._discovered(engine)
            watch = HealthWatch(engine, self.session, cfg.health_interval_s, discover)
            self._tasks.append(asyncio.create_task(watch.run()))
            return
        spec = LaunchSpec(
            argv=vllm_argv(cfg, port),
            log_path=self.config.home / "logs" / f"engine-{cfg.name}.log",
            env=cfg.env,
            startup_timeout_s=cfg.startup_timeout_s,
            health_interval_s=cfg.health_interval_s,
        )
        process = EngineProcess(engine, spec, self.session)
        self.processes.append(process)
        self._tasks.append(asyncio.create_task(process.run()))

    def _discovered(self, engine: LocalEngine) -> Callable[[frozenset[str]], None]:
        def register(names: frozenset[str]) -> None:
            engine.served_models = names
            self._build_routes()

        return register

    async def _export_engine_gauges(self) -> None:
        while True:
            for engine in self.engines:
                self.metrics.engine_up.labels(engine.name).set(1 if engine.ready else 0)
                self.metrics.engine_in_flight.labels(engine.name).set(engine.in_flight)
            for process in self.processes:
                self.metrics.engine_restarts.labels(process.engine.name).set(process.restarts)
            await asyncio.sleep(1.0)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*(p.stop() for p in self.processes), return_exceptions=True)
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.session is not None:
            await self.session.close()
        if self._ledger_open:
            await self.ledger.stop()
        await self.limiter.close()
        self.tracing.shutdown()
        self.store.close()
