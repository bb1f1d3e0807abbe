"""The ledger: one record per request with every field, SQLite and PostgreSQL, nothing lost
when the gateway is killed, and the database down at start or while serving."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from harness import GatewayProcess, alive, children_of, free_port, standin_engine_config
from services import (
    ADMIN,
    ADMIN_TOKEN,
    PG_PORT,
    TcpProxy,
    create_key,
    metric,
    pg_rows,
    pg_schema,
    pg_url,
    sqlite_rows,
    wait_for,
)

from spillgate.server.ledger.migrations import LATEST

__all__ = ["pg_schema"]  # a fixture

COLUMNS = (
    "request_id, key_id, model, target, target_kind, reason, prompt_tokens, completion_tokens, "
    "cached_tokens, cost_usd, ttft_ms, total_ms, status, streamed, complete, endpoint"
)


def _record(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    assert len(rows) == 1, rows
    return dict(zip([c.strip() for c in COLUMNS.split(",")], rows[0], strict=True))


def _drained(gateway: GatewayProcess) -> None:
    wait_for(
        lambda: metric(gateway.url, "spillgate_ledger_backlog_records") == 0,
        what="ledger backlog written",
    )


@pytest.fixture
def ledger_gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    engine = standin_engine_config("standin", ["standin-model"])
    config = {
        "engines": [engine],
        "auth": {"enabled": True},
        "admin": {"token": ADMIN_TOKEN},
        "ledger": {"flush_interval_s": 0.05},
    }
    with GatewayProcess(config, tmp_path) as gateway:
        yield gateway


def test_each_request_leaves_one_record_with_every_field(ledger_gateway: GatewayProcess) -> None:
    key = create_key(ledger_gateway.url, name="ledger-user")
    client = openai.OpenAI(base_url=f"{ledger_gateway.url}/v1", api_key=key["key"], max_retries=0)
    plain = client.chat.completions.with_raw_response.create(
        model="standin-model", messages=[{"role": "user", "content": "one two three"}]
    )
    stream = client.chat.completions.create(
        model="standin-model",
        messages=[{"role": "user", "content": "four"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-request-id": "my-stream-1"},
    )
    chunks = list(stream)
    refused = httpx.post(
        f"{ledger_gateway.url}/v1/chat/completions",
        json={"model": "standin-model", "messages": []},
        headers={"authorization": "Bearer sk-sg-wrong", "x-request-id": "refused-1"},
    )
    assert refused.status_code == 401
    _drained(ledger_gateway)
    home = Path(ledger_gateway.config["home"])

    def row(request_id: str) -> dict[str, Any]:
        sql = f"SELECT {COLUMNS} FROM usage_records WHERE request_id = '{request_id}'"
        return _record(sqlite_rows(home, sql))

    answered = row(plain.headers["x-request-id"])
    usage = plain.parse().usage
    assert usage is not None
    assert answered["key_id"] == key["id"]
    assert (answered["model"], answered["target"], answered["target_kind"]) == (
        "standin-model",
        "standin",
        "local",
    )
    assert answered["reason"] == "local" and answered["status"] == 200
    assert answered["prompt_tokens"] == usage.prompt_tokens
    assert answered["completion_tokens"] == usage.completion_tokens
    assert answered["cached_tokens"] == 0 and answered["cost_usd"] == 0
    assert answered["streamed"] == 0 and answered["complete"] == 1
    assert 0 < answered["ttft_ms"] <= answered["total_ms"]
    assert answered["endpoint"] == "chat/completions"

    streamed = row("my-stream-1")
    assert streamed["streamed"] == 1 and streamed["complete"] == 1 and streamed["status"] == 200
    assert streamed["completion_tokens"] == chunks[-1].usage.completion_tokens  # type: ignore[union-attr]
    assert 0 < streamed["ttft_ms"] <= streamed["total_ms"]

    gone = row("refused-1")
    assert (gone["status"], gone["key_id"], gone["target"]) == (401, None, "none")
    assert gone["reason"] == "invalid_api_key"


def _load(url: str, answered: list[str], stop: threading.Event, worker: int) -> None:
    """Requests until told to stop; keep the ids of those answered 200."""
    with httpx.Client(timeout=10) as client:
        n = 0
        while not stop.is_set():
            n += 1
            rid = f"w{worker}-{n}"
            body = {"model": "standin-model", "messages": [{"role": "user", "content": rid}]}
            try:
                if n % 3 == 0:
                    body["stream"] = True
                    with client.stream(
                        "POST",
                        f"{url}/v1/chat/completions",
                        json=body,
                        headers={"x-request-id": rid},
                    ) as resp:
                        if resp.status_code == 200:
                            answered.append(rid)  # the status line reached the client
                        resp.read()
                else:
                    resp = client.post(
                        f"{url}/v1/chat/completions", json=body, headers={"x-request-id": rid}
                    )
                    if resp.status_code == 200:
                        answered.append(rid)
            except httpx.HTTPError:
                pass  # the gateway died under this request: it was never answered


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_no_answered_request_is_lost_when_the_gateway_is_killed(
    tmp_path: Path, request: pytest.FixtureRequest, database: str
) -> None:
    ledger: dict[str, Any] = {"flush_interval_s": 60, "batch_size": 10_000}  # the DB lags
    schema = None
    if database == "postgresql":
        schema = request.getfixturevalue("pg_schema")
        ledger["url"] = pg_url(schema)
    config = {"engines": [standin_engine_config("standin", ["standin-model"])], "ledger": ledger}
    gateway = GatewayProcess(config, tmp_path).start()
    assert gateway.proc is not None
    engines = children_of(gateway.proc.pid)

    answered: list[str] = []
    stop = threading.Event()
    workers = [
        threading.Thread(target=_load, args=(gateway.url, answered, stop, i)) for i in range(6)
    ]
    for w in workers:
        w.start()
    try:
        wait_for(lambda: len(answered) >= 300, timeout_s=60, what="300 answered requests")
        gateway.stop(signal.SIGKILL)
    finally:
        stop.set()
        for w in workers:
            w.join()
    wait_for(lambda: not any(alive(p) for p in engines), what="engines gone with the gateway")

    def stored() -> set[str]:
        sql = "SELECT request_id FROM usage_records"
        if schema is not None:
            return {r[0] for r in pg_rows(schema, sql)}
        return {r[0] for r in sqlite_rows(Path(gateway.config["home"]), sql)}

    # Killed before its first batch: the database had none of it, only the spool did.
    assert stored() == set()

    restarted = GatewayProcess(config, tmp_path).start()
    try:
        _drained(restarted)
        missing = set(answered) - stored()
        assert not missing, f"{len(missing)} of {len(answered)} answered requests missing"
    finally:
        restarted.stop()


def test_unreachable_database_at_start_is_a_clear_error(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    config = tmp_path / "spillgate.yaml"
    config.write_text(
        "engines: [{name: e, url: 'http://127.0.0.1:9/v1', served_model_names: [m]}]\n"
        f"ledger: {{url: 'postgresql://root:hunter2@127.0.0.1:{port}/test'}}\n"
        f"home: {tmp_path / 'home'}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "spillgate.server.cli", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"ledger database postgresql://root:***@127.0.0.1:{port}/test is unavailable" in (
        result.stderr
    )
    assert "hunter2" not in result.stderr + result.stdout


def test_database_down_while_serving_keeps_serving_and_writes_the_backlog_later(
    tmp_path: Path, pg_schema: str
) -> None:
    proxy = TcpProxy(PG_PORT).start()
    config = {
        "engines": [standin_engine_config("standin", ["standin-model"])],
        "auth": {"enabled": True},
        "admin": {"token": ADMIN_TOKEN},
        "ledger": {"url": pg_url(pg_schema, port=proxy.port), "flush_interval_s": 0.05},
    }
    with GatewayProcess(config, tmp_path) as gateway:
        key = create_key(gateway.url, name="during-outage")
        auth = {"authorization": f"Bearer {key['key']}"}

        def ask(rid: str) -> int:
            body = {"model": "standin-model", "messages": [{"role": "user", "content": "x"}]}
            resp = httpx.post(
                f"{gateway.url}/v1/chat/completions",
                json=body,
                headers={**auth, "x-request-id": rid},
            )
            return resp.status_code

        assert ask("before") == 200
        _drained(gateway)
        proxy.cut()
        during = [f"during-{i}" for i in range(40)]
        assert [ask(rid) for rid in during] == [200] * 40  # auth and serving go on
        wait_for(lambda: metric(gateway.url, "spillgate_ledger_db_up") == 0, what="db down")
        assert metric(gateway.url, "spillgate_ledger_backlog_records") >= 40
        admin = httpx.get(f"{gateway.url}/admin/keys", headers=ADMIN)
        assert admin.status_code == 503 and "ledger database" in admin.json()["error"]["message"]
        assert gateway.logs().count("ledger database unreachable") == 1  # logged once

        proxy.restore()
        wait_for(lambda: metric(gateway.url, "spillgate_ledger_db_up") == 1, what="db back")
        _drained(gateway)
        stored = {r[0] for r in pg_rows(pg_schema, "SELECT request_id FROM usage_records")}
        assert {"before", *during} <= stored
    proxy.cut()


def test_two_gateways_cannot_share_one_spool(tmp_path: Path) -> None:
    config = {"engines": [standin_engine_config("standin", ["standin-model"])]}
    with GatewayProcess(config, tmp_path):
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "spillgate.server.cli",
                "serve",
                "--config",
                str(tmp_path / "spillgate.yaml"),
                "--port",
                str(free_port()),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ},
        )
    assert second.returncode == 2
    assert "another gateway is using the ledger spool" in second.stderr


def test_replicas_starting_together_migrate_postgresql_once(tmp_path: Path, pg_schema: str) -> None:
    gateways = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        config = {
            "engines": [standin_engine_config("s", ["standin-model"])],
            "ledger": {"url": pg_url(pg_schema)},
        }
        gateways.append(GatewayProcess(config, tmp_path / name))
    # Both start at once; the advisory lock lets one migrate and the other find it done.
    starts = [threading.Thread(target=g.start) for g in gateways]
    try:
        for t in starts:
            t.start()
        for t in starts:
            t.join()
        assert all(httpx.get(f"{g.url}/readyz").status_code == 200 for g in gateways)
        versions = pg_rows(pg_schema, "SELECT version FROM spillgate_schema ORDER BY version")
        assert versions == [(v,) for v in range(1, LATEST + 1)]
    finally:
        for g in gateways:
            if g.proc is not None:
                g.stop()
