"""Everything a provider could read from a request it received, and a value looked for in it.

`find_needles(request, needles)` looks for a planted value (tests/support/privacy_plants.py) in
every reading of one request a wiretap recorded (tests/support/fakes/wiretap.py): the raw body,
every JSON string in it (keys included; strings that are themselves JSON decoded again),
the same with JSON escapes, percent-encoding and HTML references decoded wherever they
stand, the URL and the headers. Each reading is folded as the needles are (`fold`), so a
value that left in any encoding or Unicode form is found. `normalise` is what the
gateway's egress guard reads: the property tests check that every plant is a
value the detector finds once normalised, so that a correct guard can pass them.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_plus

# -- folding and normalising -----------------------------------------------------------------


def fold(text: str) -> str:
    """The comparison form: NFKC, then only letters, digits (every decimal digit as
    ASCII), `@` and `+` kept, case folded. A needle is folded the same way, so a card
    written with spaces, no-break spaces, full-width digits or minus signs between its
    groups compares equal to its digits, and a separator or format character between
    the characters of a value hides nothing."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFKC", text):
        category = unicodedata.category(ch)
        if category[0] == "L" or ch in "@+":
            out.append(ch)
        elif category[0] == "N":
            digit = unicodedata.decimal(ch, None)
            out.append(str(digit) if digit is not None else ch)
    return "".join(out).casefold()


def normalise(text: str) -> str:
    """What the egress guard reads: NFKC, format characters dropped, Unicode
    spaces as a space, Unicode dashes as '-', any decimal digit in ASCII."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFKC", text):
        category = unicodedata.category(ch)
        if category == "Cf":
            continue
        if category == "Zs":
            out.append(" ")
        elif category == "Pd":
            out.append("-")
        else:
            digit = unicodedata.decimal(ch, None)
            out.append(str(digit) if digit is not None else ch)
    return "".join(out)


def json_strings(value: Any, depth: int = 0) -> Iterator[str]:
    """Every string in a JSON value, keys included; a string that is itself a JSON
    document (tool-call arguments, a schema pasted as text) is decoded and read too."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from json_strings(key, depth)
            yield from json_strings(item, depth)
    elif isinstance(value, list):
        for item in value:
            yield from json_strings(item, depth)
    elif isinstance(value, str):
        yield value
        inner = value.strip()
        if depth < 6 and inner[:1] in ("{", "[", '"'):
            try:
                decoded = json.loads(inner)
            except ValueError:
                return
            yield from json_strings(decoded, depth + 1)


# -- what a provider received ----------------------------------------------------------------


@dataclass
class Received:
    """One request as it reached a provider: what a wiretap in front of it recorded."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


def readings(request: Received) -> dict[str, list[str]]:
    """Each way a provider could read the request, by name: `raw` (the body bytes as
    text), `json` (every string, recursively), `decoded` (those with JSON escapes,
    percent-encoding and HTML references decoded wherever they stand), `url` (path and
    query, percent-decoded), `headers`."""
    raw = request.body.decode("utf-8", errors="replace")
    found: dict[str, list[str]] = {
        "raw": [raw],
        "url": [unquote_plus(request.path), unquote_plus(request.query)],
        "headers": [f"{k}: {v}" for k, v in request.headers.items()],
        "json": [],
    }
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if parsed is not None:
        found["json"] = list(json_strings(parsed))
    # JSON escapes written anywhere in a text (not only in a whole JSON document),
    # percent-encoding and HTML references read as what they stand for.
    found["decoded"] = [
        unquote(html.unescape(unescape_json(t)))
        for t in (raw, *found["json"])
        if "%" in t or "&" in t or "\\" in t
    ]
    return found


_JSON_ESCAPE = re.compile(
    r"\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})"
    r"|\\u([0-9a-fA-F]{4})|\\([\"\\/bfnrt])"
)
_SIMPLE_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def unescape_json(text: str) -> str:
    """`text` with each JSON string escape decoded where it stands (`\\u00fc` → `ü`)."""

    def one(match: re.Match[str]) -> str:
        high, low, code, simple = match.groups()
        if high is not None:
            return chr(0x10000 + (int(high, 16) - 0xD800) * 0x400 + int(low, 16) - 0xDC00)
        if code is not None:
            return chr(int(code, 16))
        return _SIMPLE_ESCAPES.get(simple, simple)

    return _JSON_ESCAPE.sub(one, text)


def find_needles(request: Received, needles: tuple[str, ...]) -> list[str]:
    """The readings of `request` in which any of `needles` (already folded) appears."""
    hits = []
    for name, texts in readings(request).items():
        folded = [fold(t) for t in texts]
        if any(needle in text for needle in needles for text in folded):
            hits.append(name)
    return hits
