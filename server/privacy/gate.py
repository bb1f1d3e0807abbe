"""The gate: one pass over a text says which detectors could find anything in it.

Each built-in detector has a gate, a short pattern found in every text where the
detector's own pattern finds a value: its literal prefix (`sk-`, `eyJ`), the start of the
digit run its window needs, its anchor (`@`). Hyperscan runs every gate in one pass over
the text; only the detectors whose gate matched then search it with Python's `re`, whose
lookbehinds and possessive runs define what a value is. A clean prompt costs that one
pass instead of a search per detector (docs/performance.md has the figures).

Why Hyperscan: it matches many patterns at once with SIMD, about 0.3 ns a byte here, where
RE2's `Set` took 1.8 ns and `re` takes 0.5-5 ns a byte for *each* detector. Its wheels
bundle the library for x86-64 and ARM.

A gate is a necessary condition, never a verdict: where it matches, the detector reads the
text exactly as it would without the gate, so the findings are the same either way
(tests/unit/test_privacy_gate.py checks each gate against its detector). A detector
without a gate (a custom pattern from the configuration) always runs, and so does every
detector when the gate itself fails.

Gates are ASCII and match bytes, so a text is read as its UTF-8 bytes; a lone surrogate,
which JSON can carry, is written as its three bytes and matches no gate, as it matches no
detector's ASCII pattern.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import hyperscan

log = logging.getLogger("spillgate.privacy")

#: The most characters a gate matches; texts longer than `SLICE` bytes are read in
#: slices that overlap by this much, so a match across a slice's end is still seen.
MAX_GATE_CHARS = 64
#: Bytes per call: one call holds the GIL for at most about this much text (see
#: detectors.py for why no call should hold it long).
SLICE = 1 << 20


class Gate:
    """Which of a scanner's detectors may find something in a text (see the module)."""

    def __init__(self, gates: Sequence[str | None]) -> None:
        """`gates[i]`: detector i's gate (None: it always runs)."""
        unique = list(dict.fromkeys(g for g in gates if g is not None))
        self._gate_of = [None if g is None else unique.index(g) for g in gates]
        self._all = [True] * len(gates)
        self._db: hyperscan.Database | None = None
        if unique:
            self._db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            self._db.compile(
                expressions=[g.encode() for g in unique],
                ids=list(range(len(unique))),
                elements=len(unique),
                # Each gate is reported once, at its first match.
                flags=[hyperscan.HS_FLAG_SINGLEMATCH] * len(unique),
            )
        # Scratch space is per thread: scans run on the event loop and in worker threads.
        self._local = threading.local()

    def passes(self, text: str) -> list[bool]:
        """For each detector, may it find something in `text`?"""
        if self._db is None:
            return self._all
        try:
            found = self._matched(text.encode("utf-8", "surrogatepass"))
        except Exception:  # fail open to the detectors: the gate only ever saves work
            log.exception("the privacy gate failed; every detector reads the text")
            return self._all
        return [g is None or g in found for g in self._gate_of]

    def _matched(self, data: bytes) -> set[int]:
        assert self._db is not None
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = hyperscan.Scratch(self._db)
        found: set[int] = set()

        def matched(gate: int, start: int, end: int, flags: int, context: object) -> None:
            found.add(gate)

        if len(data) <= SLICE + MAX_GATE_CHARS:
            self._db.scan(data, matched, scratch=scratch)
            return found
        for start in range(0, len(data), SLICE):
            self._db.scan(data[start : start + SLICE + MAX_GATE_CHARS], matched, scratch=scratch)
        return found
