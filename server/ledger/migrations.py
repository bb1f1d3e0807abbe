"""Versioned schema migrations for the ledger database, SQLite and PostgreSQL alike.

Why not Alembic: the schema is two tables, and Alembic would bring SQLAlchemy into the
gateway's runtime for them. Instead each migration is a numbered list of SQL statements
(written once, portable to both databases), applied in order inside one transaction and
recorded in `spillgate_schema`. On PostgreSQL an advisory lock makes replicas that start
together apply each migration once. A database newer than this code is refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "api keys and usage records",
        (
            """CREATE TABLE api_keys (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                key_hash TEXT NOT NULL UNIQUE,
                key_prefix TEXT NOT NULL,
                allowed_models TEXT NOT NULL,
                onprem_only BOOLEAN NOT NULL,
                latency_budget_ms INTEGER,
                rpm INTEGER,
                tpm INTEGER,
                budget_day_usd DOUBLE PRECISION,
                budget_month_usd DOUBLE PRECISION,
                tags TEXT NOT NULL,
                log_prompts BOOLEAN NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                revoked_at DOUBLE PRECISION
            )""",
            # A name is unique among live keys; a revoked key's name may be used again.
            "CREATE UNIQUE INDEX api_keys_live_name ON api_keys (name) WHERE revoked_at IS NULL",
            """CREATE TABLE usage_records (
                record_id TEXT PRIMARY KEY,
                request_id TEXT NOT NULL,
                ts DOUBLE PRECISION NOT NULL,
                key_id TEXT,
                endpoint TEXT NOT NULL,
                model TEXT NOT NULL,
                target TEXT NOT NULL,
                target_kind TEXT NOT NULL,
                reason TEXT NOT NULL,
                prompt_tokens INTEGER NOT NULL,
                completion_tokens INTEGER NOT NULL,
                cached_tokens INTEGER NOT NULL,
                cost_usd DOUBLE PRECISION NOT NULL,
                ttft_ms DOUBLE PRECISION,
                total_ms DOUBLE PRECISION,
                status INTEGER NOT NULL,
                streamed BOOLEAN NOT NULL,
                complete BOOLEAN NOT NULL
            )""",
            "CREATE INDEX usage_records_ts ON usage_records (ts)",
            "CREATE INDEX usage_records_key_ts ON usage_records (key_id, ts)",
        ),
    ),
)

LATEST = MIGRATIONS[-1].version
_PG_LOCK_ID = 0x5B111647  # any constant shared by every replica


class SchemaTooNew(Exception):
    pass


def migrate(cur: Any, dialect: str) -> list[int]:
    """Bring the schema to LATEST inside the caller's transaction; return versions applied."""
    if dialect == "postgresql":
        cur.execute(f"SELECT pg_advisory_xact_lock({_PG_LOCK_ID})")
    cur.execute(
        "CREATE TABLE IF NOT EXISTS spillgate_schema ("
        " version INTEGER PRIMARY KEY, description TEXT NOT NULL,"
        " applied_at DOUBLE PRECISION NOT NULL)"
    )
    cur.execute("SELECT COALESCE(MAX(version), 0) FROM spillgate_schema")
    current = int(cur.fetchone()[0])
    if current > LATEST:
        raise SchemaTooNew(
            f"the ledger database is at schema version {current}, newer than this "
            f"spillgate knows ({LATEST}); upgrade spillgate or point ledger.url elsewhere"
        )
    applied = []
    for migration in MIGRATIONS:
        if migration.version <= current:
            continue
        for statement in migration.statements:
            cur.execute(statement)
        cur.execute(
            "INSERT INTO spillgate_schema VALUES (?, ?, ?)",
            (migration.version, migration.description, time.time()),
        )
        applied.append(migration.version)
    return applied
