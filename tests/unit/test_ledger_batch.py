"""The ledger's writer: a stream's opening record and its final one read in one batch make
one database write, with the final values; split over two batches, the opening record is
stored and then replaced. Either way the counts follow the spool's lines."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spillgate.server.ledger.record import UsageRecord
from spillgate.server.ledger.store import Store
from spillgate.server.ledger.writer import Ledger
from spillgate.server.observe import Metrics


def stream_record(record_id: str, complete: bool) -> UsageRecord:
    return UsageRecord(
        record_id, "req-" + record_id, 1_760_000_000.0, None, "chat/completions", "m",
        "local", "local", "local", prompt_tokens=12 if complete else 0,
        completion_tokens=34 if complete else 0, total_ms=50.0 if complete else None,
        status=200, streamed=True, complete=complete,
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    store.open()
    yield store
    store.close()


def stored(tmp_path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(tmp_path / "ledger.sqlite3") as conn:
        return conn.execute(
            "SELECT record_id, prompt_tokens, completion_tokens, total_ms, complete "
            "FROM usage_records ORDER BY record_id"
        ).fetchall()


async def drained(
    store: Store, tmp_path: Path, records: list[UsageRecord], batch_size: int
) -> tuple[Ledger, list[list[tuple[Any, ...]]]]:
    """Write `records` through a ledger; return it and the usage rows of each batch."""
    batches: list[list[tuple[Any, ...]]] = []
    write_batch = store.write_batch

    def spy(usage: Any, egress: Any, records: int) -> None:
        batches.append(list(usage))
        write_batch(usage, egress, records)

    store.write_batch = spy
    ledger = Ledger(store, tmp_path / "spool", Metrics(), 0.01, batch_size)
    for record in records:
        ledger.record(record)
    ledger.start()
    for _ in range(500):
        if ledger.backlog == 0:
            break
        await asyncio.sleep(0.01)
    await ledger.stop()
    return ledger, batches


async def test_an_opening_and_a_final_record_in_one_batch_make_one_write(
    store: Store, tmp_path: Path
) -> None:
    records = [stream_record("a", False), stream_record("b", False), stream_record("a", True)]
    ledger, batches = await drained(store, tmp_path, records, batch_size=500)
    assert [[(row[0], row[-1]) for row in rows] for rows in batches] == [
        [("a", True), ("b", False)]
    ]
    assert stored(tmp_path) == [("a", 12, 34, 50.0, 1), ("b", 0, 0, None, 0)]
    assert ledger.committed == 3 and store.rows_written == 3, "every spool line counts"


async def test_an_opening_record_whose_final_comes_later_is_stored_then_replaced(
    store: Store, tmp_path: Path
) -> None:
    records = [stream_record("a", False), stream_record("a", True)]
    ledger, batches = await drained(store, tmp_path, records, batch_size=1)
    assert [[(row[0], row[-1]) for row in rows] for rows in batches] == [
        [("a", False)],
        [("a", True)],
    ]
    assert stored(tmp_path) == [("a", 12, 34, 50.0, 1)]
    assert ledger.committed == 2 and store.rows_written == 2


async def test_an_idle_writer_leaves_the_store_and_the_spool_alone(
    store: Store, tmp_path: Path
) -> None:
    calls: list[str] = []
    run = store.run

    async def spy(fn: Any, *args: Any) -> Any:
        calls.append(getattr(fn, "__name__", "?"))
        return await run(fn, *args)

    store.run = spy
    ledger = Ledger(store, tmp_path / "spool", Metrics(), 0.01, 500)
    ledger.start()
    await asyncio.sleep(0.2)  # about twenty flush intervals with nothing written
    assert calls == []
    ledger.record(stream_record("a", True))
    for _ in range(500):
        if ledger.backlog == 0:
            break
        await asyncio.sleep(0.01)
    await ledger.stop()
    assert calls == ["_read", "_write", "_read"] and stored(tmp_path) == [("a", 12, 34, 50.0, 1)]
