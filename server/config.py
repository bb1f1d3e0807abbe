"""The configuration: one YAML file, `${ENV}` interpolation, validated at start.

Every key is documented in docs/configuration.md. Validation errors name the key path
(`engines[0].url`) and say what is wrong.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from spillgate.fallback import registry
from spillgate.models.cpu_model import spillgate_home
from spillgate.models.launch import API_KEY_ENV, reserved_arg
from spillgate.models.load import MAX_NUM_SEQS, bad_max_num_seqs
from spillgate.server.config_base import Strict
from spillgate.server.config_routing import (
    CloudCapabilitiesConfig,
    EngineRoutingConfig,
    SchedulerConfig,
)
from spillgate.server.privacy.config import PrivacyConfig
from spillgate.server.urls import ambiguous_userinfo, url_password


class ConfigError(Exception):
    """The configuration cannot be used; the message lists each problem with its key."""


class ServerConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    max_body_bytes: int = Field(8 * 1024 * 1024, gt=0)
    #: How long a request waits for a starting engine before it gets a 503.
    ready_wait_s: float = Field(30.0, ge=0)
    #: Time allowed for an upstream to start answering (and between stream chunks).
    first_byte_timeout_s: float = Field(600.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: Write one JSON line per request to the `spillgate.access` log.
    access_log: bool = True
    #: Bearer token /metrics requires; open while unset.
    metrics_token: str | None = Field(None, min_length=16)

    @property
    def loopback_only(self) -> bool:
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach `host` (a name other than localhost may not be)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- engine discovery ----------------------------------------------------------------------------


class DiscoverConfig(Strict):
    """Engines found by resolving a DNS name, e.g. a Kubernetes headless Service."""

    #: The name to resolve; each address it resolves to is one engine.
    dns: str = Field(pattern=r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?\.?$")
    #: The port every engine listens on.
    port: int = Field(8000, ge=1, le=65535)
    #: How often to resolve the name again.
    interval_s: float = Field(10.0, gt=0)

    @field_validator("dns", mode="before")
    @classmethod
    def _not_a_url(cls, value: object) -> object:
        if isinstance(value, str) and "://" in value:
            raise ValueError(
                f"`dns` takes a DNS name like vllm-engines.NAMESPACE.svc.cluster.local, "
                f"not a URL ({value!r}); the port goes in `port`"
            )
        return value


# -- end engine discovery -------------------------------------------------------------------


class EngineConfig(Strict):
    """A local engine: launched (`model`), attached to (`url`) or discovered (`discover`)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    model: str | None = None
    url: str | None = None
    discover: DiscoverConfig | None = None
    #: The model ids this engine answers to; the first is its own name. Default: `model`.
    served_model_names: list[str] = Field(default_factory=list)
    #: Extra vLLM arguments, passed through untouched.
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    port: int | None = Field(None, ge=1, le=65535)
    #: The command that starts the engine; the vLLM OpenAI server unless set.
    launcher: list[str] | None = None
    #: The key an attached or discovered engine requires (its `--api-key`).
    api_key: SecretStr | None = None
    startup_timeout_s: float = Field(900.0, gt=0)
    health_interval_s: float = Field(2.0, gt=0)
    scheduling: EngineRoutingConfig = Field(default_factory=EngineRoutingConfig)

    @model_validator(mode="after")
    def _one_source(self) -> EngineConfig:
        sources = [s for s in (self.model, self.url, self.discover) if s is not None]
        if len(sources) != 1:
            raise ValueError(
                "set exactly one of `model` (launch vLLM), `url` (attach) "
                "or `discover` (attach to every address a DNS name resolves to)"
            )
        if self.url is not None and not re.match(r"^https?://", self.url):
            raise ValueError(f"`url` must start with http:// or https://, got {self.url!r}")
        if self.model is None and (self.args or self.launcher or self.port or self.env):
            raise ValueError("`args`, `env`, `launcher` and `port` apply to launched engines only")
        if self.model is not None:
            self._launch_is_ours()
        return self

    def _launch_is_ours(self) -> None:
        """The gateway alone holds a launched engine's key, and its log holds no prompt."""
        reserved = reserved_arg(self.args)
        if reserved is not None:
            raise ValueError(f"`args` may not set {reserved}")
        bad = bad_max_num_seqs(self.args)
        if bad is not None:
            raise ValueError(
                f"engine {self.name!r}: `args` gives {MAX_NUM_SEQS} {bad!r}; it takes a "
                "whole number above 0, the requests the engine runs at once"
            )
        if API_KEY_ENV in self.env:
            raise ValueError(
                f"`env` may not set {API_KEY_ENV}: the gateway gives each launched engine "
                "a key of its own"
            )
        if self.api_key is not None:
            raise ValueError(
                "`api_key` is for attached and discovered engines; the gateway gives each "
                "launched engine a random key of its own"
            )

    @property
    def model_names(self) -> list[str]:
        """Names known from the config; an attached engine without them is asked at run time."""
        if self.served_model_names:
            return self.served_model_names
        return [self.model] if self.model else []


class TimeoutsConfig(Strict):
    connect_s: float = Field(10.0, gt=0)
    #: Until the first byte of the answer, and the longest silence inside a stream.
    first_byte_s: float = Field(60.0, gt=0)
    #: The whole call, retries and streamed answer included.
    total_s: float = Field(600.0, gt=0)


class RetriesConfig(Strict):
    #: Tries in all at one target before the route moves on (1 = no retry).
    max_attempts: int = Field(2, ge=1, le=10)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(8.0, ge=0)
    #: A longer Retry-After is not waited out: the request moves to the route's next target.
    max_retry_after_s: float = Field(10.0, ge=0)


class BreakerConfig(Strict):
    failure_threshold: int = Field(5, ge=1)
    cooldown_s: float = Field(30.0, gt=0)


class PriceConfig(Strict):
    """USD per 1M tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(None, ge=0)


class ProviderConfig(Strict):
    """A cloud provider account: where it is, how to authenticate, how to treat it."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    kind: str
    base_url: str | None = None
    api_key: SecretStr | None = None
    api_key_file: Path | None = None
    #: The models routes may name at this provider; empty: any.
    models: list[str] = Field(default_factory=list)
    headers: dict[str, str] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    drop_params: list[str] = Field(default_factory=list)
    timeouts: TimeoutsConfig = Field(default_factory=TimeoutsConfig)
    retries: RetriesConfig = Field(default_factory=RetriesConfig)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    #: Per-model prices replacing (or adding to) the shipped list prices.
    prices: dict[str, PriceConfig] = Field(default_factory=dict)
    capabilities: CloudCapabilitiesConfig = Field(default_factory=CloudCapabilitiesConfig)

    _key: str | None = PrivateAttr(default=None)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in registry.KINDS:
            known = ", ".join(sorted(registry.KINDS))
            raise ValueError(f"unknown provider kind {kind!r}; known kinds: {known}")
        if not registry.available(kind):
            raise ValueError(f"provider kind {kind!r} is not part of this Spillgate build")
        return kind

    @model_validator(mode="after")
    def _complete(self) -> ProviderConfig:
        spec = registry.KINDS[self.kind]
        if self.base_url is None:
            if spec.default_base_url is None:
                raise ValueError(f"`base_url` is required for kind {self.kind!r}")
            self.base_url = spec.default_base_url
        if not re.match(r"^https?://", self.base_url):
            raise ValueError(
                f"`base_url` must start with http:// or https://, got {self.base_url!r}"
            )
        for option in spec.required_options:
            if option not in self.options:
                raise ValueError(f"`options.{option}` is required for kind {self.kind!r}")
        if self.api_key is not None and self.api_key_file is not None:
            raise ValueError("set one of `api_key` and `api_key_file`, not both")
        if self.api_key_file is not None:
            try:
                self._key = self.api_key_file.read_text().strip()
            except OSError as err:
                raise ValueError(f"`api_key_file` cannot be read: {err.strerror}") from None
            if not self._key:
                raise ValueError("`api_key_file` is empty")
        elif self.api_key is not None:
            self._key = self.api_key.get_secret_value()
        return self

    @property
    def secret(self) -> str | None:
        """The API key (from `api_key` or `api_key_file`); never log it."""
        return self._key


# -- keys, ledger, limits, budgets, admin, tracing -----------------------------------------------


class AuthConfig(Strict):
    #: Require an API key (`Authorization: Bearer sk-sg-...`) on /v1. Off only when you say so.
    enabled: bool = True
    #: Serve without keys on an address other hosts can reach; refused unless set.
    allow_public: bool = False
    #: How often keys created or revoked through another replica are picked up.
    key_refresh_s: float = Field(5.0, gt=0)


class AdminConfig(Strict):
    #: Bearer token for /admin; the admin API answers 403 while it is unset.
    token: str | None = Field(None, min_length=16)


class LedgerConfig(Strict):
    #: `sqlite:///path` or `postgresql://user@host:5432/db`; default: SQLite under the home.
    url: str | None = None
    #: Where answered requests are written ahead before the database has them.
    spool_dir: Path | None = None
    #: The writer commits a batch at least this often (and fsyncs the spool as often).
    flush_interval_s: float = Field(0.2, gt=0)
    batch_size: int = Field(500, ge=1, le=10_000)
    connect_timeout_s: float = Field(5.0, gt=0)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str | None) -> str | None:
        if url is not None and not re.match(r"^(sqlite:///|postgres(ql)?://)", url):
            raise ValueError(
                "`url` must start with sqlite:/// or postgresql:// "
                f"(got {url.split('://')[0]!r}://...)"
            )
        if url is not None and ambiguous_userinfo(url):
            raise ValueError(
                "`url`: percent-encode the special characters of the password "
                "(@ as %40, / as %2F, ? as %3F, # as %23)"
            )
        return url


class LimitsConfig(Strict):
    #: Share RPM/TPM counters between gateways through Redis; in-process when unset.
    redis_url: str | None = Field(None, pattern=r"^rediss?://")
    #: A Redis call slower than this counts as Redis down (the limit falls back in-process).
    redis_timeout_s: float = Field(0.25, gt=0)
    #: How long to stay on in-process limits before trying Redis again.
    redis_retry_s: float = Field(5.0, gt=0)


class BudgetsConfig(Strict):
    #: How often spend is re-read from the ledger (to see other replicas' spend).
    refresh_s: float = Field(10.0, gt=0)
    #: While a request runs at a cloud target, its worst-case cost is held against its key's
    #: budget: per answer, its `max_tokens`, else the model's documented output limit, else
    #: this many completion tokens.
    default_max_tokens: int = Field(4096, ge=1)


class TracingConfig(Strict):
    #: OTLP/HTTP endpoint (e.g. http://127.0.0.1:4318); no spans are made while unset.
    otlp_endpoint: str | None = Field(None, pattern=r"^https?://")
    service_name: str = "spillgate"


class Config(Strict):
    server: ServerConfig = Field(default_factory=ServerConfig)
    engines: list[EngineConfig] = Field(default_factory=list)
    #: Extra model ids clients may ask for, each mapped to a model id an engine serves.
    aliases: dict[str, str] = Field(default_factory=dict)
    home: Path = Field(default_factory=spillgate_home)
    providers: list[ProviderConfig] = Field(default_factory=list)
    #: Model ids clients may ask for, each an ordered list of targets: models local engines
    #: serve, and `provider/model` at a configured provider.
    routes: dict[str, list[str]] = Field(default_factory=dict)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    admin: AdminConfig = Field(default_factory=AdminConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    budgets: BudgetsConfig = Field(default_factory=BudgetsConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)

    @field_validator("engines")
    @classmethod
    def _unique_names(cls, engines: list[EngineConfig]) -> list[EngineConfig]:
        names = [e.name for e in engines]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"engine names must be unique; repeated: {', '.join(dupes)}")
        return engines

    @field_validator("providers")
    @classmethod
    def _unique_providers(cls, providers: list[ProviderConfig]) -> list[ProviderConfig]:
        names = [p.name for p in providers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"provider names must be unique; repeated: {', '.join(dupes)}")
        return providers

    def cloud_target(self, entry: str) -> tuple[ProviderConfig, str] | None:
        """The provider and model of a `provider/model` route entry; None for a local model."""
        prefix, slash, model = entry.partition("/")
        if not slash:
            return None
        for provider in self.providers:
            if provider.name == prefix:
                return provider, model
        return None

    @model_validator(mode="after")
    def _routes_resolve(self) -> Config:
        served = {name for e in self.engines for name in e.model_names} | set(self.aliases)
        names_known = all(e.model_names for e in self.engines)
        providers = ", ".join(p.name for p in self.providers) or "none"
        for route, entries in self.routes.items():
            where = f"routes.{route}"
            if route in served:
                raise ValueError(
                    f"{where}: {route!r} is already a model id of a local engine or alias"
                )
            if not entries:
                raise ValueError(f"{where}: list at least one target")
            for i, entry in enumerate(entries):
                cloud = self.cloud_target(entry)
                if cloud is not None:
                    provider, model = cloud
                    if not model:
                        raise ValueError(f"{where}[{i}]: {entry!r} names no model after the `/`")
                    if entry in served:
                        raise ValueError(
                            f"{where}[{i}]: {entry!r} is both a local model id and "
                            f"`provider/model`; rename the provider {provider.name!r}"
                        )
                    if provider.models and model not in provider.models:
                        raise ValueError(
                            f"{where}[{i}]: provider {provider.name!r} lists no model {model!r} "
                            f"(its models: {', '.join(provider.models)})"
                        )
                elif names_known and entry not in served:
                    raise ValueError(
                        f"{where}[{i}]: {entry!r} is neither `provider/model` at a configured "
                        f"provider ({providers}) nor a model a local engine serves"
                    )
        return self

    @model_validator(mode="after")
    def _no_open_door(self) -> Config:
        if self.auth.enabled or self.auth.allow_public or self.server.loopback_only:
            return self
        raise ValueError(
            f"auth.enabled is false and server.host is {self.server.host!r}, which other "
            "machines can reach: anyone there could use this gateway and its providers. "
            "Set auth.enabled: true (then create keys with `spillgate keys create`), listen "
            "on 127.0.0.1, or say it is meant with `auth: {enabled: false, allow_public: true}`"
        )

    def secrets(self) -> list[str]:
        """Every secret the configuration holds: none may appear in text that leaves."""
        found = [p.secret for p in self.providers]
        found += [e.api_key.get_secret_value() for e in self.engines if e.api_key is not None]
        found += [self.admin.token, self.server.metrics_token]
        found += [url_password(self.ledger.url), url_password(self.limits.redis_url)]
        return [s for s in found if s]

    @model_validator(mode="after")
    def _aliases_resolve(self) -> Config:
        served = {name for e in self.engines for name in e.model_names}
        if any(not e.model_names for e in self.engines):
            return self  # an attached engine will name its models once it answers
        for alias, target in self.aliases.items():
            if target not in served:
                known = ", ".join(sorted(served)) or "none"
                raise ValueError(
                    f"alias {alias!r} points to {target!r}, which no engine serves "
                    f"(served: {known})"
                )
        return self


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(text: str, env: dict[str, str] | None = None) -> str:
    """Replace `${NAME}` and `${NAME:-default}`; an unset variable without default is an error.

    Whole-line comments are left as they are.
    """
    env = dict(os.environ) if env is None else env
    missing: list[str] = []

    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        missing.append(name)
        return ""

    # A commented-out line is not configuration: its `${NAME}` needs no variable (the
    # shipped configs carry commented examples of settings that take secrets).
    result = "".join(
        line if line.lstrip().startswith("#") else _ENV_REF.sub(sub, line)
        for line in text.splitlines(keepends=True)
    )
    if missing:
        raise ConfigError(
            "environment variables referenced but not set: " + ", ".join(sorted(set(missing)))
        )
    return result


def _format_errors(err: ValidationError) -> str:
    lines = []
    for item in err.errors():
        path = ""
        for part in item["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        msg = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            msg = "unknown key (see docs/configuration.md for the keys)"
        # A cross-key check names its own key path at the start of the message.
        lines.append(f"  {path}: {msg}" if path else f"  {msg}")
    return "invalid configuration:\n" + "\n".join(lines)


def from_dict(data: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(err)) from None


def load(path: Path, env: dict[str, str] | None = None) -> Config:
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from None
    try:
        data = yaml.safe_load(interpolate(text, env)) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    return from_dict(data)
