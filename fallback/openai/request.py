"""The OpenAI request as the provider gets it: the client's, with three changes."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from spillgate.protocol import Endpoint, UpstreamRequest
from spillgate.sse import with_usage_requested


def openai_payload(request: UpstreamRequest, drop_params: Collection[str]) -> dict[str, Any]:
    """The provider's model name, `drop_params` dropped, and the usage chunk asked for."""
    payload = {**request.payload, "model": request.target_model}
    for name in drop_params:
        payload.pop(name, None)
    # A Responses stream reports its usage in `response.completed` unasked.
    if (
        request.stream
        and request.endpoint in (Endpoint.CHAT, Endpoint.COMPLETIONS)
        and "stream_options" not in drop_params
    ):
        payload = with_usage_requested(payload)
    return payload
