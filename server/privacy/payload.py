"""Every string a JSON body carries, and how to rewrite them.

The scan reads every string of a body, object keys included, whatever the field: a field
nobody listed (a tool's description, a JSON schema, `metadata`, `stop`, `suffix`) is read
by construction, in an inbound request and in the body a provider adapter built alike.
No field is skipped for what it looks like: a skip rule would be a way around the scan.

A string is also read as what it decodes to, when it holds:
- JSON (tool-call arguments, tool results, a schema sent as text): its strings, so
  `"m\\u00fcller@..."` is read as the address a provider would decode;
- percent-encoding (`jane%40corp.io`) or HTML character references (`jane&#64;corp.io`).

`map_texts` rebuilds a container only where `fn` returned a different string (copy on
write): the caller's body is never changed. It rewrites the JSON a string holds; the other
decodings are read only (a finding there that redaction cannot reach is refused at the
egress).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import orjson

#: fn(text, is_json): `is_json` marks a string that holds JSON (tool-call arguments).
TextFn = Callable[[str, bool], str]


#: Layers of encoding undone, at most (`%2540` is `%40` is `@`): a bound, so a string
#: encoded a thousand times over costs a few passes, not a thousand.
MAX_DECODINGS = 4


def texts(value: Any) -> tuple[list[str], list[str]]:
    """Every string in `value`, keys included; and what the encoded ones decode to.

    The second list is kept apart so a value seen both ways counts once.
    """
    plain: list[str] = []
    decoded: list[str] = []
    stack: list[tuple[Any, list[str], int]] = [(value, plain, 0)]
    while stack:
        item, found, depth = stack.pop()
        if isinstance(item, str):
            if item:
                found.append(item)
                # Most strings (keys, roles, prose) open with neither JSON nor whitespace
                # and hold no escape character: a few one-character lookups say so.
                first = item[0]
                if first in _JSON_OPENERS or first.isspace():
                    inner = _json_in(item)
                    if inner is not None:
                        stack.append((inner, decoded, depth))
                if depth < MAX_DECODINGS and ("%" in item or "&" in item or "\\" in item):
                    stack.extend((text, decoded, depth + 1) for text in _encoded_in(item))
        elif isinstance(item, dict):
            for key, inner in item.items():
                stack.append((key, found, depth))  # a key leaves like any other string
                stack.append((inner, found, depth))
        elif isinstance(item, list):
            stack.extend((inner, found, depth) for inner in item)
    return plain, decoded


def map_texts(value: Any, fn: TextFn) -> Any:
    """`value` with `fn` applied to every string `texts` reads; unchanged parts shared."""
    if isinstance(value, str):
        if not value:
            return value
        decoded = _json_in(value)
        if decoded is not None:
            mapped = map_texts(decoded, fn)
            if mapped is not decoded:
                value = orjson.dumps(mapped).decode()
        return fn(value, decoded is not None)
    if isinstance(value, dict):
        out = value
        for key, inner in value.items():
            new_key = fn(key, False) if key else key
            new = map_texts(inner, fn)
            if new is not inner or new_key != key:
                if out is value:
                    out = dict(value)
                if new_key != key:
                    del out[key]
                out[new_key] = new
        return out
    if isinstance(value, list):
        out_list = value
        for i, inner in enumerate(value):
            new = map_texts(inner, fn)
            if new is not inner:
                if out_list is value:
                    out_list = list(value)
                out_list[i] = new
        return out_list
    return value


_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
#: JSON string escapes written into plain text (JSON quoted inside a sentence, a log line):
#: `\u00fc`, `\"`, `\\`, `\n`...
_JSON_ESCAPE = re.compile(r'\\(u[0-9A-Fa-f]{4}|["\\/bfnrt])')
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
                   "t": "\t"}  # fmt: skip
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")


def _encoded_in(text: str) -> list[str]:
    """The text `text` holds in percent, HTML or JSON escapes (none for most text).

    Each is gated on characters most text lacks, so the common case costs a lookup each.
    A decoded text is read in turn, so escapes within escapes are undone too.
    """
    found: list[str] = []
    if "%" in text and _PERCENT.search(text):
        found.append(unquote(text))
    if "&" in text and _ENTITY.search(text):
        found.append(html.unescape(text))
    # One character first: `in` finds one with memchr, two only at a byte a step.
    if "\\" in text and ("\\u" in text or '\\"' in text):
        found.append(_json_unescaped(text))
    return [decoded for decoded in found if decoded != text]


def _json_unescaped(text: str) -> str:
    """One layer of JSON string escapes undone; `\\\\u0040` needs two, as it did to write."""

    def unescape(match: re.Match[str]) -> str:
        escape = match.group(1)
        return chr(int(escape[1:], 16)) if len(escape) > 1 else _SIMPLE_ESCAPES[escape]

    unescaped = _JSON_ESCAPE.sub(unescape, text)
    # `\ud83d\ude00` is one character written as a surrogate pair.
    return unescaped.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


_JSON_OPENERS = frozenset('{["')


def _json_in(text: str) -> Any:
    """The object, array or string `text` holds as JSON, or None."""
    start = text.lstrip()[:1]
    if start not in ("{", "[", '"'):
        return None
    try:
        decoded = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if isinstance(decoded, dict | list) or (isinstance(decoded, str) and decoded != text):
        return decoded
    return None
