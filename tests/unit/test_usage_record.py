"""A usage record's database row holds its fields in COLUMNS order, and its spool line
reads back as the same record."""

from __future__ import annotations

import orjson

from spillgate.server.ledger.record import COLUMNS, UsageRecord


def _record() -> UsageRecord:
    return UsageRecord(
        *("rec-1", "req-1", 1_760_000_000.5, None, "chat/completions", "m", "local"),
        *("local", "local", 12, 34, 5, 0.25, 3.5, 40.0, 200, True, False),
    )


def test_the_row_is_every_field_in_column_order() -> None:
    record = _record()
    assert record.row() == tuple(getattr(record, name) for name in COLUMNS)
    assert len(record.row()) == len(COLUMNS) == 18
    assert record.row()[0] == "rec-1" and record.row()[-1] is False


def test_the_spool_line_reads_back_as_the_same_record() -> None:
    record = _record()
    line = record.to_line()
    assert line.endswith(b"\n")
    assert UsageRecord.from_json(orjson.loads(line)) == record
