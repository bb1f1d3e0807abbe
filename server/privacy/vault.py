"""The vault of one redacted request: placeholders out, originals back in the answer.

A placeholder reads `<KIND_N>` (`<EMAIL_1>`); the same value gets the same placeholder
everywhere in the request. Numbers already used by placeholder-shaped text in the request
itself are skipped, so text the user wrote is never mistaken for a placeholder.
The vault holds originals: it lives as long as its request and is never logged (its repr
shows only counts).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson

from spillgate.server.privacy.findings import Findings

if TYPE_CHECKING:
    from spillgate.server.privacy.stream import StreamRestorer

PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*)_([1-9][0-9]*)>")
_NOT_LABEL = re.compile(r"[^A-Z0-9]+")


def label_of(kind: str) -> str:
    label = _NOT_LABEL.sub("_", kind.upper()).strip("_")
    return label if label[:1].isalpha() else "PII_" + label


def json_escaped(value: str) -> str:
    """`value` as it reads inside a JSON string literal."""
    return orjson.dumps(value).decode()[1:-1]


def _json_unescaped(raw: str) -> str:
    if "\\" not in raw:
        return raw
    try:
        value = orjson.loads(b'"' + raw.encode() + b'"')
    except orjson.JSONDecodeError:
        return raw
    return value if isinstance(value, str) else raw


class Vault:
    __slots__ = ("_by_value", "_counts", "_next", "_originals", "_prefixes", "_taken")

    def __init__(self) -> None:
        self._originals: dict[str, str] = {}  # placeholder -> original value
        self._by_value: dict[str, str] = {}  # original value -> placeholder
        self._next: Counter[str] = Counter()
        self._taken: set[str] = set()
        self._counts: Counter[str] = Counter()
        self._prefixes: frozenset[str] | None = None

    def reserve(self, texts: Iterable[str]) -> None:
        """Never hand out a placeholder that these texts already contain."""
        for text in texts:
            if "<" in text:
                self._taken.update(m.group(0) for m in PLACEHOLDER.finditer(text))

    def placeholder(self, kind: str, raw: str, is_json: bool = False) -> str:
        """The placeholder for a finding; `raw` as it stood in the text (JSON if `is_json`)."""
        self._counts[kind] += 1
        value = _json_unescaped(raw) if is_json else raw
        known = self._by_value.get(value)
        if known is not None:
            return known
        label = label_of(kind)
        while True:
            self._next[label] += 1
            name = f"<{label}_{self._next[label]}>"
            if name not in self._taken:
                break
        self._originals[name] = value
        self._by_value[value] = name
        self._prefixes = None
        return name

    @property
    def findings(self) -> Findings:
        """What was redacted, by kind: every occurrence counts."""
        return Findings(self._counts)

    def __len__(self) -> int:
        return len(self._originals)

    def __repr__(self) -> str:
        return f"Vault({len(self._originals)} placeholders, {self.findings!r})"

    def restore_text(self, text: str, json_context: bool = False) -> str:
        """Put originals back where their placeholders appear; other text is left alone.

        `json_context`: the text is JSON (tool-call arguments), so originals go in escaped.
        """
        if "<" not in text or not self._originals:
            return text
        originals = self._originals

        def original(match: re.Match[str]) -> str:
            value = originals.get(match.group(0))
            if value is None:
                return match.group(0)
            return json_escaped(value) if json_context else value

        return PLACEHOLDER.sub(original, text)

    def split_partial(self, text: str) -> tuple[str, str]:
        """Split off an end of `text` that may be the start of a placeholder: (ready, held).

        A placeholder holds one `<`, at its start, so only the last `<` can begin one.
        """
        cut = text.rfind("<")
        if cut < 0:
            return text, ""
        if self._prefixes is None:
            self._prefixes = frozenset(p[:i] for p in self._originals for i in range(1, len(p)))
        if text[cut:] in self._prefixes:
            return text[:cut], text[cut:]
        return text, ""

    def restore_json(self, body: bytes) -> bytes:
        """Restore a whole chat completion (or text completion) response body."""
        if not self._originals or (b"<" not in body and b"\\u003c" not in body):
            return body
        try:
            response = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        if not isinstance(response, dict) or not isinstance(response.get("choices"), list):
            return body
        changed = False
        for choice in response["choices"]:
            if not isinstance(choice, dict):
                continue
            changed |= self._restore_field(choice, "text")
            message = choice.get("message")
            if isinstance(message, dict):
                changed |= self._restore_message(message)
        return orjson.dumps(response) if changed else body

    def _restore_message(self, message: dict[str, Any]) -> bool:
        changed = self._restore_field(message, "content")
        changed |= self._restore_field(message, "refusal")
        calls = message.get("tool_calls")
        functions = [c.get("function") for c in calls if isinstance(c, dict)] if calls else []
        functions.append(message.get("function_call"))
        for function in functions:
            if isinstance(function, dict):
                changed |= self._restore_field(function, "arguments", json_context=True)
        return changed

    def _restore_field(self, obj: dict[str, Any], key: str, json_context: bool = False) -> bool:
        value = obj.get(key)
        if not isinstance(value, str):
            return False
        restored = self.restore_text(value, json_context)
        if restored == value:
            return False
        obj[key] = restored
        return True

    def stream_restorer(self) -> StreamRestorer:
        from spillgate.server.privacy.stream import StreamRestorer

        return StreamRestorer(self)
