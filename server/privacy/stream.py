"""Restoring originals in a streamed answer: `chat.completion.chunk` and `text_completion` SSE.

A model writes a placeholder in pieces (`<EM`, `AIL_`, `1>`), and the network cuts the
bytes anywhere, so the restorer keeps two kinds of leftovers: the bytes of an event not
yet terminated, and per channel (a choice's content or text, the arguments of a tool call
or of the legacy function_call) the end of the text that may still become a placeholder.
Held text goes out as soon as it is complete or proven not to be a placeholder, or at the
choice's finish_reason, at `[DONE]`, or at `finish()`, whichever comes first.

An event without `<` and with nothing held passes through byte for byte; only events
that change are re-serialised.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from spillgate.server.privacy.vault import Vault

_EVENT_END = re.compile(rb"\r?\n\r?\n")
_CONTENT = -1  # the channel key of a choice's content or text; tool calls use their index
_FUNCTION_CALL = -2  # the legacy `function_call` delta


class StreamRestorer:
    __slots__ = ("_held", "_tail", "_template", "_vault")

    def __init__(self, vault: Vault) -> None:
        self._vault = vault
        self._tail = b""
        self._held: dict[tuple[int, int], str] = {}
        self._template: dict[str, Any] = {"object": "chat.completion.chunk"}

    def feed(self, data: bytes) -> bytes:
        buf = self._tail + data if self._tail else data
        out: list[bytes] = []
        pos = 0
        for end in _EVENT_END.finditer(buf):
            out.append(self._event(buf[pos : end.end()]))
            pos = end.end()
        self._tail = buf[pos:]
        return b"".join(out)

    def finish(self) -> bytes:
        """The end of the upstream stream: whatever is still held, then any unframed rest."""
        tail, self._tail = self._tail, b""
        out = self._event(tail) if tail.strip() else tail
        return self._flush_event() + out

    def _event(self, raw: bytes) -> bytes:
        if not self._held and b"<" not in raw and b"\\u003c" not in raw:
            return raw
        lines = raw.split(b"\n")
        data_at = next((i for i, line in enumerate(lines) if line.startswith(b"data:")), None)
        if data_at is None:
            return raw
        data = lines[data_at][5:].strip()
        if data == b"[DONE]":
            return self._flush_event() + raw
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return raw
        if not isinstance(chunk, dict) or not isinstance(chunk.get("choices"), list):
            return raw
        self._remember(chunk)
        changed = False
        for choice in chunk["choices"]:
            if isinstance(choice, dict):
                changed |= self._choice(choice)
        if not changed:
            return raw
        cr = b"\r" if lines[data_at].endswith(b"\r") else b""
        lines[data_at] = b"data: " + orjson.dumps(chunk) + cr
        return b"\n".join(lines)

    def _remember(self, chunk: dict[str, Any]) -> None:
        """Keep what a chunk of our own (for text held to the end) must repeat."""
        for key in ("id", "object", "created", "model", "system_fingerprint"):
            if key in chunk:
                self._template[key] = chunk[key]

    def _choice(self, choice: dict[str, Any]) -> bool:
        index = choice.get("index", 0)
        delta = choice.get("delta")
        changed = False
        # A completions stream carries its text in the choice itself.
        if isinstance(choice.get("text"), str):
            changed |= self._field(choice, "text", (index, _CONTENT), json_context=False)
        elif not isinstance(delta, dict):
            if choice.get("finish_reason") is None or not self._held_for(index):
                return False
            delta = choice["delta"] = {}
        if isinstance(delta, dict):
            if isinstance(delta.get("content"), str):
                changed |= self._field(delta, "content", (index, _CONTENT), json_context=False)
            calls = delta.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    channel = (index, call.get("index", 0))
                    changed |= self._field(function, "arguments", channel, json_context=True)
            function_call = delta.get("function_call")  # the legacy, single function call
            if isinstance(function_call, dict) and isinstance(function_call.get("arguments"), str):
                channel = (index, _FUNCTION_CALL)
                changed |= self._field(function_call, "arguments", channel, json_context=True)
        if choice.get("finish_reason") is not None and self._held_for(index):
            self._flush_into(index, choice, delta)
            changed = True
        return changed

    def _field(
        self, obj: dict[str, Any], key: str, channel: tuple[int, int], json_context: bool
    ) -> bool:
        text = obj[key]
        new = self._through(channel, text, json_context)
        if new == text:
            return False
        obj[key] = new
        return True

    def _through(self, channel: tuple[int, int], text: str, json_context: bool) -> str:
        held = self._held.pop(channel, "")
        text = held + text
        if "<" not in text:
            return text
        ready, keep = self._vault.split_partial(text)
        if keep:
            self._held[channel] = keep
        return self._vault.restore_text(ready, json_context)

    def _held_for(self, index: int) -> list[tuple[int, int]]:
        return [channel for channel in self._held if channel[0] == index]

    def _flush_into(self, index: int, choice: dict[str, Any], delta: dict[str, Any] | None) -> None:
        """Held text proved not to be a placeholder: it goes out as it was written."""
        for channel in sorted(self._held_for(index)):
            text = self._held.pop(channel)
            if channel[1] == _CONTENT and delta is None:
                choice["text"] = (choice.get("text") or "") + text
                continue
            delta = choice.setdefault("delta", {}) if delta is None else delta
            if channel[1] == _CONTENT:
                delta["content"] = (delta.get("content") or "") + text
            elif channel[1] == _FUNCTION_CALL:
                function_call = delta.setdefault("function_call", {})
                function_call["arguments"] = (function_call.get("arguments") or "") + text
            else:
                calls = delta.setdefault("tool_calls", [])
                calls.append({"index": channel[1], "function": {"arguments": text}})

    def _flush_event(self) -> bytes:
        """A chunk of our own for text still held when the stream ends without a finish."""
        completions = self._template.get("object") == "text_completion"
        choices = []
        for index in sorted({channel[0] for channel in self._held}):
            choice: dict[str, Any] = {"index": index, "finish_reason": None}
            self._flush_into(index, choice, None if completions else choice.setdefault("delta", {}))
            choices.append(choice)
        if not choices:
            return b""
        return b"data: " + orjson.dumps({**self._template, "choices": choices}) + b"\n\n"
