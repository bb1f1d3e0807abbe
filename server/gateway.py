"""The running gateway: its engines, their supervisors, the model registry, shared clients."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable

import aiohttp

from spillgate import __version__, scrub
from spillgate.fallback.adapter import CloudTarget, ProviderAdapter, ProviderSettings
from spillgate.fallback.breaker import CircuitBreaker
from spillgate.fallback.prices import Price, PriceBook
from spillgate.fallback.registry import KINDS, create_adapter
from spillgate.fallback.resilience import RetryPolicy, Timeouts
from spillgate.models.discovery import DiscoveredEngines, DiscoverySpec, Resolver, resolve_dns
from spillgate.models.engine import LocalEngine
from spillgate.models.launch import new_engine_key, vllm_argv
from spillgate.models.supervisor import EngineProcess, HealthWatch, LaunchSpec
from spillgate.protocol import Backend
from spillgate.server.access import Access
from spillgate.server.accounting import Accounting
from spillgate.server.budgets import BudgetBook
from spillgate.server.config import Config, EngineConfig, ProviderConfig
from spillgate.server.decisions import DecisionRing
from spillgate.server.ledger.store import Store
from spillgate.server.ledger.writer import Ledger
from spillgate.server.limits import Limiter
from spillgate.server.monitor import EngineMonitor
from spillgate.server.observe import Metrics
from spillgate.server.privacy import Scanner, build_scanner
from spillgate.server.privacy.egress import EgressGuard
from spillgate.server.privacy.offload import ScanRunner
from spillgate.server.runtime import RuntimeStore
from spillgate.server.scheduler import Capabilities
from spillgate.server.tracing import Tracing
from spillgate.server.usage import PriceLookup, TokenPrices, no_cloud_prices

log = logging.getLogger("spillgate.gateway")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Gateway:
    # Set by open_ledger(), before the gateway serves.
    ledger: Ledger
    accounting: Accounting

    def __init__(self, config: Config, resolve: Resolver = resolve_dns) -> None:
        self.config = config
        for secret in config.secrets():
            scrub.remember(secret)
        self._resolve = resolve  # engine discovery's DNS lookup; tests hand in a fake answer
        self.metrics = Metrics()
        self.engines: list[LocalEngine] = []
        self.processes: list[EngineProcess] = []
        self.session: aiohttp.ClientSession | None = None
        #: Provider calls: TLS, decompression and a user agent, unlike the local-engine session.
        self.cloud_session: aiohttp.ClientSession | None = None
        #: One per `provider/model` named in any route, shared by the routes naming it.
        self.cloud_targets: dict[str, CloudTarget] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._routes: dict[str, list[Backend]] = {}
        #: The live state the scheduler reads (queues, measured rates, latency EWMAs).
        self.runtime = RuntimeStore(config)
        #: Finds personal data in requests that could spill; None when detection is off.
        self.scanner: Scanner | None = (
            build_scanner(config.privacy) if config.privacy.detect else None
        )
        #: Runs the scans: inline when small, in a worker thread when large, failing closed.
        self.scans: ScanRunner | None = (
            ScanRunner(
                self.scanner,
                config.privacy.thread_above_bytes,
                config.privacy.scan_timeout_s,
                lambda where: self.metrics.privacy_scan_failures.labels(where).inc(),
            )
            if self.scanner is not None
            else None
        )
        #: Reads every body a cloud target would send, before it is sent (privacy/egress.py).
        self.egress = EgressGuard(self.scans, self.metrics)
        #: Keeps the runtime store fresh; made in start(), with the HTTP session it uses.
        self.monitor: EngineMonitor | None = None
        #: What each cloud target can do, from its provider's `capabilities`.
        self.cloud_caps: dict[str, Capabilities] = {}
        #: (route id, engine name) -> the model id that engine serves for the route.
        self._route_models: dict[tuple[str, str], str] = {}
        # -- keys, limits, budgets, ledger, tracing ----------------------------------------------
        self.tracing = Tracing(config.tracing)
        self.limiter = Limiter(config.limits, self.metrics)
        self.access = Access(config.auth.enabled, self.limiter, self.metrics)
        self.budgets = BudgetBook(self.metrics)
        self.store = Store.for_home(config.ledger.url, config.home, config.ledger.connect_timeout_s)
        #: USD per token at the cloud route for a model: what "saved" is priced at.
        self.price_per_token: PriceLookup = no_cloud_prices
        #: The recent decisions and reason counts the operator console shows.
        self.decisions = DecisionRing()
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
        # A discovered group's configured names stay routable while it has no engine, so a
        # request meanwhile gets "not ready" (503), not "no such model" (404).
        for cfg in self.config.engines:
            if cfg.discover is not None:
                for name in cfg.served_model_names:
                    routes.setdefault(name, [])
        for alias, target in self.config.aliases.items():
            routes.setdefault(alias, []).extend(routes.get(target, []))
        route_models: dict[tuple[str, str], str] = {}
        for route, entries in self.config.routes.items():
            targets: list[Backend] = []
            for entry in entries:
                cloud = self.cloud_targets.get(entry)
                if cloud is not None:
                    targets.append(cloud)
                    continue
                local_model = self.config.aliases.get(entry, entry)
                for engine in self.engines:
                    if local_model in engine.served_models:
                        targets.append(engine)
                        route_models[(route, engine.name)] = local_model
            routes[route] = targets
        self._route_models = route_models
        self._routes = routes

    def target_model(self, model: str, backend: LocalEngine | CloudTarget) -> str:
        """The name `backend` knows `model` by (aliases and routes resolve to its own name)."""
        if isinstance(backend, CloudTarget):
            return backend.provider_model
        if model in backend.served_models:
            return model
        routed = self._route_models.get((model, backend.name))
        if routed is not None:
            return routed
        return self.config.aliases.get(model, model)

    @property
    def any_ready(self) -> bool:
        return any(e.ready for e in self.engines) or any(
            t.ready for t in self.cloud_targets.values()
        )

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
            self.decisions,
        )
        self.egress.record = self.ledger.record_egress
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
        self.monitor = EngineMonitor(
            self.runtime, self.session, self.metrics, self.config.scheduler.scrape_interval_s
        )
        self.monitor.start()
        for cfg in self.config.engines:
            self._add_engine(cfg)
        self._add_cloud_targets()
        self._build_routes()
        self.price_per_token = self._route_price
        self._tasks.append(asyncio.create_task(self._export_engine_gauges()))

    def _add_engine(self, cfg: EngineConfig) -> None:
        assert self.session is not None
        server = self.config.server
        if cfg.discover is not None:
            self._add_discovered_group(cfg)
            return
        port = cfg.port or free_port()
        url = cfg.url or f"http://127.0.0.1:{port}/v1"
        api_key = _engine_key(cfg)
        engine = LocalEngine(
            cfg.name,
            url,
            self.session,
            served_models=frozenset(cfg.model_names),
            first_byte_timeout_s=server.first_byte_timeout_s,
            api_key=api_key,
        )
        self.engines.append(engine)
        assert self.monitor is not None
        self.monitor.watch(engine, cfg.args)
        if cfg.url is not None:
            discover = None if cfg.served_model_names else self._discovered(engine)
            watch = HealthWatch(engine, self.session, cfg.health_interval_s, discover)
            self._tasks.append(asyncio.create_task(watch.run()))
            return
        assert cfg.model is not None
        spec = LaunchSpec(
            argv=vllm_argv(cfg.launcher, cfg.model, port, cfg.model_names, cfg.args),
            log_path=self.config.home / "logs" / f"engine-{cfg.name}.log",
            env=cfg.env,
            api_key=api_key,
            startup_timeout_s=cfg.startup_timeout_s,
            health_interval_s=cfg.health_interval_s,
        )
        process = EngineProcess(engine, spec, self.session)
        self.processes.append(process)
        self._tasks.append(asyncio.create_task(process.run()))

    # -- engine discovery ---------------------------------------------------------------------

    def _add_discovered_group(self, cfg: EngineConfig) -> None:
        assert self.session is not None and cfg.discover is not None
        spec = DiscoverySpec(
            group=cfg.name,
            dns=cfg.discover.dns,
            port=cfg.discover.port,
            interval_s=cfg.discover.interval_s,
            health_interval_s=cfg.health_interval_s,
            served_models=frozenset(cfg.served_model_names),
            first_byte_timeout_s=self.config.server.first_byte_timeout_s,
            api_key=_engine_key(cfg),
        )
        group = DiscoveredEngines(
            spec, self.session, self._engines_changed, self._resolve, self._discovered
        )
        self._tasks.append(asyncio.create_task(group.run()))

    def _engines_changed(self, added: list[LocalEngine], removed: list[LocalEngine]) -> None:
        self.engines = [e for e in self.engines if e not in removed] + added
        assert self.monitor is not None
        for engine in added:
            self.monitor.watch(engine)
        for engine in removed:
            self.monitor.unwatch(engine)
        for engine in removed:
            # A gone pod's series disappear instead of reading "down" forever, and its last
            # queue depth does not keep the engine autoscaler (which sums it) scaled up.
            m = self.metrics
            for gauge in (m.engine_up, m.engine_in_flight, m.local_queue):
                with contextlib.suppress(KeyError):
                    gauge.remove(engine.name)
        self._build_routes()

    # -- end engine discovery ---------------------------------------------------------------

    def _add_cloud_targets(self) -> None:
        if not self.config.routes:
            return
        self.cloud_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True),
            headers={"user-agent": f"spillgate/{__version__}"},
        )
        prices = PriceBook.shipped()
        adapters: dict[str, ProviderAdapter] = {}
        for entries in self.config.routes.values():
            for entry in entries:
                cloud = self.config.cloud_target(entry)
                if cloud is None or entry in self.cloud_targets:
                    continue
                provider, model = cloud
                if provider.name not in adapters:
                    adapters[provider.name] = create_adapter(provider_settings(provider))
                target = CloudTarget(
                    model,
                    adapters[provider.name],
                    self.cloud_session,
                    egress=self.egress,
                    timeouts=Timeouts(**provider.timeouts.model_dump()),
                    retry=RetryPolicy(**provider.retries.model_dump()),
                    breaker=CircuitBreaker(**provider.breaker.model_dump()),
                    price=price_for(provider, model, prices),
                )
                if target.price is None:
                    log.warning(
                        "no price known for %s: its requests are not costed; set "
                        "providers[].prices in the configuration",
                        target.name,
                    )
                self.cloud_targets[entry] = target
                caps = provider.capabilities
                self.cloud_caps[target.name] = Capabilities(
                    caps.tools,
                    caps.images,
                    caps.json_schema,
                    caps.max_context,
                    max_output=prices.max_output(KINDS[provider.kind].price_family, model),
                )
                state = self.metrics.circuit_state.labels(target.name)
                state.set_function(lambda t=target: float(t.breaker.state))

    def _route_price(self, model: str) -> TokenPrices | None:
        """What `model` costs per token at its route's first priced cloud target: the price
        a locally served request would have paid had it spilled ("saved" in usage)."""
        for target in self._routes.get(model, ()):
            if isinstance(target, CloudTarget) and target.price is not None:
                return TokenPrices(target.price.input / 1e6, target.price.output / 1e6)
        return None

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
                queued = self.runtime.engine(engine).queue.waiting
                self.metrics.local_queue.labels(engine.name).set(queued)
            for process in self.processes:
                self.metrics.engine_restarts.labels(process.engine.name).set(process.restarts)
            await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self.monitor is not None:
            await self.monitor.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*(p.stop() for p in self.processes), return_exceptions=True)
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.session is not None:
            await self.session.close()
        if self.cloud_session is not None:
            await self.cloud_session.close()

        if self._ledger_open:
            await self.ledger.stop()
        await self.limiter.close()
        self.tracing.shutdown()
        self.store.close()
        if self.scans is not None:
            self.scans.close()


def _engine_key(cfg: EngineConfig) -> str | None:
    """The key an engine requires: configured for an attached one, made for a launched one."""
    if cfg.model is None:
        return cfg.api_key.get_secret_value() if cfg.api_key is not None else None
    key = new_engine_key()
    scrub.remember(key)
    return key


def provider_settings(provider: ProviderConfig) -> ProviderSettings:
    assert provider.base_url is not None  # the config fills in the kind's default
    return ProviderSettings(
        name=provider.name,
        kind=provider.kind,
        base_url=provider.base_url,
        api_key=provider.secret,
        headers=dict(provider.headers),
        options=dict(provider.options),
        drop_params=frozenset(provider.drop_params),
    )


def price_for(provider: ProviderConfig, model: str, prices: PriceBook) -> Price | None:
    configured = provider.prices.get(model)
    if configured is not None:
        return Price(configured.input, configured.output, configured.cached_input)
    return prices.lookup(KINDS[provider.kind].price_family, model)
