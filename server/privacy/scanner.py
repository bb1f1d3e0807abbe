"""The scanner: finds personal data and secrets in a request's text, counts them by kind.

`Scanner.scan` is on the hot path of every request a key may spill, so it joins the texts
and runs each detector once over the whole (or over its windows of it, see detectors.py).
`Scanner.redact` needs the places: after one joined scan it reads alone only the strings
that hold a finding; it runs only for requests about to spill under redact-then-spill.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple, Protocol

from spillgate import __version__
from spillgate.server.privacy import payload as payload_texts
from spillgate.server.privacy.detectors import (
    BUILTIN,
    DIGIT_RUN,
    DIGIT_RUN_REACH,
    Around,
    Detector,
)
from spillgate.server.privacy.findings import Findings
from spillgate.server.privacy.gate import Gate
from spillgate.server.privacy.normalise import fold
from spillgate.server.privacy.vault import Vault

# Between joined texts: no detector matches across a NUL.
_JOIN = "\x00\n"
#: A bounded pattern searches a longer text or window in slices of this many characters
#: (plus its reach), so that no single call holds the GIL long (see `_slices`).
_SLICE = 1 << 16


class Span(NamedTuple):
    start: int
    end: int
    kind: str
    #: Lower wins where spans overlap: the detector's place in the list.
    rank: int


class ExtraDetector(Protocol):
    """A further source of spans, such as Presidio; ranked after every built-in."""

    def spans(self, text: str) -> list[Span]: ...


class Scanner:
    def __init__(
        self,
        detectors: Sequence[Detector] = BUILTIN,
        allow: Sequence[str] = (),
        extra: ExtraDetector | None = None,
    ) -> None:
        self._detectors = tuple(detectors)
        # Which detectors may find anything in a text, in one pass for all (gate.py).
        self._gate = Gate(
            [d.gate or (d.scope.gate if d.scope is not None else None) for d in self._detectors]
        )
        # One pattern for the whole allow-list: a finding it matches in full is dropped.
        self._allow = re.compile("|".join(f"(?:{p})" for p in allow)) if allow else None
        self._extra = extra
        #: Names this detector set in the egress audit: the release, and a digest of every
        #: detector's pattern, the allow-list and the extra detector, so a changed
        #: configuration reads as another version.
        self.version = _version(self._detectors, allow, extra)

    def scan(self, value: Any) -> Findings:
        """What the detectors find in every string of `value` (a request body), by kind.

        A value found both in a JSON text and in the string it decodes to counts once.
        """
        plain, decoded = payload_texts.texts(value)
        counts: Counter[str] = Counter()
        seen: set[tuple[str, str]] = set()
        for texts, dedupe in ((plain, False), (decoded, True)):
            if not texts:
                continue
            text = texts[0] if len(texts) == 1 else _JOIN.join(texts)
            for span in self.spans(text):
                key = (span.kind, fold(text[span.start : span.end]).text)
                if dedupe and key in seen:
                    continue
                seen.add(key)
                counts[span.kind] += 1
        return Findings(counts)

    def redact(self, payload: dict[str, Any]) -> tuple[dict[str, Any], Vault]:
        """Replace every finding with a placeholder; the vault maps them back.

        Every string `scan` reads is rewritten, so the redacted copy scans clean: the
        egress guard reads it with the same scanner.
        """
        vault = Vault()
        plain, decoded = payload_texts.texts(payload)
        vault.reserve(itertools.chain(plain, decoded))
        # One joined scan tells which strings hold a finding; only those are read alone.
        hits = self._holding_findings(plain) | self._holding_findings(decoded)

        def replace(text: str, is_json: bool) -> str:
            # JSON text is written anew once what it decodes to is redacted: read it again.
            if text not in hits and not is_json:
                return text
            spans = self.spans(text)
            if not spans:
                return text
            pieces: list[str] = []
            pos = 0
            for span in spans:
                raw = text[span.start : span.end]
                pieces += (text[pos : span.start], vault.placeholder(span.kind, raw, is_json))
                pos = span.end
            pieces.append(text[pos:])
            return "".join(pieces)

        return payload_texts.map_texts(payload, replace), vault

    def _holding_findings(self, texts: list[str]) -> set[str]:
        if not texts:
            return set()
        starts, pos = [], 0
        for text in texts:
            starts.append(pos)
            pos += len(text) + len(_JOIN)
        return {texts[bisect_right(starts, s.start) - 1] for s in self.spans(_JOIN.join(texts))}

    def spans(self, text: str) -> list[Span]:
        """Every finding in `text`, in order, none overlapping, as spans of `text` itself.

        The detectors read the folded text (normalise.py), so a value written with
        no-break spaces, full-width digits or zero-width characters is found as the
        plain value; its span covers the characters that were written.
        """
        folded = fold(text)
        found = self._find(folded.text)
        if not folded.shifted:
            return found
        spans = []
        for span in found:
            start, end = folded.original_span(span.start, span.end)
            spans.append(Span(start, end, span.kind, span.rank))
        return spans

    def _find(self, text: str) -> list[Span]:
        """Every finding in the folded `text`, in order, none overlapping."""
        found: list[Span] = []
        whole = [(0, len(text), len(text))]
        windows: dict[Around, list[tuple[int, int, int]]] = {}
        # A text no longer than a slice has no window longer than one.
        sliced = len(text) > _SLICE
        passes = self._gate.passes(text)
        for rank, det in enumerate(self._detectors):
            if not passes[rank]:
                continue  # its gate is absent: it cannot find anything here
            if det.scope is None:
                regions = whole
            else:
                regions = windows.get(det.scope)  # type: ignore[assignment]
                if regions is None:
                    regions = windows[det.scope] = _windows(text, det.scope)
            if det.find is not None:
                for lo, hi, run in regions:
                    if run >= det.min_run:
                        for start, end in det.find(text, lo, hi):
                            found.append(Span(start, end, det.kind, rank))
                continue
            search = det.pattern.search
            for lo, hi, run in regions:
                if run < det.min_run:
                    continue
                # Each match that starts before `limit` is the one a search up to `hi`
                # finds; from `limit` on, the next slice searches again (`_slices`).
                pos = lo
                limit = stop = hi
                if sliced and hi - lo > _SLICE and det.reach is not None:
                    slices = _slices(lo, hi, det.reach)
                    limit, stop = next(slices)
                while True:
                    while (match := search(text, pos, stop)) is not None and (
                        match.start() < limit
                    ):
                        start, end = match.span(det.group)
                        length = det.check(text[start:end])
                        if length:
                            found.append(Span(start, start + length, det.kind, rank))
                            pos = start + length
                        else:
                            # A rejected candidate may hide a real value inside it: a card
                            # after the digits of a phone number. Look again one further on.
                            pos = match.start() + 1
                    if limit == hi:
                        break
                    pos = max(pos, limit)
                    limit, stop = next(slices)
        if self._extra is not None:
            found += self._extra.spans(text)
        if not found:
            return found
        if self._allow is not None:
            allow = self._allow
            found = [s for s in found if not allow.fullmatch(text, s.start, s.end)]
        return _resolve_overlaps(found)


def _version(
    detectors: Sequence[Detector], allow: Sequence[str], extra: ExtraDetector | None
) -> str:
    digest = hashlib.sha256()
    for det in detectors:
        pattern = getattr(det.pattern, "pattern", None)
        digest.update(
            f"{det.kind}\x00{pattern}\x00{det.scope}\x00{det.check.__qualname__}\x00".encode()
        )
    for pattern in allow:
        digest.update(f"allow\x00{pattern}\x00".encode())
    if extra is not None:
        digest.update(f"extra\x00{extra!r}".encode())
    return f"{__version__}+{digest.hexdigest()[:12]}"


def _slices(lo: int, hi: int, reach: int) -> Iterator[tuple[int, int]]:
    """(limit, stop) of each slice of `[lo, hi)` for a pattern that reads at most `reach`
    characters from where a match attempt starts.

    An attempt that starts before `limit` reads nothing at `stop = limit + reach` or
    after, so a search that stops at `stop` tries it exactly as one that stops at `hi`:
    its first match starting before `limit` is the same, and if it has none, neither
    has the search to `hi`. The next slice goes on from `limit`.
    """
    limit = lo + _SLICE
    while limit + reach < hi:
        yield limit, limit + reach
        limit += _SLICE
    yield hi, hi


#: Findings sorted in one call, at most: a sort holds the GIL; more are sorted in parts.
_SORT_AT_ONCE = 1 << 14


def _resolve_overlaps(spans: list[Span]) -> list[Span]:
    """`_without_overlaps`, group by group of spans that overlap: the cost of keeping
    the best of a group grows with the square of its size, not of all the findings."""
    if len(spans) <= _SORT_AT_ONCE:
        spans.sort()
    else:  # parts sorted, then merged in Python, which lets other threads run
        parts = [sorted(spans[i : i + _SORT_AT_ONCE]) for i in range(0, len(spans), _SORT_AT_ONCE)]
        spans = list(heapq.merge(*parts))
    # Where each group starts (ints, not lists: many findings make no garbage to collect).
    starts: list[int] = []
    group_end = -1
    for i, span in enumerate(spans):
        if span.start >= group_end:
            starts.append(i)
        group_end = max(group_end, span.end) if span.start < group_end else span.end
    if len(starts) == len(spans):
        return spans
    starts.append(len(spans))
    kept: list[Span] = []
    for start, end in itertools.pairwise(starts):
        if end - start == 1:
            kept.append(spans[start])
        else:
            kept += _without_overlaps(spans[start:end])
    return kept


_WHITESPACE = re.compile(r"\s")
#: For each scope's anchors: one inside a value (no whitespace or edge of the text next
#: to it), first from a position on, and the last in a range.
_ANCHORS: dict[tuple[str, ...], tuple[tuple[re.Pattern[str], ...], re.Pattern[str], int]] = {}


def _windows(text: str, scope: Around) -> list[tuple[int, int, int]]:
    """The windows a detector of `scope` reads: (start, end, longest digit run), merged.

    Each window ends at whitespace (or the text's end), where no pattern can go on, so a
    pattern's lookahead sees what it would see in the whole text; a lookbehind reads
    before a window's start anyway. Windows that reach into each other are one.
    """
    before, after, end_of_text = scope.before, scope.after, len(text)
    merged: list[tuple[int, int, int]] = []
    if scope.digits:
        lo, hi, longest = 0, -end_of_text, 0  # the window being grown; none yet
        for start, end in _digit_runs(text):
            if start - before <= hi:
                hi = end + after
                longest = max(longest, end - start)
            else:
                if hi > 0:
                    merged.append((lo, hi, longest))
                lo, hi, longest = max(start - before, 0), end + after, end - start
        if hi > 0:
            merged.append((lo, hi, longest))
    else:
        merged = _anchor_windows(text, scope)
    windows: list[tuple[int, int, int]] = []
    for lo, hi, longest in merged:
        if windows and lo <= windows[-1][1]:
            # Reaches into the window before, which already ends at whitespace at or
            # after `hi`, or ends before it: then its whitespace is searched from `hi`.
            lo, last_end, last_longest = windows.pop()
            longest = max(longest, last_longest)
            if hi <= last_end:
                windows.append((lo, last_end, longest))
                continue
        windows.append((lo, _space_at_or_after(text, hi), longest))
    return windows


def _space_at_or_after(text: str, pos: int) -> int:
    """Where the first whitespace at or after `pos` is (the text's end: none), a slice at
    a time: a window may have no whitespace for megabytes after it."""
    while pos < len(text):
        space = _WHITESPACE.search(text, pos, pos + _SLICE)
        if space is not None:
            return space.start()
        pos += _SLICE
    return len(text)


def _digit_runs(text: str) -> Iterable[tuple[int, int]]:
    """The spans of `DIGIT_RUN` in `text`, in slices of a long text."""
    if len(text) <= _SLICE + DIGIT_RUN_REACH:
        return map(re.Match.span, DIGIT_RUN.finditer(text))
    return _sliced_digit_runs(text)


def _sliced_digit_runs(text: str) -> Iterator[tuple[int, int]]:
    pos = 0
    for limit, stop in _slices(0, len(text), DIGIT_RUN_REACH):
        for match in DIGIT_RUN.finditer(text, pos, stop):
            if match.start() >= limit:
                break
            yield match.span()
            pos = match.end()
        pos = max(pos, limit)


def _anchor_windows(text: str, scope: Around) -> list[tuple[int, int, int]]:
    """Windows around each anchor: `before` characters before it to `after` after it, an
    anchor that starts within `before` of a window's end growing that window.

    Where anchors crowd, a window grows by jumps: to the last anchor within reach of its
    end, found by one call, not one anchor at a time.
    """
    anchors, before, after, end_of_text = scope.anchors, scope.before, scope.after, len(text)
    short = end_of_text <= _SLICE
    for anchor in anchors:
        if (anchor in text) if short else _find_text(text, anchor, 0) >= 0:
            break
    else:
        return []
    if anchors not in _ANCHORS:
        size = len(anchors[0])
        if any(len(anchor) != size for anchor in anchors):
            raise ValueError(f"anchors of one scope have one length: {anchors}")
        # Anchors sit inside the values (`a@b.io`, `aws_secret_access_key`): one with
        # whitespace or the text's edge beside it anchors nothing.
        inside = [f"{re.escape(a)}(?<=\\S{re.escape(a)})(?=\\S)" for a in anchors]
        _ANCHORS[anchors] = (
            tuple(map(re.compile, inside)),
            re.compile("(?s:.*)(?:{})".format("|".join(inside))),
            size,
        )
    insides, last, size = _ANCHORS[anchors]
    # The next anchor of each kind at or after the position searched from (-1: none left).
    upcoming = [_next_anchor(text, 0, *kind) for kind in zip(anchors, insides, strict=True)]
    windows: list[tuple[int, int, int]] = []
    pos = 0
    while True:
        for i, at in enumerate(upcoming):
            if 0 <= at < pos:
                upcoming[i] = _next_anchor(text, pos, anchors[i], insides[i])
        at = min((at for at in upcoming if at >= 0), default=-1)
        if at < 0:
            return windows
        lo = max(at - before, 0)
        while True:
            # Anchors that start by `reach` grow the window: the last of them ends it.
            reach = at + after + before
            # An anchor reads one character past its end: it starts at `reach` or before.
            further = last.match(text, at + 1, min(reach + size + 1, end_of_text))
            if further is None:
                break
            at = further.end() - size
        windows.append((lo, at + after, 0))
        pos = reach + 1


def _next_anchor(text: str, pos: int, anchor: str, inside: re.Pattern[str]) -> int:
    """Where the first `anchor` inside a value starts, at `pos` or after (-1: none)."""
    at = _find_text(text, anchor, pos)  # the common case: the first one found is inside
    if at < 0 or inside.match(text, at):
        return at
    # Many that are not: the engine skips them, a slice at a time. An attempt reads one
    # character past the anchor, so one that starts by `limit` is tried as in the text.
    pos = at + 1
    while pos < len(text):
        limit = pos + _SLICE
        found = inside.search(text, pos, limit + len(anchor) + 1)
        if found is not None and found.start() <= limit:
            return found.start()
        pos = limit + 1
    return -1


def _find_text(text: str, needle: str, pos: int) -> int:
    """`text.find(needle, pos)`, a slice at a time: for a needle this short CPython
    compares at every character of some texts (`ecret` in digits: 23 ms for 8 MiB)."""
    while pos < len(text):
        at = text.find(needle, pos, pos + _SLICE + len(needle) - 1)
        if at >= 0:
            return at
        pos += _SLICE
    return -1


def _without_overlaps(spans: Iterable[Span]) -> list[Span]:
    """Keep the best-ranked span of each overlapping group (the longer on a tie)."""
    kept: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.rank, s.start - s.end, s.start)):
        if all(span.end <= k.start or span.start >= k.end for k in kept):
            kept.append(span)
    kept.sort()
    return kept
