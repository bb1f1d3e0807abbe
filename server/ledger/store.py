"""The ledger database: SQLite (embedded default) or PostgreSQL (several replicas).

Why psycopg 3 and the standard sqlite3 module: both are DB-API drivers used the same way
from one worker thread, so the SQL and the code around it are shared; the calls are few and
batched, so an async driver would buy nothing. Every call runs on the store's single worker
thread (`await store.run(...)`): the connection is never shared between threads, and the
request path never waits on the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson

from spillgate.server.keys import ApiKey
from spillgate.server.ledger import audit_store
from spillgate.server.ledger.egress import EgressRecord, EgressReport, EgressVerification
from spillgate.server.ledger.migrations import SchemaTooNew, migrate
from spillgate.server.ledger.record import COLUMNS
from spillgate.server.urls import redact_url

T = TypeVar("T")
GroupBy = Literal["key", "model", "target", "day"]


class StoreUnavailable(Exception):
    """The database cannot be reached or refused the call; the message names it, no secret."""


class DuplicateKeyName(Exception):
    pass


_UPSERT_COLUMNS = ", ".join(COLUMNS)
_UPSERT_UPDATES = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "record_id")
# A stream's opening record never overwrites its final one, whatever order a replay takes.
_UPSERT = (
    f"INSERT INTO usage_records ({_UPSERT_COLUMNS}) VALUES ({', '.join('?' for _ in COLUMNS)}) "
    f"ON CONFLICT (record_id) DO UPDATE SET {_UPSERT_UPDATES} "
    "WHERE excluded.complete OR NOT usage_records.complete"
)
_KEY_COLUMNS = (
    "id, name, key_hash, key_prefix, allowed_models, onprem_only, latency_budget_ms, rpm, tpm, "
    "budget_day_usd, budget_month_usd, tags, log_prompts, created_at, updated_at, revoked_at"
)

#: The columns an update may change (never the id, the hash, the prefix or created_at).
_UPDATABLE = (
    "name",
    "allowed_models",
    "onprem_only",
    "latency_budget_ms",
    "rpm",
    "tpm",
    "budget_day_usd",
    "budget_month_usd",
    "tags",
    "log_prompts",
    "updated_at",
    "revoked_at",
)


@dataclass(frozen=True, slots=True)
class UsageQuery:
    key_id: str | None = None
    model: str | None = None
    target: str | None = None
    since: float | None = None
    until: float | None = None
    group_by: GroupBy = "key"


@dataclass(frozen=True, slots=True)
class UsageRow:
    """Sums for one group, one model asked, one kind of target."""

    group: str | None
    model: str
    target_kind: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: float


class Store:
    def __init__(self, url: str, connect_timeout_s: float = 5.0) -> None:
        self.url = url
        self.dialect: Literal["sqlite", "postgresql"] = (
            "postgresql" if url.startswith("postgres") else "sqlite"
        )
        self.connect_timeout_s = connect_timeout_s
        self._conn: Any = None
        #: Spool records (usage and egress) committed by this store, so that it counts what
        #: the spool's sequence numbers count (touched on the worker thread only).
        self.rows_written = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="spillgate-ledger")

    @classmethod
    def for_home(cls, url: str | None, home: Path, connect_timeout_s: float) -> Store:
        return cls(url or f"sqlite:///{home / 'ledger.sqlite3'}", connect_timeout_s)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # -- connection -------------------------------------------------------------------------

    def open(self) -> None:
        """Connect and migrate; raise StoreUnavailable with a message an operator can act on."""
        try:
            with self._tx() as cur:
                migrate(cur, self.dialect)
        except SchemaTooNew as err:
            raise StoreUnavailable(str(err)) from None

    def _connect(self) -> Any:
        if self.dialect == "sqlite":
            path = Path(self.url.removeprefix("sqlite:///"))
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL survives a killed process; the spool covers the rest.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            return conn
        import psycopg

        return psycopg.connect(
            self.url, autocommit=True, connect_timeout=max(1, round(self.connect_timeout_s))
        )

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Any]:
        """One transaction on a live connection; a database fault becomes StoreUnavailable."""
        errors = _db_errors()
        try:
            if self._conn is None:
                self._conn = self._connect()
            conn = self._conn
            if self.dialect == "sqlite":
                cur = conn.cursor()
                cur.execute("BEGIN IMMEDIATE")
                try:
                    yield cur
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
            else:
                with conn.transaction(), conn.cursor() as cur:
                    yield _PgCursor(cur)
        except errors.integrity:
            raise
        except errors.fault as err:
            self._drop()
            raise StoreUnavailable(
                f"ledger database {redact_url(self.url)} is unavailable: {_first_line(err)}"
            ) from None

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        self._drop()
        self._pool.shutdown(wait=True)

    # -- usage ------------------------------------------------------------------------------

    def write_batch(
        self, usage: Sequence[tuple[Any, ...]], egress: Sequence[EgressRecord], records: int
    ) -> None:
        """Commit a batch read from the spool, usage rows (in COLUMNS order) and egress
        records, in one transaction. `records`: the spool lines they were read from, which
        may be more than the rows (a stream's opening line is dropped for its final one)."""
        with self._audit_tx() as cur:
            if usage:
                cur.executemany(_UPSERT, usage)
            audit_store.insert(cur, self.dialect, egress)
        self.rows_written += records

    def usage(self, query: UsageQuery) -> list[UsageRow]:
        group = {
            "key": "key_id",
            "model": "model",
            "target": "target",
            "day": "date(ts, 'unixepoch')"
            if self.dialect == "sqlite"
            else "to_char(to_timestamp(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        }[query.group_by]
        where: list[str] = []
        args: list[Any] = []
        for column, value in (
            ("key_id", query.key_id),
            ("model", query.model),
            ("target", query.target),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if query.since is not None:
            where.append("ts >= ?")
            args.append(query.since)
        if query.until is not None:
            where.append("ts < ?")
            args.append(query.until)
        sql = (
            f"SELECT {group} AS grp, model, target_kind, COUNT(*), SUM(prompt_tokens), "
            "SUM(completion_tokens), SUM(cached_tokens), SUM(cost_usd) FROM usage_records "
            + (f"WHERE {' AND '.join(where)} " if where else "")
            + "GROUP BY grp, model, target_kind ORDER BY grp, model, target_kind"
        )
        with self._tx() as cur:
            cur.execute(sql, args)
            rows = cur.fetchall()
        return [
            UsageRow(
                None if g is None else str(g), m, k, int(n), int(p), int(c), int(ca), float(cost)
            )
            for g, m, k, n, p, c, ca, cost in rows
        ]

    def spend_since(self, day_start: float, month_start: float) -> dict[str, tuple[float, float]]:
        """Cloud spend per key: (since `day_start`, since `month_start`)."""
        sql = (
            "SELECT key_id, SUM(CASE WHEN ts >= ? THEN cost_usd ELSE 0 END), SUM(cost_usd) "
            "FROM usage_records WHERE ts >= ? AND key_id IS NOT NULL AND cost_usd > 0 "
            "GROUP BY key_id"
        )
        with self._tx() as cur:
            cur.execute(sql, (day_start, min(day_start, month_start)))
            return {k: (float(d), float(m)) for k, d, m in cur.fetchall()}

    # -- egress audit -----------------------------------------------------------------------

    def insert_egress(self, records: Sequence[EgressRecord]) -> None:
        """Append to the audit chain; a record_id already stored is skipped (a replay)."""
        self.write_batch((), records, len(records))

    def egress_report(self, since: float | None, until: float | None) -> EgressReport:
        with self._tx() as cur:
            return audit_store.report(cur, since, until)

    def verify_egress(self) -> EgressVerification:
        with self._tx() as cur:
            return audit_store.verify(cur, self.dialect)

    @contextlib.contextmanager
    def _audit_tx(self) -> Iterator[Any]:
        try:
            with self._tx() as cur:
                yield cur
        except audit_store.ChainHeadMissing as err:
            raise StoreUnavailable(str(err)) from None

    # -- keys -------------------------------------------------------------------------------

    def insert_key(self, key: ApiKey, key_hash: str) -> None:
        errors = _db_errors()
        try:
            with self._tx() as cur:
                cur.execute(
                    f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES ({', '.join('?' * 16)})",
                    _key_row(key, key_hash),
                )
        except errors.integrity:
            raise DuplicateKeyName(key.name) from None

    def update_key(self, key: ApiKey) -> None:
        errors = _db_errors()
        try:
            with self._tx() as cur:
                fields = dict(zip(_KEY_COLUMNS.split(", "), _key_row(key, ""), strict=True))
                sets = ", ".join(f"{column} = ?" for column in _UPDATABLE)
                cur.execute(
                    f"UPDATE api_keys SET {sets} WHERE id = ?",
                    (*(fields[column] for column in _UPDATABLE), key.id),
                )
        except errors.integrity:
            raise DuplicateKeyName(key.name) from None

    def keys(self) -> list[tuple[str, ApiKey]]:
        """Every key with its hash, oldest first."""
        with self._tx() as cur:
            cur.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id")
            rows = cur.fetchall()
        return [(row[2], _key_of(row)) for row in rows]


def _key_row(key: ApiKey, key_hash: str) -> tuple[Any, ...]:
    return (
        key.id,
        key.name,
        key_hash,
        key.prefix,
        orjson.dumps(key.allowed_models).decode(),
        key.onprem_only,
        key.latency_budget_ms,
        key.rpm,
        key.tpm,
        key.budget_day_usd,
        key.budget_month_usd,
        orjson.dumps(key.tags).decode(),
        key.log_prompts,
        key.created_at,
        key.updated_at,
        key.revoked_at,
    )


def _key_of(row: Sequence[Any]) -> ApiKey:
    return ApiKey(
        id=row[0],
        name=row[1],
        prefix=row[3],
        allowed_models=orjson.loads(row[4]),
        onprem_only=bool(row[5]),
        latency_budget_ms=row[6],
        rpm=row[7],
        tpm=row[8],
        budget_day_usd=row[9],
        budget_month_usd=row[10],
        tags=orjson.loads(row[11]),
        log_prompts=bool(row[12]),
        created_at=row[13],
        updated_at=row[14],
        revoked_at=row[15],
    )


class _PgCursor:
    """psycopg with the `?` placeholders the shared SQL uses."""

    def __init__(self, cur: Any) -> None:
        self._cur = cur

    def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        self._cur.execute(sql.replace("?", "%s"), args)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._cur.executemany(sql.replace("?", "%s"), rows)

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall()


@dataclass(frozen=True)
class _Errors:
    integrity: tuple[type[BaseException], ...]
    fault: tuple[type[BaseException], ...]


def _db_errors() -> _Errors:
    import psycopg

    return _Errors(
        integrity=(sqlite3.IntegrityError, psycopg.IntegrityError),
        fault=(sqlite3.Error, psycopg.Error, OSError),
    )


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
