"""A whole OpenAI-format answer: passed on as the provider's bytes, once checked."""

from __future__ import annotations

from typing import Any

import orjson

from spillgate.fallback.wire import bad_answer
from spillgate.protocol import Endpoint


def parse_answer(provider: str, endpoint: Endpoint, body: bytes) -> dict[str, Any]:
    """A whole answer, checked for the one field a client cannot do without."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        answer = None
    needed = "data" if endpoint is Endpoint.EMBEDDINGS else "choices"
    if not isinstance(answer, dict) or not isinstance(answer.get(needed), list):
        raise bad_answer(provider, f"not a valid {endpoint.value} response")
    return answer
