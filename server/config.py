"""The configuration: one YAML file, `${ENV}` interpolation, validated at start.

Every key is documented in docs/configuration.md. Validation errors name the key path
(`engines[0].url`) and say what is wrong.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from spillgate.models.cpu_model import spillgate_home


class ConfigError(Exception):
    """The configuration cannot be used; the message lists each problem with its key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerConfig(_Strict):
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


class EngineConfig(_Strict):
    """A local engine: launched (`model`) or attached to (`url`)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    model: str | None = None
    url: str | None = None
    #: The model ids this engine answers to; the first is its own name. Default: `model`.
    served_model_names: list[str] = Field(default_factory=list)
    #: Extra vLLM arguments, passed through untouched.
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    port: int | None = Field(None, ge=1, le=65535)
    #: The command that starts the engine; the vLLM OpenAI server unless set.
    launcher: list[str] | None = None
    startup_timeout_s: float = Field(900.0, gt=0)
    health_interval_s: float = Field(2.0, gt=0)

    @model_validator(mode="after")
    def _one_source(self) -> EngineConfig:
        if (self.model is None) == (self.url is None):
            raise ValueError("set exactly one of `model` (launch vLLM) or `url` (attach)")
        if self.url is not None:
            if not re.match(r"^https?://", self.url):
                raise ValueError(f"`url` must start with http:// or https://, got {self.url!r}")
            if self.args or self.launcher or self.port:
                raise ValueError("`args`, `launcher` and `port` apply to launched engines only")
        return self

    @property
    def model_names(self) -> list[str]:
        """Names known from the config; an attached engine without them is asked at run time."""
        if self.served_model_names:
            return self.served_model_names
        return [self.model] if self.model else []


# -- keys, ledger, limits, budgets, admin, tracing (issue 5) -----------------------------------


class AuthConfig(_Strict):
    #: Require an API key (`Authorization: Bearer sk-sg-...`) on /v1. Off only when you say so.
    enabled: bool = True
    #: How often keys created or revoked through another replica are picked up.
    key_refresh_s: float = Field(5.0, gt=0)


class AdminConfig(_Strict):
    #: Bearer token for /admin; the admin API answers 403 while it is unset.
    token: str | None = Field(None, min_length=16)


class LedgerConfig(_Strict):
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
        return url


class LimitsConfig(_Strict):
    #: Share RPM/TPM counters between gateways through Redis; in-process when unset.
    redis_url: str | None = Field(None, pattern=r"^rediss?://")
    #: A Redis call slower than this counts as Redis down (the limit falls back in-process).
    redis_timeout_s: float = Field(0.25, gt=0)
    #: How long to stay on in-process limits before trying Redis again.
    redis_retry_s: float = Field(5.0, gt=0)


class BudgetsConfig(_Strict):
    #: How often spend is re-read from the ledger (to see other replicas' spend).
    refresh_s: float = Field(10.0, gt=0)


class TracingConfig(_Strict):
    #: OTLP/HTTP endpoint (e.g. http://127.0.0.1:4318); no spans are made while unset.
    otlp_endpoint: str | None = Field(None, pattern=r"^https?://")
    service_name: str = "spillgate"


class Config(_Strict):
    server: ServerConfig = Field(default_factory=ServerConfig)
    engines: list[EngineConfig] = Field(default_factory=list)
    #: Extra model ids clients may ask for, each mapped to a model id an engine serves.
    aliases: dict[str, str] = Field(default_factory=dict)
    home: Path = Field(default_factory=spillgate_home)
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
    """Replace `${NAME}` and `${NAME:-default}`; an unset variable without default is an error."""
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

    result = _ENV_REF.sub(sub, text)
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
        lines.append(f"  {path or '(top level)'}: {msg}")
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
