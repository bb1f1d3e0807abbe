"""A usage record's spool line reads back as its database row, its fields in COLUMNS order,
and a line written before a field existed reads with that field's default."""

from __future__ import annotations

import orjson
import pytest

from spillgate.server.ledger.record import COLUMNS, UsageRecord, row_of


def _record() -> UsageRecord:
    return UsageRecord(
        *("rec-1", "req-1", 1_760_000_000.5, None, "chat/completions", "m", "local"),
        *("local", "local", 12, 34, 5, 0.25, 3.5, 40.0, 200, True, False),
    )


def test_the_spool_line_reads_back_as_every_field_in_column_order() -> None:
    record = _record()
    line = record.to_line()
    assert line.endswith(b"\n")
    row = row_of(orjson.loads(line))
    assert row == tuple(getattr(record, name) for name in COLUMNS)
    assert len(row) == len(COLUMNS) == 18
    assert row[0] == "rec-1" and row[-1] is False


def test_an_older_line_gets_the_defaults_and_a_line_without_an_id_is_refused() -> None:
    data = orjson.loads(_record().to_line())
    del data["cached_tokens"], data["complete"]
    row = dict(zip(COLUMNS, row_of(data), strict=True))
    assert row["cached_tokens"] == 0 and row["complete"] is True
    del data["record_id"]
    with pytest.raises(KeyError):
        row_of(data)
