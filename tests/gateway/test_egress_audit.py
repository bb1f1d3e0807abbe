"""The egress audit: records written ahead through the ledger reach the hash-chained
`egress_audit` table on SQLite and PostgreSQL, once each; the report counts them; `verify`
finds an edited, deleted or re-numbered row; the admin API and the CLI show both."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from harness import GatewayProcess, standin_engine_config
from services import (
    ADMIN,
    ADMIN_TOKEN,
    PG_DB,
    PG_HOST,
    PG_PORT,
    TcpProxy,
    pg_rows,
    pg_schema,
    pg_url,
    pg_user,
    sqlite_rows,
)

from spillgate.server.cli_admin import format_egress_report, format_verification
from spillgate.server.ledger.egress import (
    GENESIS,
    STORED_COLUMNS,
    EgressRecord,
    EgressReport,
    chain_hash,
    findings_text,
    summarize,
)
from spillgate.server.ledger.record import UsageRecord
from spillgate.server.ledger.store import Store
from spillgate.server.ledger.writer import Ledger
from spillgate.server.observe import Metrics

__all__ = ["pg_schema"]  # a fixture

T0 = 1_750_000_000.0  # 2025-06-15T15:06:40Z


def egress(n: int, **fields: Any) -> EgressRecord:
    body = f'{{"model": "gpt-4o-mini", "n": {n}}}'.encode()
    values: dict[str, Any] = {
        "record_id": uuid.uuid4().hex,
        "request_id": f"req-{n}",
        "ts": T0 + n,
        "key_id": "key-a",
        "model": "gpt-4o-mini",
        "target": "oai/gpt-4o-mini",
        "provider_kind": "openai",
        "verdict": "clean",
        "detector_version": "builtin-3",
        "findings": {},
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "body_bytes": len(body),
        "onprem_marked": False,
    }
    return EgressRecord(**{**values, **fields})


def usage(n: int) -> UsageRecord:
    return UsageRecord(
        record_id=uuid.uuid4().hex,
        request_id=f"req-{n}",
        ts=T0 + n,
        key_id="key-a",
        endpoint="chat/completions",
        model="gpt-4o-mini",
        target="oai/gpt-4o-mini",
        target_kind="cloud",
        reason="spill_queue",
        prompt_tokens=10 + n,
    )


def mixed() -> list[EgressRecord]:
    """Five bodies: two providers, both verdicts, two detector versions, three finding kinds."""
    return [
        egress(0),
        egress(1, verdict="redacted", findings={"phone": 1, "email": 2}),
        egress(2, target="claude/claude-3-5-haiku", provider_kind="anthropic", key_id=None),
        egress(3, verdict="redacted", findings={"email": 1, "iban": 1}, detector_version="b-4"),
        egress(4, target="claude/claude-3-5-haiku", provider_kind="anthropic"),
    ]


@dataclass
class Db:
    url: str
    rows: Callable[[str], list[tuple[Any, ...]]]
    execute: Callable[[str], None]


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Db:
    if request.param == "sqlite":

        def sqlite_execute(sql: str) -> None:
            with contextlib.closing(sqlite3.connect(tmp_path / "ledger.sqlite3")) as c, c:
                c.execute(sql)

        return Db(
            f"sqlite:///{tmp_path / 'ledger.sqlite3'}",
            lambda sql: sqlite_rows(tmp_path, sql),
            sqlite_execute,
        )
    schema = request.getfixturevalue("pg_schema")

    def pg_execute(sql: str) -> None:
        with psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=PG_DB, user=pg_user()) as c:
            c.execute(f"SET search_path TO {schema}")
            c.execute(sql)

    return Db(pg_url(schema), lambda sql: pg_rows(schema, sql), pg_execute)


@pytest.fixture
def store(db: Db) -> Iterator[Store]:
    s = Store(db.url)
    s.open()
    yield s
    s.close()


async def until(predicate: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{what} not met in {timeout_s}s")


# -- written through the ledger -------------------------------------------------------------


async def test_records_written_through_the_ledger_reach_the_table_and_the_report(
    db: Db, store: Store, tmp_path: Path
) -> None:
    ledger = Ledger(store, tmp_path / "spool", Metrics(), flush_interval_s=0.02)
    ledger.start()
    records = mixed()
    for n, rec in enumerate(records):
        ledger.record(usage(n))  # usage and egress lines interleave in one spool
        ledger.record_egress(rec)
    await until(lambda: ledger.backlog == 0, "backlog written")
    await ledger.stop()

    rows = db.rows(
        "SELECT seq, record_id, target, verdict, findings FROM egress_audit ORDER BY seq"
    )
    assert [(seq, rid) for seq, rid, *_ in rows] == [
        (n + 1, r.record_id) for n, r in enumerate(records)
    ]
    assert rows[1][2:] == ("oai/gpt-4o-mini", "redacted", '{"email":2,"phone":1}')
    assert db.rows("SELECT prompt_tokens FROM usage_records ORDER BY prompt_tokens") == [
        (10 + n,) for n in range(5)
    ]
    # The budgets compare this with the spool's sequence numbers: both count every line.
    assert store.rows_written == 10 and ledger.committed_this_run == 10

    report = store.egress_report(None, None)
    assert report.requests == 5
    assert report.by_target == {"oai/gpt-4o-mini": 3, "claude/claude-3-5-haiku": 2}
    assert report.by_provider_kind == {"openai": 3, "anthropic": 2}
    assert report.by_verdict == {"clean": 3, "redacted": 2}
    assert report.detector_versions == {"builtin-3": 4, "b-4": 1}
    assert report.findings == {"email": 3, "iban": 1, "phone": 1}
    assert report.onprem_marked == 0
    assert report.body_bytes == sum(r.body_bytes for r in records)

    # [T0+1, T0+3): records 1 and 2 only.
    window = store.egress_report(T0 + 1, T0 + 3)
    assert (window.requests, window.by_verdict) == (2, {"clean": 1, "redacted": 1})
    assert window.findings == {"email": 2, "phone": 1}
    assert store.verify_egress().ok


async def test_a_replayed_spool_makes_no_second_row_and_keeps_the_chain(
    db: Db, store: Store, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    records = mixed()
    ledger = Ledger(store, spool, Metrics(), flush_interval_s=0.02)
    ledger.start()
    for rec in records[:3]:
        ledger.record_egress(rec)
    await until(lambda: ledger.backlog == 0, "backlog written")
    # As if killed after the commit but before the segment was released: it is read again.
    kept = tmp_path / "kept"
    shutil.copytree(spool, kept, ignore=shutil.ignore_patterns("spool.lock"))
    await ledger.stop()
    for segment in kept.iterdir():
        shutil.copy(segment, spool / segment.name)

    again = Ledger(store, spool, Metrics(), flush_interval_s=0.02)
    assert again.spool.recovered_records == 3
    again.start()
    for rec in records[3:]:
        again.record_egress(rec)
    await until(lambda: again.backlog == 0, "replay and new records written")
    await again.stop()
    store.insert_egress([records[1], records[4], records[4]])  # a batch with repeats, too

    rows = db.rows("SELECT seq, record_id FROM egress_audit ORDER BY seq")
    assert rows == [(n + 1, r.record_id) for n, r in enumerate(records)]
    verification = store.verify_egress()
    assert (verification.ok, verification.rows_checked, verification.head_seq) == (True, 5, 5)
    assert store.egress_report(None, None).requests == 5


async def test_an_egress_line_the_table_cannot_hold_is_skipped_not_blocking(
    db: Db, store: Store, tmp_path: Path
) -> None:
    ledger = Ledger(store, tmp_path / "spool", Metrics(), flush_interval_s=0.02)
    ledger.start()
    bad = egress(0, findings={"email": "many"})
    ledger.record_egress(bad)  # it serialises, but a count that is not a number cannot be stored
    good = egress(1)
    ledger.record_egress(good)
    ledger.record(usage(1))
    await until(lambda: ledger.backlog == 0, "the batch written around the bad line")
    await ledger.stop()
    assert db.rows("SELECT seq, record_id FROM egress_audit") == [(1, good.record_id)]
    assert db.rows("SELECT COUNT(*) FROM usage_records") == [(1,)]


async def test_the_spool_keeps_egress_records_across_a_stop_with_the_database_down(
    tmp_path: Path, pg_schema: str
) -> None:
    proxy = TcpProxy(PG_PORT).start()
    spool = tmp_path / "spool"
    records = mixed()
    try:
        store = Store(pg_url(pg_schema, port=proxy.port), connect_timeout_s=1)
        store.open()
        ledger = Ledger(store, spool, Metrics(), flush_interval_s=0.02)
        ledger.start()
        ledger.record_egress(records[0])
        await until(lambda: ledger.backlog == 0, "first record written")
        proxy.cut()
        for rec in records[1:]:
            ledger.record_egress(rec)
        await until(lambda: not ledger.db_up, "the writer finds the database down")
        await ledger.stop()  # cannot commit: the four stay in the spool
        store.close()
        assert pg_rows(pg_schema, "SELECT COUNT(*) FROM egress_audit") == [(1,)]

        proxy.restore()
        store = Store(pg_url(pg_schema, port=proxy.port), connect_timeout_s=1)
        store.open()
        restarted = Ledger(store, spool, Metrics(), flush_interval_s=0.02)
        # The whole segment is read again, the committed first line too: stored once.
        assert restarted.spool.recovered_records == 5
        restarted.start()
        await until(lambda: restarted.backlog == 0, "the spool replayed")
        await restarted.stop()
        assert store.verify_egress().ok
        store.close()
    finally:
        proxy.cut()
    rows = pg_rows(pg_schema, "SELECT seq, record_id FROM egress_audit ORDER BY seq")
    assert rows == [(n + 1, r.record_id) for n, r in enumerate(records)]


# -- the chain ------------------------------------------------------------------------------


def test_the_row_hash_covers_every_stored_field() -> None:
    values = egress(1, findings={"email": 1}).stored(1)
    original = chain_hash(GENESIS, values)
    for i, column in enumerate(STORED_COLUMNS):
        changed = list(values)
        changed[i] = not changed[i] if isinstance(changed[i], bool) else f"{changed[i]}x"
        assert chain_hash(GENESIS, changed) != original, column
    assert chain_hash("f" * 64, values) != original  # and the link to the row before


def test_verify_holds_on_an_intact_chain_across_batches(store: Store) -> None:
    assert store.verify_egress().ok  # empty: the head is the genesis
    records = mixed()
    store.insert_egress(records[:2])
    store.insert_egress(records[2:])
    result = store.verify_egress()
    assert (result.ok, result.rows_checked, result.head_seq) == (True, 5, 5)
    assert result.first_broken_seq is None and result.problem is None


def test_replicas_appending_at_once_make_one_unbroken_chain(db: Db, store: Store) -> None:
    """Two stores on one database, as two gateway replicas: the head lock orders them."""
    other = Store(db.url)
    other.open()
    batches = [[egress(n * 10 + i) for i in range(5)] for n in range(20)]

    def append(s: Store, mine: list[list[EgressRecord]]) -> None:
        for batch in mine:
            s.insert_egress(batch)

    try:
        threads = [
            threading.Thread(target=append, args=(s, batches[i::2]))
            for i, s in enumerate((store, other))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        other.close()
    assert db.rows("SELECT COUNT(*), MIN(seq), MAX(seq) FROM egress_audit") == [(100, 1, 100)]
    result = store.verify_egress()
    assert (result.ok, result.rows_checked, result.head_seq) == (True, 100, 100)


TAMPERING = {
    "edited findings": (
        ["UPDATE egress_audit SET findings = '{}' WHERE seq = 2"],
        2,
        "edited",
    ),
    "edited target": (
        ["UPDATE egress_audit SET target = 'local/llama' WHERE seq = 4"],
        4,
        "edited",
    ),
    "deleted middle row": (["DELETE FROM egress_audit WHERE seq = 3"], 3, "deleted"),
    "deleted last row": (["DELETE FROM egress_audit WHERE seq = 5"], 5, "deleted"),
    "deleted and re-numbered": (
        [
            "DELETE FROM egress_audit WHERE seq = 3",
            "UPDATE egress_audit SET seq = seq - 1 WHERE seq = 4",
            "UPDATE egress_audit SET seq = seq - 1 WHERE seq = 5",
            "UPDATE egress_chain_head SET seq = 4",
        ],
        3,
        "relinked",
    ),
}


@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_verify_names_the_first_broken_seq(db: Db, store: Store, tampering: str) -> None:
    store.insert_egress(mixed())
    statements, seq, problem = TAMPERING[tampering]
    for sql in statements:
        db.execute(sql)
    result = store.verify_egress()
    assert not result.ok
    assert (result.first_broken_seq, result.problem) == (seq, problem), result.detail
    assert result.rows_checked == seq - 1
    assert result.detail and f"seq {seq}" in result.detail


def test_verify_finds_a_well_forged_row_the_chain_head_does_not_know(db: Db, store: Store) -> None:
    store.insert_egress(mixed())
    (last_hash,) = db.rows("SELECT row_hash FROM egress_audit WHERE seq = 5")[0]
    values = egress(6, record_id="forged").stored(6)
    literals = ", ".join(_literal(v) for v in values)
    row_hash = chain_hash(last_hash, values)  # linked and hashed as the gateway would
    db.execute(f"INSERT INTO egress_audit VALUES ({literals}, '{last_hash}', '{row_hash}')")
    result = store.verify_egress()
    assert (result.ok, result.first_broken_seq, result.problem) == (False, 6, "head_mismatch")
    assert result.rows_checked == 5 and result.head_seq == 5


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return repr(value) if isinstance(value, int | float) else f"'{value}'"


# -- the admin API and the CLI --------------------------------------------------------------


_CONNECT = ("--admin-token", ADMIN_TOKEN, "--url")


def _cli(gateway: GatewayProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spillgate.server.cli", "audit", *args, *_CONNECT, gateway.url],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_admin_api_and_cli_report_and_verify_a_prefilled_ledger(tmp_path: Path) -> None:
    home = tmp_path / "home"
    prefill = Store.for_home(None, home, 5.0)
    prefill.open()
    records = mixed()
    breach = egress(100, onprem_marked=True, target="oai/gpt-4o", findings={"email": 1})
    prefill.insert_egress([*records, breach])
    prefill.close()
    config = {
        "engines": [standin_engine_config("standin", ["standin-model"])],
        "auth": {"enabled": True},
        "admin": {"token": ADMIN_TOKEN},
        "home": str(home),
    }
    with GatewayProcess(config, tmp_path) as gateway:
        for path in ("/admin/audit/egress", "/admin/audit/verify"):
            refused = httpx.get(f"{gateway.url}{path}")
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "invalid_admin_token"
            wrong = httpx.get(f"{gateway.url}{path}", headers={"authorization": "Bearer nope"})
            assert wrong.status_code == 401

        everything = httpx.get(f"{gateway.url}/admin/audit/egress", headers=ADMIN)
        assert everything.status_code == 200, everything.text
        report = everything.json()
        assert (report["requests"], report["onprem_marked"]) == (6, 1)
        assert report["by_target"]["oai/gpt-4o"] == 1
        assert report["findings"] == {"email": 4, "iban": 1, "phone": 1}

        # Until the breach: the five ordinary bodies; dates and epoch seconds both parse.
        window = {"since": "2025-06-15", "until": str(T0 + 50)}
        part = httpx.get(f"{gateway.url}/admin/audit/egress", params=window, headers=ADMIN)
        assert part.status_code == 200, part.text
        assert (part.json()["requests"], part.json()["onprem_marked"]) == (5, 0)
        assert part.json()["since"] == 1_749_945_600.0  # 2025-06-15T00:00:00Z

        for params, param in (
            ({"since": "yesterday"}, "since"),
            ({"since": str(T0), "until": str(T0 - 1)}, "until"),
            ({"target": "oai/gpt-4o"}, None),
        ):
            bad = httpx.get(f"{gateway.url}/admin/audit/egress", params=params, headers=ADMIN)
            assert bad.status_code == 400, params
            assert bad.json()["error"]["param"] == param

        verified = httpx.get(f"{gateway.url}/admin/audit/verify", headers=ADMIN).json()
        assert (verified["ok"], verified["rows_checked"], verified["head_seq"]) == (True, 6, 6)

        printed = _cli(gateway, "egress", "--until", str(T0 + 50))
        assert printed.returncode == 0, printed.stderr
        assert "requests that left for a cloud provider  5" in printed.stdout
        assert "carrying an on-prem mark                 0" in printed.stdout
        assert "  claude/claude-3-5-haiku  2" in printed.stdout
        assert "  email  3" in printed.stdout

        breached = _cli(gateway, "egress", "--json")
        assert breached.returncode == 1  # an on-prem body left: the auditor's script sees it
        assert json.loads(breached.stdout) == report

        holds = _cli(gateway, "verify")
        assert holds.returncode == 0, holds.stderr
        assert "chain holds: 6 row(s) verified" in holds.stdout

        with contextlib.closing(sqlite3.connect(home / "ledger.sqlite3")) as c, c:
            c.execute("UPDATE egress_audit SET verdict = 'clean' WHERE seq = 2")
        broken = _cli(gateway, "verify")
        assert broken.returncode == 1
        assert "BROKEN at seq 2 (edited)" in broken.stdout
        assert "1 row(s) before it verified" in broken.stdout


def test_the_printed_report_names_what_an_auditor_asks_for() -> None:
    report = dataclasses.replace(_report_of([*mixed(), egress(9, onprem_marked=True)]), since=T0)
    text = format_egress_report(report.to_json())
    assert text.splitlines()[0] == "Egress audit from 2025-06-15 15:06:40 UTC until now"
    assert "requests that left for a cloud provider  6" in text
    assert "carrying an on-prem mark                 1   <- BREACH" in text
    assert "by provider kind:\n  openai     4\n  anthropic  2\n" in text
    assert "scanned by detector version:\n  builtin-3  5\n  b-4        1\n" in text
    assert text.endswith("values are never recorded):\n  email  3\n  iban   1\n  phone  1")

    empty = format_egress_report(_report_of([]).to_json())
    assert "requests that left for a cloud provider  0" in empty
    assert "BREACH" not in empty and "by target:\n  (none)" in empty

    broken = {
        "ok": False,
        "rows_checked": 2,
        "head_seq": 5,
        "head_hash": "ab" * 32,
        "first_broken_seq": 3,
        "problem": "deleted",
        "detail": "seq 3 missing: deleted before seq 4",
    }
    assert format_verification(broken).splitlines()[:2] == [
        "egress audit chain BROKEN at seq 3 (deleted): seq 3 missing: deleted before seq 4",
        "2 row(s) before it verified",
    ]


def _report_of(records: list[EgressRecord]) -> EgressReport:
    """The report the store would give, from the same grouped rows, one group a record."""
    groups = [
        (
            r.target,
            r.provider_kind,
            r.verdict,
            r.detector_version,
            findings_text(r.findings),
            r.onprem_marked,
            1,
            r.body_bytes,
        )
        for r in records
    ]
    return summarize(groups, None, None)
