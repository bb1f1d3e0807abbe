"""The egress audit: one record per request body that left for a cloud provider.

A record says what left (the body's sha256 and size, never the body), where to, what the
privacy scan found and replaced (counts by kind, never values) and by which detector set.
Records are written ahead to the ledger spool like usage records, then appended to the
`egress_audit` table as a hash chain: each row's hash covers the previous row's hash and
every stored field, so an edited, deleted or re-numbered row is found by `check_chain`.

This module is pure (no I/O): the record, the chain hash, the report and the verification
over rows a store reads (`server/ledger/audit_store.py` holds the SQL).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import orjson

#: The `prev_hash` of the first row; also the chain head's hash while the table is empty.
GENESIS = "0" * 64


@dataclass(slots=True)
class EgressRecord:
    #: Unique, one per provider call body that left (uuid4 hex); the idempotency key.
    record_id: str
    request_id: str
    #: Seconds since the epoch, UTC.
    ts: float
    key_id: str | None
    #: The model the client asked for.
    model: str
    #: The cloud target, `provider/model`, e.g. `oai/gpt-4o-mini`.
    target: str
    #: openai, azure, mistral, openai-compatible, anthropic, gemini.
    provider_kind: str
    #: `clean` (nothing found), `redacted` (findings replaced by placeholders), or
    #: `unscanned` (detection off); the report counts whatever the guard says.
    verdict: str
    #: The version of the detector set that scanned the body.
    detector_version: str
    #: Kind -> how many were found (and redacted). Counts only, never the values.
    findings: dict[str, int]
    #: Hex sha256 of the exact outbound body bytes.
    body_sha256: str
    body_bytes: int
    #: True if the request was marked on-prem: such a body must never leave, so a record
    #: with it is a breach the report counts.
    onprem_marked: bool

    def to_line(self) -> bytes:
        """The spool line: an object of its own shape, so it never parses as usage."""
        return b'{"egress":' + orjson.dumps(self) + b"}\n"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EgressRecord:
        rec = cls(**{name: data[name] for name in RECORD_FIELDS})
        rec.stored(0)  # a value the table cannot hold fails here (TypeError, ValueError)
        return rec

    def stored(self, seq: int) -> tuple[Any, ...]:
        """The row's values as the table stores them, in `STORED_COLUMNS` order."""
        return (
            seq,
            self.record_id,
            self.request_id,
            float(self.ts),
            self.key_id,
            self.model,
            self.target,
            self.provider_kind,
            self.verdict,
            self.detector_version,
            findings_text(self.findings),
            self.body_sha256,
            int(self.body_bytes),
            bool(self.onprem_marked),
        )


RECORD_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(EgressRecord))
#: The hashed columns, in the order `row_hash` covers them (`prev_hash`, `row_hash` follow).
STORED_COLUMNS: tuple[str, ...] = ("seq", *RECORD_FIELDS)


def findings_text(findings: dict[str, int]) -> str:
    return orjson.dumps(
        {k: int(v) for k, v in findings.items()}, option=orjson.OPT_SORT_KEYS
    ).decode()


_CASTS: dict[str, Any] = {"seq": int, "ts": float, "body_bytes": int, "onprem_marked": bool}


def normalised(values: Sequence[Any]) -> tuple[Any, ...]:
    """Stored values as read back from either database (SQLite gives 0/1 for booleans)."""
    return tuple(
        _CASTS[column](value) if column in _CASTS else value
        for column, value in zip(STORED_COLUMNS, values, strict=True)
    )


def chain_hash(prev_hash: str, values: Sequence[Any]) -> str:
    """sha256 over the previous row's hash and the canonical JSON of this row's values."""
    return hashlib.sha256(prev_hash.encode() + orjson.dumps(list(values))).hexdigest()


# -- the report -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EgressReport:
    """What left between `since` and `until` (either may be open)."""

    since: float | None
    until: float | None
    #: Request bodies that left for a cloud provider.
    requests: int
    body_bytes: int
    by_target: dict[str, int]
    by_provider_kind: dict[str, int]
    by_verdict: dict[str, int]
    #: Detector set version -> bodies it scanned.
    detector_versions: dict[str, int]
    #: Kind -> findings redacted, summed over every body.
    findings: dict[str, int]
    #: Bodies that left although the request was marked on-prem; anything but 0 is a breach.
    onprem_marked: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize(
    groups: Iterable[Sequence[Any]], since: float | None, until: float | None
) -> EgressReport:
    """The report from grouped rows of (target, provider_kind, verdict, detector_version,
    findings text, onprem_marked, count, body bytes)."""
    requests = size = onprem = 0
    targets: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    verdicts: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    found: Counter[str] = Counter()
    for target, kind, verdict, version, findings, marked, count, nbytes in groups:
        n = int(count)
        requests += n
        size += int(nbytes or 0)
        targets[target] += n
        kinds[kind] += n
        verdicts[verdict] += n
        versions[version] += n
        for what, times in orjson.loads(findings).items():
            found[what] += int(times) * n
        if marked:
            onprem += n
    return EgressReport(
        since=since,
        until=until,
        requests=requests,
        body_bytes=size,
        by_target=_ranked(targets),
        by_provider_kind=_ranked(kinds),
        by_verdict=_ranked(verdicts),
        detector_versions=_ranked(versions),
        findings=_ranked(found),
        onprem_marked=onprem,
    )


def _ranked(counts: Counter[str]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


# -- the verification -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EgressVerification:
    #: True when every row matches its hash, the seqs run 1..head without a gap and each
    #: row links to the one before it, and the last row is the chain head.
    ok: bool
    #: Rows that hold, in seq order, before the first broken one (all of them when ok).
    rows_checked: int
    #: The chain head: the seq and row_hash of the newest row the gateways wrote.
    head_seq: int
    head_hash: str
    #: The first seq where the chain does not hold (for a deletion: the first missing seq).
    first_broken_seq: int | None = None
    #: `edited`, `deleted`, `relinked` or `head_mismatch` (see docs/operations.md).
    problem: str | None = None
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def check_chain(head_seq: int, head_hash: str, rows: Iterable[Sequence[Any]]) -> EgressVerification:
    """Walk `rows` (the STORED_COLUMNS then prev_hash, row_hash, in seq order) and stop at
    the first place the chain does not hold."""
    checked, last_seq, last_hash = 0, 0, GENESIS

    def broken(seq: int, problem: str, detail: str) -> EgressVerification:
        verified = min(checked, seq - 1)  # the rows that hold before the break
        return EgressVerification(False, verified, head_seq, head_hash, seq, problem, detail)

    for row in rows:
        seq, prev_hash, row_hash = int(row[0]), row[-2], row[-1]
        try:
            values = normalised(row[:-2])
        except (TypeError, ValueError):  # SQLite keeps whatever type an UPDATE wrote
            values = ()
        if seq != last_seq + 1:
            return broken(
                last_seq + 1,
                "deleted",
                f"seq {_span(last_seq + 1, seq - 1)} missing: deleted before seq {seq}",
            )
        if prev_hash != last_hash:
            return broken(
                seq,
                "relinked",
                f"seq {seq}'s prev_hash is not the row_hash of seq {seq - 1}: a row was "
                "deleted and the rest re-numbered, or the link was edited",
            )
        if not values or chain_hash(prev_hash, values) != row_hash:
            return broken(
                seq,
                "edited",
                f"seq {seq} (record {row[1]}) does not match its row_hash: "
                "a field was changed after it was written",
            )
        checked += 1
        last_seq, last_hash = seq, row_hash
    if last_seq < head_seq:
        return broken(
            last_seq + 1,
            "deleted",
            f"seq {_span(last_seq + 1, head_seq)} missing: the newest row(s) were deleted "
            f"(the chain head is seq {head_seq})",
        )
    if last_seq != head_seq or last_hash != head_hash:
        return broken(
            head_seq + 1 if last_seq > head_seq else head_seq,
            "head_mismatch",
            f"the rows end at seq {last_seq} with a hash the chain head (seq {head_seq}) "
            "does not have: rows or the head were written outside the gateway",
        )
    return EgressVerification(True, checked, head_seq, head_hash)


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}..{last}"
