"""The real PostgreSQL and Redis the ledger and limit tests use, and a TCP proxy that
stands between the gateway and either one so a test can cut the line and restore it."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from harness import free_port

PG_HOST, PG_PORT, PG_DB = "127.0.0.1", 5432, "test"
REDIS_URL = "redis://127.0.0.1:6379/0"
ADMIN_TOKEN = "admin-token-for-tests-0123456789"
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


def pg_user() -> str:
    for user in (os.environ.get("PGUSER"), "root", "postgres"):
        if user:
            with contextlib.suppress(psycopg.OperationalError):
                psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user=user).close()
                return user
    raise RuntimeError("PostgreSQL on 127.0.0.1:5432 (database `test`) does not answer")


def pg_url(schema: str, port: int = PG_PORT) -> str:
    return f"postgresql://{pg_user()}@{PG_HOST}:{port}/{PG_DB}?options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A schema of its own in the shared `test` database, dropped afterwards."""
    schema = "sg_" + secrets.token_hex(6)
    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, dbname=PG_DB, user=pg_user(), autocommit=True
    ) as c:
        c.execute(f"CREATE SCHEMA {schema}")
    yield schema
    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, dbname=PG_DB, user=pg_user(), autocommit=True
    ) as c:
        c.execute(f"DROP SCHEMA {schema} CASCADE")


def pg_rows(schema: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user=pg_user()) as c:
        c.execute(f"SET search_path TO {schema}")
        return c.execute(sql).fetchall()


def sqlite_rows(home: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(home / "ledger.sqlite3")) as c:
        return c.execute(sql).fetchall()


def metric(base_url: str, name: str, labels: str = "") -> float:
    """One sample from the gateway's /metrics, e.g. metric(url, 'spillgate_ledger_db_up')."""
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in httpx.get(f"{base_url}/metrics").text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(wanted)


def wait_for(predicate: Any, timeout_s: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} not met in {timeout_s}s")


def create_key(base_url: str, **fields: Any) -> dict[str, Any]:
    resp = httpx.post(f"{base_url}/admin/keys", json=fields, headers=ADMIN)
    assert resp.status_code == 201, resp.text
    return resp.json()


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a service; `cut()` drops every connection and stops
    listening (the service looks down), `restore()` listens again on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        self.start()
