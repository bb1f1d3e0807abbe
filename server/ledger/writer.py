"""The ledger: append to the spool on the request path, batch into the database off it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import orjson

from spillgate.server.ledger.egress import EgressRecord
from spillgate.server.ledger.record import COMPLETE, ID, UsageRecord, row_of
from spillgate.server.ledger.spool import Spool, SpoolPosition
from spillgate.server.ledger.store import Store, StoreUnavailable
from spillgate.server.observe import Metrics

log = logging.getLogger("spillgate.ledger")

_MAX_RETRY_S = 5.0
_STOP_FLUSH_S = 5.0


class Ledger:
    def __init__(
        self,
        store: Store,
        spool_dir: Path,
        metrics: Metrics,
        flush_interval_s: float = 0.2,
        batch_size: int = 500,
    ) -> None:
        self.store = store
        self.spool = Spool(spool_dir)
        self.metrics = metrics
        self.flush_interval_s = flush_interval_s
        self.batch_size = batch_size
        #: Records committed to the database since start, replayed ones included.
        self.committed = 0
        self.db_up = True
        self._pos = self.spool.start()
        self._wake = asyncio.Event()
        #: Set while the spool may hold records the database lacks; an idle writer waits
        #: on it, with no timer running.
        self._pending = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        metrics.ledger_db_up.set(1)
        metrics.ledger_backlog.set_function(lambda: self.backlog)  # read at each scrape

    # -- the request path -------------------------------------------------------------------

    def record(self, rec: UsageRecord) -> int:
        """Write `rec` ahead; return its sequence number in this run (1, 2, ...)."""
        self.spool.append(rec.to_line())
        self._pending.set()
        if self.backlog >= self.batch_size:
            self._wake.set()
        return self.spool.appended

    def record_egress(self, rec: EgressRecord) -> None:
        """Write ahead the audit record of a body that left for a cloud provider.

        Same spool and guarantee as `record`. Its line takes a sequence number like a usage
        line, so the backlog and the budgets' view of the database count the same lines.
        """
        self.spool.append(rec.to_line())
        self._pending.set()
        if self.backlog >= self.batch_size:
            self._wake.set()

    @property
    def backlog(self) -> int:
        """Records in the spool that the database does not have yet."""
        return self.spool.recovered_records + self.spool.appended - self.committed

    @property
    def committed_this_run(self) -> int:
        """How many of this run's records (by sequence number) the database has."""
        return max(0, self.committed - self.spool.recovered_records)

    # -- the writer -------------------------------------------------------------------------

    def start(self) -> None:
        if self.spool.recovered_records:
            self._wake.set()  # an earlier run's records go in first, without waiting
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        retry_s = self.flush_interval_s
        while True:
            if not self.backlog:
                self._pending.clear()
                await self._pending.wait()  # idle: nothing to commit, no timer to wake for
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=retry_s)
            self._wake.clear()
            if await self._drain():
                retry_s = self.flush_interval_s
            else:
                retry_s = min(_MAX_RETRY_S, retry_s * 2)

    async def _drain(self) -> bool:
        """Commit everything the spool holds; False when the database would not take it."""
        if not self.backlog:
            return True  # nothing to read: no thread, no spool
        while True:
            lines, after = await self.store.run(self._read, self._pos)
            if not lines:
                self._advance(after, 0)
                return True
            try:
                await self.store.run(self._write, lines)
            except StoreUnavailable as err:
                self._mark_down(err)
                return False
            self._mark_up()
            self._advance(after, len(lines))

    def _read(self, pos: SpoolPosition) -> tuple[list[bytes], SpoolPosition]:
        self.spool.sync()
        return self.spool.read(pos, self.batch_size)

    def _write(self, lines: list[bytes]) -> None:
        self.store.write_batch(*_parse(lines))  # parsed off the event loop, as it is read

    def _advance(self, pos: SpoolPosition, count: int) -> None:
        self._pos = pos
        self.committed += count
        self.spool.release(pos)

    def _mark_down(self, err: StoreUnavailable) -> None:
        self.metrics.ledger_write_failures.inc()
        if self.db_up:
            self.db_up = False
            self.metrics.ledger_db_up.set(0)
            log.error(
                "ledger database unreachable; records are kept in the spool until it returns",
                extra={"error": str(err), "spool": str(self.spool.folder)},
            )

    def _mark_up(self) -> None:
        if not self.db_up:
            self.db_up = True
            self.metrics.ledger_db_up.set(1)
            log.info(
                "ledger database is back; writing the backlog", extra={"backlog": self.backlog}
            )

    async def stop(self) -> None:
        """Stop the writer, commit what it can in a few seconds, leave the rest in the spool."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        done = False
        with contextlib.suppress(TimeoutError):
            done = await asyncio.wait_for(self._drain(), _STOP_FLUSH_S)
        self.spool.close(self._pos if done and self.backlog == 0 else None)
        if self.backlog:
            log.warning(
                "stopping with ledger records not yet in the database; the next start writes them",
                extra={"backlog": self.backlog, "spool": str(self.spool.folder)},
            )


def _parse(lines: list[bytes]) -> tuple[list[tuple[Any, ...]], list[EgressRecord], int]:
    """The usage rows and egress records of a batch of spool lines, and how many lines were
    records (a torn line is not).

    A stream writes two lines, its opening record and its final one, under one record_id;
    where a batch holds both, only the final row goes to the database: the upsert would
    replace the opening one anyway, so the table ends the same, for half the writes.
    """
    rows: dict[str, tuple[Any, ...]] = {}
    egress: list[EgressRecord] = []
    records = 0
    for line in lines:
        try:
            data = orjson.loads(line)
            if "egress" in data:
                egress.append(EgressRecord.from_json(data["egress"]))
            else:
                row = row_of(data)
                held = rows.get(row[ID])
                # As the upsert: an opening record never replaces its final one.
                if held is None or row[COMPLETE] or not held[COMPLETE]:
                    rows[row[ID]] = row
        except (ValueError, TypeError, KeyError):  # orjson.JSONDecodeError is a ValueError
            # Only a power cut can tear a line; keep going rather than block the ledger.
            log.error("skipping an unreadable ledger spool line", extra={"bytes": len(line)})
            continue
        records += 1
    return list(rows.values()), egress, records
