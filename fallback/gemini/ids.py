"""OpenAI tool-call ids for Gemini function calls, carrying Gemini's thought signature.

Gemini 3 returns an opaque `thoughtSignature` on a function-call step and rejects the next
request when it does not come back on that call. OpenAI clients keep nothing but the
tool-call id round the loop, so the signature rides inside the id: the gateway stays
stateless and the client sees an ordinary (if long) id it echoes back unchanged.
"""

from __future__ import annotations

import os

_PREFIX = "call_"
_SEPARATOR = "__sig__"
# Google's documented placeholder for a function call whose signature was never seen
# (history written by another model); it passes Gemini 3's signature check.
SKIP_SIGNATURE = "skip_thought_signature_validator"


def new_call_id(signature: str | None = None) -> str:
    base = _PREFIX + os.urandom(12).hex()
    return f"{base}{_SEPARATOR}{signature}" if signature else base


def split_call_id(call_id: str) -> str | None:
    """The thought signature a call id carries, or None."""
    if not call_id.startswith(_PREFIX) or _SEPARATOR not in call_id:
        return None
    return call_id.split(_SEPARATOR, 1)[1] or None
