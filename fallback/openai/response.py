"""A whole OpenAI-format answer: passed on as the provider's bytes, once checked."""

from __future__ import annotations

from typing import Any

from spillgate.fallback.wire import answer_object, bad_answer
from spillgate.protocol import Endpoint


def parse_answer(provider: str, endpoint: Endpoint, body: bytes) -> dict[str, Any]:
    """A whole answer, checked for the one field a client cannot do without."""
    answer = answer_object(provider, body)
    if endpoint is Endpoint.RESPONSES:
        if answer.get("object") != "response" or not isinstance(answer.get("output"), list):
            raise bad_answer(provider, "not a Responses API response object")
        return answer
    needed = "data" if endpoint is Endpoint.EMBEDDINGS else "choices"
    if not isinstance(answer.get(needed), list):
        raise bad_answer(provider, f"not a valid {endpoint.value} response")
    return answer
