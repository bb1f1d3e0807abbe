"""The write-ahead spool: order, rotation, replay after a crash, one owner at a time."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from spillgate.server.ledger.migrations import LATEST
from spillgate.server.ledger.spool import Spool, SpoolLocked
from spillgate.server.ledger.store import Store, StoreUnavailable


def lines(n: int, start: int = 0) -> list[bytes]:
    return [b'{"n": %d, "pad": "%s"}' % (i, b"x" * 40) for i in range(start, start + n)]


def test_reads_every_line_in_order_across_segments(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=500)
    for line in lines(40):
        spool.append(line + b"\n")
    assert spool.active > 3  # it rotated
    got, pos = [], spool.start()
    while True:
        batch, pos = spool.read(pos, 7)
        if not batch:
            break
        got += batch
    assert got == lines(40)
    spool.release(pos)
    assert len(list(tmp_path.glob("segment-*"))) == 1  # only the active one is left
    spool.close(pos)
    assert not list(tmp_path.glob("segment-*"))


def test_a_new_run_replays_what_the_last_one_left(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=300)
    for line in lines(10):
        spool.append(line + b"\n")
    spool.close(None)  # as after a crash: nothing was committed
    again = Spool(tmp_path)
    assert again.recovered_records == 10
    batch, _ = again.read(again.start(), 100)
    assert batch == lines(10)
    again.close(None)


def test_one_spool_one_gateway(tmp_path: Path) -> None:
    first = Spool(tmp_path)
    with pytest.raises(SpoolLocked, match="another gateway is using"):
        Spool(tmp_path)
    first.close(None)
    Spool(tmp_path).close(None)


def test_migrations_run_once_and_refuse_a_newer_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    store = Store(url)
    store.open()
    store.open()  # already at the latest version: nothing to do
    store.close()
    with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:
        versions = db.execute("SELECT version FROM spillgate_schema ORDER BY version")
        assert versions.fetchall() == [(v,) for v in range(1, LATEST + 1)]  # each once
        db.execute("INSERT INTO spillgate_schema VALUES (?, 'future', 0)", (LATEST + 1,))
    newer = Store(url)
    with pytest.raises(StoreUnavailable, match="newer than this spillgate"):
        newer.open()
    newer.close()
