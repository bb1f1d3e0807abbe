"""PEM private keys: the whole block, of any length, in linear time on any text.

A block opens with a BEGIN label (`-----BEGIN RSA PRIVATE KEY-----`, `... PGP PRIVATE KEY
BLOCK-----`) and is either

- **whole**: everything up to the first `-----BEGIN` or `-----END` after the label, when
  that is an END label of a private key (the body is not read: armour headers, any
  length, JSON's `\\n`, all inside); or
- **cut off** (pasted without its END line, or followed by something else): the label and
  the lines after it that read as key material: base64 (a run of 16 characters or more;
  a shorter one only as a whole line right after the one before, the last line of a
  key cut off), armour headers (`Proc-Type: 4,ENCRYPTED`, `DEK-Info: ...`,
  `Comment: "..."`, `Version: ...`), separated by whitespace or, inside JSON text, `\\n`
  and `\\r`.

Neither form crosses a NUL (the scanner joins texts with one). `PATTERN` says this as one
regular expression, the definition the scanner's version digest and the tests read; each
of its quantifiers is possessive and its body stops at the next marker, so it never
backtracks far. `blocks` finds the same blocks without any long call (the scanner uses
it): every `-----BEGIN` and `-----END` is found once, each BEGIN takes the next marker by
bisection instead of searching for its END (repeated BEGIN lines cost one pass), and
runs of key material are matched in chunks of `CHUNK` characters, so no single call
holds the GIL for long.
"""

from __future__ import annotations

import re
from bisect import bisect_left

#: The most characters one regular expression call of `blocks` reads at a time.
CHUNK = 1 << 16

_PRIVATE = r"[A-Z0-9 ]{0,64}+(?:(?<=PRIVATE KEY)|(?<=PRIVATE KEY BLOCK))-----"
_BEGIN = "-----BEGIN" + _PRIVATE
_END = "-----END" + _PRIVATE
# Anything but a NUL, up to the next `-----BEGIN` or `-----END`.
_BODY = r"(?:[^\x00-]++|-(?!----(?:BEGIN|END)))*+"
# Between lines: whitespace, or in JSON text the two characters `\n` or `\r`.
_GAP = r"(?:\s++|\\[nr])*+"
_BASE64 = r"[A-Za-z0-9+/=]"
# One line break (JSON's too), spaces around it: no blank line.
_BREAK = r"[ \t]{0,64}+(?:\r\n?|\n|\\r(?:\\n)?|\\n)[ \t]{0,64}+"
# Where a line ends: spaces, then a line break (JSON's too), the quote that ends a
# string, or the end of the text.
_LINE_END = r'[ \t]{0,64}+(?:[\r\n"]|\\[nr"]|\Z)'
_HEADER_NAME = r"[A-Za-z][A-Za-z0-9-]{0,63}+:[ \t]"
# A header's value, to the end of its line: JSON's `\"` and `\\` are in it, `\n` is not.
_HEADER_VALUE = r"(?:[^\x00\r\n\\]++|\\[^\x00nr])*+"
# A line of key material: base64 (16 characters or more), an armour header, or, on the
# line right after one (no blank line between: that would end the key), the short last
# line of a key cut off.
_LINE = (
    f"(?:{_GAP}(?:{_BASE64}{{16,}}+|{_HEADER_NAME}{_HEADER_VALUE})"
    f"|{_BREAK}{_BASE64}{{1,15}}+(?={_LINE_END}))"
)

PATTERN = re.compile(f"{_BEGIN}(?:{_BODY}{_END}|{_LINE}*+)")

_BEGIN_AT = re.compile(_BEGIN)
_END_AT = re.compile(_END)
_GAP_RUN = re.compile(_GAP)
_BASE64_RUN = re.compile(f"{_BASE64}*+")
_LINE_END_AT = re.compile(_LINE_END)
_ONE_BREAK = re.compile(_BREAK)
_HEADER_NAME_AT = re.compile(_HEADER_NAME)
_HEADER_VALUE_RUN = re.compile(_HEADER_VALUE)


def blocks(text: str, lo: int, hi: int) -> list[tuple[int, int]]:
    """The (start, end) of each block in `text[lo:hi]`, in order: what `PATTERN` finds
    searching from `lo`, and from the end of each block on."""
    begins = _occurrences(text, "-----BEGIN", lo, hi)
    if not begins:
        return []
    ends = _occurrences(text, "-----END", lo, hi)
    found = []
    covered = lo
    for i, begin in enumerate(begins):
        if begin < covered:
            continue  # inside the block before
        label = _BEGIN_AT.match(text, begin, hi)
        if label is None:
            continue  # a public key, a certificate
        body = label.end()
        # The first marker after the label: the next BEGIN, or the next END before it.
        k = bisect_left(begins, body, i + 1)
        marker = begins[k] if k < len(begins) else hi
        j = bisect_left(ends, body)
        if j < len(ends) and ends[j] < marker:
            marker = ends[j]
        end = _END_AT.match(text, marker, hi) if marker < hi else None
        if end is not None and text.find("\x00", body, marker) < 0:
            covered = end.end()
        else:
            covered = _lines_end(text, body, hi)
        found.append((begin, covered))
    return found


def _occurrences(text: str, marker: str, lo: int, hi: int) -> list[int]:
    """Where `marker` occurs in `text[lo:hi]`, searched a chunk at a time."""
    found = []
    pos = lo
    while pos < hi:
        at = text.find(marker, pos, min(pos + CHUNK + len(marker) - 1, hi))
        if at < 0:
            pos += CHUNK
        else:
            found.append(at)
            pos = at + len(marker)
    return found


def _lines_end(text: str, pos: int, hi: int) -> int:
    """Where `_LINE*+` of `PATTERN`, matched at `pos`, ends: one line at a time."""
    while True:
        start = _run_end(_GAP_RUN, text, pos, hi)
        end = _run_end(_BASE64_RUN, text, start, hi)
        if end - start >= 16:
            pos = end
            continue
        header = _HEADER_NAME_AT.match(text, start, hi)
        if header is not None:
            pos = _run_end(_HEADER_VALUE_RUN, text, header.end(), hi)
            continue
        if not (
            end > start
            and _LINE_END_AT.match(text, end, hi) is not None
            and start - pos <= 2 * 64 + 4  # the break, spaces around it, and no more
            and _ONE_BREAK.fullmatch(text, pos, start) is not None
        ):
            return pos
        pos = end


def _run_end(run: re.Pattern[str], text: str, pos: int, hi: int) -> int:
    """Where `run` matched at `pos` ends, read in chunks.

    `run` is a possessive repetition of items of at most two characters, so a match
    that stops two characters or more before its chunk's end stopped where the text
    stops it; otherwise the last whole item ends the chunk and the next one goes on.
    """
    while True:
        stop = min(pos + CHUNK, hi)
        match = run.match(text, pos, stop)
        end = pos if match is None else match.end()
        if end < stop - 1 or stop == hi:
            return end
        pos = end
