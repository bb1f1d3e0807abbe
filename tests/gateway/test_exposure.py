"""Nothing exposed: /metrics names keys by id and takes a token, a keyless gateway refuses a
public address unless told, tokens compare as bytes, and database URLs are redacted whole."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from harness import GatewayProcess, free_port, standin_engine_config
from services import wait_for

from spillgate.server.config import ConfigError, from_dict
from spillgate.server.ledger.store import Store, StoreUnavailable
from spillgate.server.urls import redact_url

# Non-ASCII on purpose: tokens are compared as bytes, not refused with a 500.
ADMIN_TOKEN = "jeton-d'administration-été-2025"
METRICS_TOKEN = "metrics-token-for-tests-0123456789"
EMAIL = "alice.martin@example.com"


def bearer(token: str) -> dict[str, bytes]:
    # As a client sends a non-ASCII header: its UTF-8 bytes.
    return {"authorization": f"Bearer {token}".encode()}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = {
        "server": {"metrics_token": METRICS_TOKEN},
        "engines": [standin_engine_config("standin", ["standin-model"])],
        "auth": {"enabled": True},
        "admin": {"token": ADMIN_TOKEN},
        "budgets": {"refresh_s": 0.2},
    }
    with GatewayProcess(config, tmp_path_factory.mktemp("exposure")) as gw:
        yield gw


def metrics_text(gateway: GatewayProcess) -> str:
    resp = httpx.get(f"{gateway.url}/metrics", headers=bearer(METRICS_TOKEN))
    assert resp.status_code == 200, resp.text
    return resp.text


# -- /metrics ---------------------------------------------------------------------------------


def test_budget_gauge_names_the_key_by_id_never_by_its_name(gateway: GatewayProcess) -> None:
    resp = httpx.post(
        f"{gateway.url}/admin/keys",
        json={"name": EMAIL, "budget_day_usd": 5.0},
        headers=bearer(ADMIN_TOKEN),
    )
    assert resp.status_code == 201, resp.text
    key_id = resp.json()["id"]
    series = f'spillgate_key_budget_remaining_usd{{key_id="{key_id}",period="day"}} 5.0'
    wait_for(lambda: series in metrics_text(gateway), what="the key's budget gauge")
    assert EMAIL not in metrics_text(gateway)


@pytest.mark.parametrize("headers", [{}, bearer("not-the-metrics-token"), bearer("étranger")])
def test_metrics_needs_its_token_when_one_is_set(
    gateway: GatewayProcess, headers: dict[str, bytes]
) -> None:
    resp = httpx.get(f"{gateway.url}/metrics", headers=headers)
    assert resp.status_code == 401
    error = resp.json()["error"]
    assert error["code"] == "invalid_metrics_token"
    assert "server.metrics_token" in error["message"]
    assert "spillgate_" not in resp.text


# -- tokens compared as bytes ---------------------------------------------------------------------


def test_a_non_ascii_admin_token_is_accepted(gateway: GatewayProcess) -> None:
    resp = httpx.get(f"{gateway.url}/admin/keys", headers=bearer(ADMIN_TOKEN))
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("token", ["mauvais-jeton-été", "wrong-admin-token-0123456789", "é"])
def test_a_wrong_admin_token_is_401_whatever_its_characters(
    gateway: GatewayProcess, token: str
) -> None:
    resp = httpx.get(f"{gateway.url}/admin/keys", headers=bearer(token))
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_admin_token"


# -- no keys on a public address -----------------------------------------------------------------


def serve(config: dict[str, Any], tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "spillgate.yaml"
    path.write_text(yaml.safe_dump({"home": str(tmp_path / "home"), **config}))
    return subprocess.run(
        [sys.executable, "-m", "spillgate.server.cli", "serve", "--config", str(path), *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


KEYLESS = {"auth": {"enabled": False}, "engines": [{"name": "e", "url": "http://127.0.0.1:9/v1"}]}


@pytest.mark.parametrize(
    ("config", "extra"),
    [
        ({**KEYLESS, "server": {"host": "0.0.0.0", "port": 0}}, ()),
        (KEYLESS, ("--host", "::", "--port", "0")),
    ],
)
def test_serve_refuses_a_keyless_public_address(
    config: dict[str, Any], extra: tuple[str, ...], tmp_path: Path
) -> None:
    done = serve(config, tmp_path, *extra)
    assert done.returncode == 2
    assert "auth.enabled is false" in done.stderr
    assert "allow_public: true" in done.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "gateway.internal"])
def test_a_keyless_config_may_not_listen_beyond_loopback(host: str) -> None:
    with pytest.raises(ConfigError, match=r"auth\.enabled is false"):
        from_dict({"server": {"host": host}, "auth": {"enabled": False}})
    # Saying so, or turning keys on, is accepted.
    from_dict({"server": {"host": host}, "auth": {"enabled": False, "allow_public": True}})
    from_dict({"server": {"host": host}, "auth": {"enabled": True}})


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_a_keyless_config_may_listen_on_loopback(host: str) -> None:
    assert not from_dict({"server": {"host": host}, "auth": {"enabled": False}}).auth.enabled


# -- database and Redis URLs ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://spill:hunter2@secret-tail@db:5432/ledger", "postgresql://spill:***@db:5432/ledger"),
        ("postgresql://spill:p%40ss-secret-tail@db/ledger", "postgresql://spill:***@db/ledger"),
        ("postgresql://db/ledger?password=secret-tail&sslmode=require",
         "postgresql://db/ledger?password=***&sslmode=require"),
        ("redis://:hunter2@secret-tail@cache:6379/0", "redis://:***@cache:6379/0"),
        ("rediss://user:secret-tail@[::1]:6380/1", "rediss://user:***@[::1]:6380/1"),
        ("postgresql://spill@db/ledger", "postgresql://spill@db/ledger"),
    ],
)  # fmt: skip
def test_a_url_is_redacted_whole_whatever_its_password_holds(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_password_with_a_bare_at_sign_is_refused_without_being_shown(tmp_path: Path) -> None:
    # libpq cuts the user-info at the first `@`: the rest of the password would be a host
    # name, and its error would print it.
    url = f"postgresql://spill:hunter2@secret-tail@127.0.0.1:{free_port()}/ledger"
    done = serve({**KEYLESS, "ledger": {"url": url}}, tmp_path)
    assert done.returncode == 2
    assert "%40" in done.stderr
    assert "hunter2" not in done.stderr and "secret-tail" not in done.stderr


def test_an_unreachable_ledger_is_named_without_its_password() -> None:
    port = free_port()
    store = Store(f"postgresql://spill:p%40ss-secret-tail@127.0.0.1:{port}/ledger", 1.0)
    with pytest.raises(StoreUnavailable) as err:
        store.open()
    assert f"postgresql://spill:***@127.0.0.1:{port}/ledger" in str(err.value)
    assert "secret-tail" not in str(err.value)
