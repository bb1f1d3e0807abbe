"""API keys through the admin API and the CLI, and what a key allows on /v1."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from harness import STANDIN, GatewayProcess, free_port, standin_engine_config, wait_http
from services import ADMIN, ADMIN_TOKEN, create_key, metric, wait_for

MESSAGES = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def keyed_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp("keyed")
    engine = standin_engine_config("standin", ["standin-model", "second-model"])
    config = {
        "engines": [engine],
        "auth": {"enabled": True},
        "admin": {"token": ADMIN_TOKEN},
        "ledger": {"flush_interval_s": 0.05},
    }
    with GatewayProcess(config, workdir) as gateway:
        yield gateway


def client(gateway: GatewayProcess, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)


def chat(gateway: GatewayProcess, key: str, model: str = "standin-model", **kw: object) -> str:
    reply = client(gateway, key).chat.completions.create(model=model, messages=MESSAGES, **kw)  # type: ignore[call-overload]
    return reply.choices[0].message.content


def test_a_created_key_works_and_is_shown_only_once(keyed_gateway: GatewayProcess) -> None:
    key = create_key(keyed_gateway.url, name="alice", tags={"team": "search"})
    assert key["key"].startswith("sk-sg-") and len(key["key"]) > 40
    assert chat(keyed_gateway, key["key"])
    shown = httpx.get(f"{keyed_gateway.url}/admin/keys/{key['id']}", headers=ADMIN).json()
    assert "key" not in shown and "key_hash" not in shown
    assert shown["prefix"] == key["key"][:10]
    assert shown["tags"] == {"team": "search"}
    listed = httpx.get(f"{keyed_gateway.url}/admin/keys", headers=ADMIN).json()["data"]
    assert "alice" in [k["name"] for k in listed]
    assert key["key"] not in keyed_gateway.logs()


@pytest.mark.parametrize(
    ("api_key", "words"),
    [("sk-sg-not-a-real-key-at-all", "not known"), ("", "no API key")],
)
def test_unknown_or_missing_key_is_401(
    keyed_gateway: GatewayProcess, api_key: str, words: str
) -> None:
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    resp = httpx.post(
        f"{keyed_gateway.url}/v1/chat/completions",
        json={"model": "standin-model", "messages": MESSAGES},
        headers=headers,
    )
    assert resp.status_code == 401
    assert words in resp.json()["error"]["message"]
    assert resp.json()["error"]["code"] == "invalid_api_key"
    if api_key:
        with pytest.raises(openai.AuthenticationError):
            chat(keyed_gateway, api_key)


def test_a_revoked_key_is_401(keyed_gateway: GatewayProcess) -> None:
    key = create_key(keyed_gateway.url, name="bob")
    assert chat(keyed_gateway, key["key"])
    resp = httpx.delete(f"{keyed_gateway.url}/admin/keys/bob", headers=ADMIN)
    assert resp.status_code == 200 and resp.json()["revoked"]
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        chat(keyed_gateway, key["key"])


def test_a_model_the_key_may_not_use_is_403(keyed_gateway: GatewayProcess) -> None:
    key = create_key(keyed_gateway.url, name="carol", allowed_models=["standin-model"])
    assert chat(keyed_gateway, key["key"], "standin-model")
    with pytest.raises(openai.PermissionDeniedError, match="may not use model 'second-model'"):
        chat(keyed_gateway, key["key"], "second-model")


def test_listing_models_needs_a_key_and_shows_only_the_key_s_models(
    keyed_gateway: GatewayProcess,
) -> None:
    for path in ("/v1/models", "/v1/models/standin-model"):
        resp = httpx.get(f"{keyed_gateway.url}{path}")
        assert resp.status_code == 401, path
        assert resp.json()["error"]["code"] == "invalid_api_key"
    key = create_key(keyed_gateway.url, name="dora", allowed_models=["standin-model"])
    listed = client(keyed_gateway, key["key"]).models.list()
    assert [m.id for m in listed.data] == ["standin-model"]
    assert client(keyed_gateway, key["key"]).models.retrieve("standin-model").id == "standin-model"
    with pytest.raises(openai.NotFoundError) as refused:
        client(keyed_gateway, key["key"]).models.retrieve("second-model")
    message = refused.value.body["message"]  # type: ignore[index]
    assert message.endswith("available models: standin-model")


def test_duplicate_key_names_are_refused_until_revoked(keyed_gateway: GatewayProcess) -> None:
    create_key(keyed_gateway.url, name="dave")
    again = httpx.post(f"{keyed_gateway.url}/admin/keys", json={"name": "dave"}, headers=ADMIN)
    assert again.status_code == 409
    assert "already named 'dave'" in again.json()["error"]["message"]
    httpx.delete(f"{keyed_gateway.url}/admin/keys/dave", headers=ADMIN)
    assert (
        httpx.post(
            f"{keyed_gateway.url}/admin/keys", json={"name": "dave"}, headers=ADMIN
        ).status_code
        == 201
    )
    other = create_key(keyed_gateway.url, name="erin")
    renamed = httpx.patch(
        f"{keyed_gateway.url}/admin/keys/{other['id']}", json={"name": "dave"}, headers=ADMIN
    )
    assert renamed.status_code == 409


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("POST", "/admin/keys", b"{not json", 400, "not valid JSON"),
        ("POST", "/admin/keys", b"", 400, "empty"),
        ("POST", "/admin/keys", b"[1, 2]", 400, "JSON object"),
        ("POST", "/admin/keys", b'{"name": "x", "colour": "red"}', 400, "`colour`: unknown field"),
        ("POST", "/admin/keys", b'{"rpm": 5}', 400, "`name`"),
        ("POST", "/admin/keys", b'{"name": "has space"}', 400, "letters, digits"),
        ("POST", "/admin/keys", b'{"name": "x", "rpm": "5"}', 400, "`rpm`"),
        ("POST", "/admin/keys", b'{"name": "x", "rpm": 0}', 400, "`rpm`"),
        ("POST", "/admin/keys", b'{"name": "x", "budget_day_usd": -1}', 400, "cannot be negative"),
        ("POST", "/admin/keys", b'{"name": "x", "budget_month_usd": -0.5}', 400, "negative"),
        ("POST", "/admin/keys", b'{"name": "x", "allowed_models": "m"}', 400, "allowed_models"),
        ("PATCH", "/admin/keys/nobody", b'{"rpm": 3}', 404, "no API key"),
        ("PATCH", "/admin/keys/alice", b'{"onprem_only": null}', 400, "cannot be null"),
        ("PATCH", "/admin/keys/alice", b'{"budget_day_usd": -3}', 400, "cannot be negative"),
        ("DELETE", "/admin/keys/nobody", b"", 404, "no API key"),
        ("GET", "/admin/usage?group_by=colour", b"", 400, "group_by"),
        ("GET", "/admin/usage?since=yesterday", b"", 400, "`since`"),
        ("GET", "/admin/usage?since=2025-02-01&until=2025-01-01", b"", 400, "later"),
        ("GET", "/admin/usage?user=x", b"", 400, "unknown filter"),
    ],
)
def test_malformed_admin_requests_say_what_to_change(
    keyed_gateway: GatewayProcess, method: str, path: str, body: bytes, status: int, words: str
) -> None:
    if "alice" in path:
        httpx.post(f"{keyed_gateway.url}/admin/keys", json={"name": "alice"}, headers=ADMIN)
    resp = httpx.request(method, f"{keyed_gateway.url}{path}", content=body, headers=ADMIN)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert words in error["message"]
    assert error["type"]


def test_admin_api_needs_its_token(keyed_gateway: GatewayProcess) -> None:
    url = f"{keyed_gateway.url}/admin/keys"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"authorization": "Bearer wrong-token"}).status_code == 401
    key = create_key(keyed_gateway.url, name="not-admin")
    as_key = httpx.get(url, headers={"authorization": f"Bearer {key['key']}"})
    assert as_key.status_code == 401  # an API key is not the admin token


def test_admin_api_is_off_without_a_token(standin_gateway: GatewayProcess) -> None:
    resp = httpx.get(f"{standin_gateway.url}/admin/keys", headers=ADMIN)
    assert resp.status_code == 403
    assert "set admin.token" in resp.json()["error"]["message"]


def test_updating_a_key_changes_what_it_may_do(keyed_gateway: GatewayProcess) -> None:
    key = create_key(keyed_gateway.url, name="frank", allowed_models=["second-model"])
    with pytest.raises(openai.PermissionDeniedError):
        chat(keyed_gateway, key["key"], "standin-model")
    resp = httpx.patch(
        f"{keyed_gateway.url}/admin/keys/frank",
        json={"allowed_models": [], "budget_day_usd": 2.5, "rpm": None},
        headers=ADMIN,
    )
    assert resp.status_code == 200 and resp.json()["budget_day_usd"] == 2.5
    assert chat(keyed_gateway, key["key"], "standin-model")


def test_tpm_limit_refuses_once_the_minute_s_tokens_are_used(
    keyed_gateway: GatewayProcess,
) -> None:
    key = create_key(keyed_gateway.url, name="grace", tpm=10)
    answered = 0
    with pytest.raises(openai.RateLimitError, match="10 tokens per minute") as refused:
        for _ in range(20):
            chat(keyed_gateway, key["key"])
            answered += 1
    assert 1 <= answered < 20
    assert int(refused.value.response.headers["retry-after"]) >= 1
    assert metric(keyed_gateway.url, "spillgate_rate_limited_requests_total", 'limit="tpm"') >= 1


def test_prompts_are_logged_only_for_keys_that_opt_in(keyed_gateway: GatewayProcess) -> None:
    quiet = create_key(keyed_gateway.url, name="quiet")
    loud = create_key(keyed_gateway.url, name="loud", log_prompts=True)
    for key, word in ((quiet, "zebra-secret-quiet"), (loud, "zebra-secret-loud")):
        client(keyed_gateway, key["key"]).chat.completions.create(
            model="standin-model", messages=[{"role": "user", "content": word}]
        )
    wait_for(lambda: "zebra-secret-loud" in keyed_gateway.logs(), what="opted-in prompt logged")
    assert "zebra-secret-quiet" not in keyed_gateway.logs()


def _cli(gateway: GatewayProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPILLGATE_URL": gateway.url, "SPILLGATE_ADMIN_TOKEN": ADMIN_TOKEN}
    return subprocess.run(
        [sys.executable, "-m", "spillgate.server.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_keys_and_usage_from_the_command_line(keyed_gateway: GatewayProcess) -> None:
    made = _cli(keyed_gateway, "keys", "create", "--name", "cli-key", "--rpm", "50", "--tag", "a=b")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip().splitlines()[-1]
    assert secret.startswith("sk-sg-")
    assert chat(keyed_gateway, secret)
    listed = _cli(keyed_gateway, "keys", "list")
    assert "cli-key" in listed.stdout and secret not in listed.stdout
    updated = _cli(
        keyed_gateway, "keys", "update", "cli-key", "--budget-day", "3", "--clear", "rpm"
    )
    assert updated.returncode == 0 and "3.00" in updated.stdout
    bad = _cli(keyed_gateway, "keys", "update", "cli-key", "--budget-day", "-1")
    assert bad.returncode == 2 and "cannot be negative" in bad.stderr
    wait_for(lambda: metric(keyed_gateway.url, "spillgate_ledger_backlog_records") == 0)
    usage = _cli(keyed_gateway, "usage", "--key", "cli-key")
    assert usage.returncode == 0, usage.stderr
    header, row = usage.stdout.splitlines()[:2]
    assert header.split()[:2] == ["key", "requests"]
    assert row.startswith("cli-key") and "100%" in row
    revoked = _cli(keyed_gateway, "keys", "revoke", "cli-key")
    assert revoked.returncode == 0
    with pytest.raises(openai.AuthenticationError):
        chat(keyed_gateway, secret)
    no_token = subprocess.run(
        [sys.executable, "-m", "spillgate.server.cli", "keys", "list", "--url", keyed_gateway.url],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "SPILLGATE_ADMIN_TOKEN"},
    )
    assert no_token.returncode == 2 and "SPILLGATE_ADMIN_TOKEN" in no_token.stderr


def test_usage_filters_and_groups(keyed_gateway: GatewayProcess) -> None:
    key = create_key(keyed_gateway.url, name="henry")
    for model in ("standin-model", "standin-model", "second-model"):
        chat(keyed_gateway, key["key"], model)
    wait_for(lambda: metric(keyed_gateway.url, "spillgate_ledger_backlog_records") == 0)

    def usage(**params: str) -> list[dict[str, object]]:
        resp = httpx.get(f"{keyed_gateway.url}/admin/usage", params=params, headers=ADMIN)
        assert resp.status_code == 200, resp.text
        return resp.json()["data"]

    by_model = {g["group"]: g for g in usage(key="henry", group_by="model")}
    assert by_model["standin-model"]["requests"] == 2
    assert by_model["second-model"]["requests"] == 1
    assert by_model["standin-model"]["completion_tokens"] > 0
    assert by_model["standin-model"]["local_share"] == 1.0
    by_target = usage(key="henry", group_by="target")
    assert [g["group"] for g in by_target] == ["standin"]
    assert usage(key="henry", model="second-model")[0]["requests"] == 1
    assert usage(key="henry", until="2020-01-01") == []
    days = usage(key="henry", group_by="day", since="2020-01-01T00:00:00Z")
    assert len(days) == 1 and days[0]["requests"] == 3


def test_without_a_config_file_auth_is_off_and_loopback_only(tmp_path: Path) -> None:
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "spillgate.server.cli",
            "serve",
            "--host",
            "0.0.0.0",
            "--local-url",
            "http://127.0.0.1:9/v1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SPILLGATE_HOME": str(tmp_path)},
    )
    assert refused.returncode == 2
    assert "loopback only" in refused.stderr and "write a config file" in refused.stderr


def test_without_a_config_file_requests_need_no_key(tmp_path: Path) -> None:
    """The `make serve` path: flags only, a single-user box on loopback."""
    engine_port, port = free_port(), free_port()
    engine = subprocess.Popen(
        [*STANDIN, "--port", str(engine_port), "--served-model-name", "standin-model"]
    )
    gateway = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spillgate.server.cli",
            "serve",
            "--port",
            str(port),
            "--local-url",
            f"http://127.0.0.1:{engine_port}/v1",
        ],
        env={**os.environ, "SPILLGATE_HOME": str(tmp_path)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz")
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused")
        reply = client.chat.completions.create(model="standin-model", messages=MESSAGES)
        assert reply.choices[0].message.content
    finally:
        for proc in (gateway, engine):
            proc.terminate()
            proc.wait(30)
    assert gateway.stderr is not None
    assert "auth is off" in gateway.stderr.read()
