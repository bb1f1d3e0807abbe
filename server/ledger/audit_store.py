"""The egress audit's SQL: append to the hash chain, report, verify.

Each function runs inside the caller's transaction (`Store._tx`), on SQLite or PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from spillgate.server.ledger.egress import (
    STORED_COLUMNS,
    EgressRecord,
    EgressReport,
    EgressVerification,
    chain_hash,
    check_chain,
    summarize,
)

_COLUMNS = (*STORED_COLUMNS, "prev_hash", "row_hash")
_INSERT = (
    f"INSERT INTO egress_audit ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"
)


class ChainHeadMissing(Exception):
    pass


_NO_HEAD = (
    "the egress audit's chain head (table egress_chain_head) has no row: it was deleted "
    "outside the gateway; restore it from a backup"
)
_PAGE = 5000
_IN_CHUNK = 500


def insert(cur: Any, dialect: str, records: Sequence[EgressRecord]) -> int:
    """Append the records not stored yet to the chain; return how many were new.

    Serialised across replicas by the chain head. SQLite: the caller's BEGIN IMMEDIATE
    already holds the database's write lock. PostgreSQL: `SELECT ... FOR UPDATE` on the
    one-row head, rather than a table lock, because it blocks only other appenders (never a
    report or a verification reading the table) and the head is needed anyway to show a
    deleted newest row. A replica waiting on the lock re-reads the head once it has it.
    """
    if not records:
        return 0
    lock = " FOR UPDATE" if dialect == "postgresql" else ""
    cur.execute(f"SELECT seq, row_hash FROM egress_chain_head WHERE id = 1{lock}")
    found = cur.fetchone()
    if found is None:  # records wait in the spool until an operator restores the head
        raise ChainHeadMissing(_NO_HEAD)
    seq, head = int(found[0]), found[1]
    # A replayed spool line is stored already: it neither makes a row nor moves the chain.
    seen = _stored_ids(cur, list(dict.fromkeys(r.record_id for r in records)))
    rows = []
    for rec in records:
        if rec.record_id in seen:
            continue
        seen.add(rec.record_id)
        seq += 1
        values = rec.stored(seq)
        row_hash = chain_hash(head, values)
        rows.append((*values, head, row_hash))
        head = row_hash
    if rows:
        cur.executemany(_INSERT, rows)
        cur.execute("UPDATE egress_chain_head SET seq = ?, row_hash = ? WHERE id = 1", (seq, head))
    return len(rows)


def _stored_ids(cur: Any, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(ids), _IN_CHUNK):
        chunk = ids[i : i + _IN_CHUNK]
        marks = ", ".join("?" for _ in chunk)
        cur.execute(f"SELECT record_id FROM egress_audit WHERE record_id IN ({marks})", chunk)
        found.update(r[0] for r in cur.fetchall())
    return found


def report(cur: Any, since: float | None, until: float | None) -> EgressReport:
    where, args = [], []
    if since is not None:
        where.append("ts >= ?")
        args.append(since)
    if until is not None:
        where.append("ts < ?")
        args.append(until)
    groups = "target, provider_kind, verdict, detector_version, findings, onprem_marked"
    cur.execute(
        f"SELECT {groups}, COUNT(*), SUM(body_bytes) FROM egress_audit "
        + (f"WHERE {' AND '.join(where)} " if where else "")
        + f"GROUP BY {groups}",
        args,
    )
    return summarize(cur.fetchall(), since, until)


def verify(cur: Any, dialect: str) -> EgressVerification:
    """Check the whole chain against the head, in one consistent view of the database."""
    if dialect == "postgresql":
        # Pages are read by several statements: one snapshot keeps the head and the rows
        # from different moments (another replica appending) from looking like tampering.
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    cur.execute("SELECT seq, row_hash FROM egress_chain_head WHERE id = 1")
    head = cur.fetchone()
    if head is None:
        return EgressVerification(False, 0, 0, "", 1, "head_mismatch", _NO_HEAD)
    return check_chain(int(head[0]), head[1], _rows(cur))


def _rows(cur: Any) -> Iterator[Sequence[Any]]:
    """Every row in seq order, a page at a time (the table can be large)."""
    after = -1
    while True:
        cur.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM egress_audit WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, _PAGE),
        )
        page = cur.fetchall()
        yield from page
        if len(page) < _PAGE:
            return
        after = int(page[-1][0])
