"""One reading of text for every detector: Unicode forms folded to what the patterns know.

The same value can be written many ways: `4111 1111 1111 1111` with no-break spaces
(French and Swiss typography), full-width digits and `U+FF20`, a zero-width space inside an
email, a non-breaking hyphen in a phone number. `fold` maps each character to its NFKC
form, drops format characters (Unicode category Cf, the zero-width ones among them) and
combining marks standing alone, maps every Unicode space to a plain space, every dash to
`-` and every decimal digit to its ASCII digit. Characters fold one at a time (not the
composition step of a whole-string NFKC), so a finding in the folded text maps back to a
span of the original: redaction replaces the characters that were written.

ASCII text, the common case, is returned as it is: one C-level check.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right

_SPACE = " "


def _fold_char(code: int) -> str:
    ch = chr(code)
    category = unicodedata.category(ch)
    if category == "Cf" or category in ("Mn", "Me"):
        return ""
    if category == "Zs":
        return _SPACE
    if category == "Pd":
        return "-"
    if category == "Nd":
        return str(unicodedata.decimal(ch))
    folded = unicodedata.normalize("NFKC", ch)
    if folded == ch:
        return ch
    # NFKC may yield a space, a digit or a dash of another kind: fold those too.
    return "".join(c if c.isascii() or c == ch else _fold_char(ord(c)) for c in folded)


class _FoldTable(dict[int, str]):
    """A `str.translate` table filled on first sight of each code point."""

    def __missing__(self, code: int) -> str:
        folded = self[code] = _fold_char(code)
        return folded


_TABLE = _FoldTable()


class Folded:
    """The folded text, and where each of its characters came from in the original."""

    __slots__ = ("_at", "_delta", "text")

    def __init__(self, text: str, at: list[int] | None = None, delta: list[int] | None = None):
        self.text = text
        # Folded index i came from original index i + delta[k], k the last with at[k] <= i.
        self._at = at
        self._delta = delta

    @property
    def shifted(self) -> bool:
        """False when every index is the same in both texts."""
        return self._at is not None

    def original_start(self, i: int) -> int:
        if self._at is None or self._delta is None:
            return i
        return i + self._delta[bisect_right(self._at, i) - 1]

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The original characters that folded into `text[start:end]`."""
        if self._at is None:
            return start, end
        return self.original_start(start), self.original_start(end - 1) + 1


#: Characters folded per C-level call: one call holds the GIL, so a large body folded in
#: one would stall the event loop while a worker thread scans it (8 MiB of `é`: 400 ms).
SLICE = 64 * 1024


def fold(text: str) -> Folded:
    if text.isascii():
        return Folded(text)
    pieces: list[str] = []
    at: list[int] = [0]
    delta: list[int] = [0]
    out = 0  # characters folded so far
    for lo in range(0, len(text), SLICE):
        piece, piece_at, piece_delta = _fold_slice(text[lo : lo + SLICE])
        pieces.append(piece)
        if piece_at:
            # The slice's offsets, moved to where it sits in both texts.
            at += [out + i for i in piece_at]
            delta += [lo - out + d for d in piece_delta]
        elif delta[-1] != lo - out:
            at.append(out)
            delta.append(lo - out)
        out += len(piece)
    if len(at) == 1:
        return Folded("".join(pieces))
    return Folded("".join(pieces), at, delta)


def _fold_slice(text: str) -> tuple[str, list[int], list[int]]:
    """The folded slice, and its offset map (empty when every index stays the same)."""
    uneven = {c for c in set(text) if not c.isascii() and len(_TABLE[ord(c)]) != 1}
    if not uneven:
        return text.translate(_TABLE), [], []
    # Some characters fold to none or to several: keep the offsets where they shift.
    pieces: list[str] = []
    at, delta = [0], [0]
    pos = 0  # in the original
    out = 0  # in the folded text
    pattern = re.compile("[" + "".join(re.escape(c) for c in uneven) + "]")
    for match in pattern.finditer(text):
        j = match.start()
        pieces.append(text[pos:j].translate(_TABLE))
        out += j - pos
        replacement = _TABLE[ord(text[j])]
        for k in range(len(replacement)):  # every folded character points at j
            at.append(out + k)
            delta.append(j - (out + k))
        pieces.append(replacement)
        out += len(replacement)
        pos = j + 1
        at.append(out)
        delta.append(pos - out)
    pieces.append(text[pos:].translate(_TABLE))
    return "".join(pieces), at, delta
