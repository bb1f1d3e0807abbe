"""The write-ahead spool: answered requests are appended here before the client is answered.

An append is one `write(2)` of one JSON line to an O_APPEND file, so once it returns the
record is in the kernel's page cache and survives the gateway being killed (SIGKILL, OOM).
The writer fsyncs the file every flush interval, which bounds what a power cut can take.
The database learns of records by reading the spool, in order, so the backlog while the
database is down lives on disk, not in memory.

Segments are numbered files; a segment is deleted once every record in it is committed.
A segment left by a killed gateway is read again from its start at the next start-up: the
database upserts by `record_id`, so records committed twice are stored once.
"""

from __future__ import annotations

import fcntl
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("spillgate.ledger")

_SUFFIX = ".jsonl"
_READ_BYTES = 1 << 20


def _segment_name(number: int) -> str:
    return f"segment-{number:08d}{_SUFFIX}"


def _segment_number(path: Path) -> int:
    return int(path.name.removeprefix("segment-").removesuffix(_SUFFIX))


class SpoolLocked(Exception):
    pass


@dataclass(slots=True)
class SpoolPosition:
    """Where the reader is: a segment number and a byte offset in it."""

    segment: int
    offset: int


class Spool:
    def __init__(self, folder: Path, segment_bytes: int = 16 * 1024 * 1024) -> None:
        self.folder = folder
        self.segment_bytes = segment_bytes
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = open(folder / "spool.lock", "w")  # noqa: SIM115 (held until close)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise SpoolLocked(
                f"another gateway is using the ledger spool {folder}; give each gateway "
                "its own `home` or `ledger.spool_dir`"
            ) from None
        existing = sorted(_segment_number(p) for p in folder.glob(f"segment-*{_SUFFIX}"))
        #: Records found in segments left by an earlier run, counted for the backlog gauge.
        self.recovered_records = sum(self._count_lines(n) for n in existing)
        self.active = (existing[-1] + 1) if existing else 1
        self.first = existing[0] if existing else self.active
        self._fd = self._open(self.active)
        self._size = 0
        self.appended = 0
        self._unsynced = False
        if existing:
            log.info(
                "replaying %d ledger record(s) left in the spool by an earlier run",
                self.recovered_records,
                extra={"spool": str(folder)},
            )

    def _path(self, number: int) -> Path:
        return self.folder / _segment_name(number)

    def _open(self, number: int) -> int:
        return os.open(self._path(number), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def _count_lines(self, number: int) -> int:
        with open(self._path(number), "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))

    # -- the hot path -----------------------------------------------------------------------

    def append(self, line: bytes) -> None:
        """Write one record line; after this returns, a killed process still has it."""
        written = os.write(self._fd, line)
        if written != len(line):  # a full disk; the rest would corrupt the line
            raise OSError(f"short write to the ledger spool ({written}/{len(line)} bytes)")
        self._size += written
        self.appended += 1
        self._unsynced = True
        if self._size >= self.segment_bytes:
            self._rotate()

    def _rotate(self) -> None:
        os.fsync(self._fd)
        os.close(self._fd)
        self.active += 1
        self._fd = self._open(self.active)
        self._size = 0

    # -- the writer's side (runs in the ledger's worker thread) -----------------------------

    def sync(self) -> None:
        if self._unsynced:
            self._unsynced = False
            os.fsync(self._fd)

    def start(self) -> SpoolPosition:
        return SpoolPosition(self.first, 0)

    def read(self, pos: SpoolPosition, max_records: int) -> tuple[list[bytes], SpoolPosition]:
        """Up to `max_records` complete lines from `pos`, and the position after them."""
        lines: list[bytes] = []
        segment, offset = pos.segment, pos.offset
        while len(lines) < max_records:
            # Read `active` before the file: a segment closed by then has all its lines.
            closed = segment < self.active
            try:
                with open(self._path(segment), "rb") as f:
                    f.seek(offset)
                    data = f.read(_READ_BYTES)
            except FileNotFoundError:
                data = b""
            whole = data.rfind(b"\n") + 1
            complete = data[:whole].split(b"\n")
            complete.pop()  # the empty piece after the last newline
            take = complete[: max_records - len(lines)]
            lines += take
            offset += whole if len(take) == len(complete) else sum(len(x) + 1 for x in take)
            if len(take) < len(complete) or (take and len(data) == _READ_BYTES):
                continue  # more to read in this segment
            if not closed:
                break
            segment, offset = segment + 1, 0
        return lines, SpoolPosition(segment, offset)

    def release(self, pos: SpoolPosition) -> None:
        """Delete the closed segments wholly before `pos` (their records are committed)."""
        while self.first < pos.segment:
            self._path(self.first).unlink(missing_ok=True)
            self.first += 1

    def close(self, committed: SpoolPosition | None) -> None:
        """Close the active segment; delete it too when the database holds all of it."""
        os.fsync(self._fd)
        os.close(self._fd)
        if committed and committed.segment == self.active and committed.offset >= self._size:
            self._path(self.active).unlink(missing_ok=True)
        self._lock.close()

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.glob(f"segment-*{_SUFFIX}"))
