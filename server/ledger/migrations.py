"""Versioned schema migrations for the ledger database, SQLite and PostgreSQL alike.

Why not Alembic: the schema is a few tables, and Alembic would bring SQLAlchemy into the
gateway's runtime for them. Instead each migration is a numbered list of SQL statements
(written once, portable to both databases), applied in order inside one transaction and
recorded in `spillgate_schema`. On PostgreSQL an advisory lock makes replicas that start
together apply each migration once. A database newer than this code is refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from spillgate.server.ledger.egress import GENESIS


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
    Migration(
        2,
        "egress audit hash chain",
        (
            # `seq` is the chain order; each row_hash covers prev_hash and every column
            # before it (spillgate.server.ledger.egress.chain_hash).
            """CREATE TABLE egress_audit (
                seq BIGINT PRIMARY KEY,
                record_id TEXT NOT NULL UNIQUE,
                request_id TEXT NOT NULL,
                ts DOUBLE PRECISION NOT NULL,
                key_id TEXT,
                model TEXT NOT NULL,
                target TEXT NOT NULL,
                provider_kind TEXT NOT NULL,
                verdict TEXT NOT NULL,
                detector_version TEXT NOT NULL,
                findings TEXT NOT NULL,
                body_sha256 TEXT NOT NULL,
                body_bytes BIGINT NOT NULL,
                onprem_marked BOOLEAN NOT NULL,
                prev_hash TEXT NOT NULL,
                row_hash TEXT NOT NULL
            )""",
            "CREATE INDEX egress_audit_ts ON egress_audit (ts)",
            # One row: the newest seq and row_hash. Appenders lock it (serialising replicas)
            # and verification compares it with the last row (a deleted newest row shows).
            """CREATE TABLE egress_chain_head (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                seq BIGINT NOT NULL,
                row_hash TEXT NOT NULL
            )""",
            f"INSERT INTO egress_chain_head VALUES (1, 0, '{GENESIS}')",
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
