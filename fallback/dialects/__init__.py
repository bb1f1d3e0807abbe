"""The inbound APIs other than chat (OpenAI's Responses, Anthropic's Messages), through chat.

A dialect reads its API's request as a chat completion request, and writes a chat answer
(whole, or as a stream) back in its API's shape. The server reads a dialect request's
features from its chat form, so one decision serves every API; a cloud target whose
provider does not speak the API natively is sent the chat form (`CloudTarget`), so the
egress guard reads what actually leaves, as for chat.

Each dialect is a package of pure translation (no I/O): `request.py` (to chat),
`response.py` (a whole answer back), `stream.py` (chat SSE back into the API's events).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol

from spillgate.protocol import Endpoint


class DialectStream(Protocol):
    """Turns chat-completion SSE bytes into the inbound API's SSE bytes, as they come.

    A chat error event (`data: {"error": ...}`, what a target writes when the stream
    breaks) becomes the API's own error event, and ends the stream.
    """

    def feed(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes:
        """The chat stream ended: the closing events (maybe none, after an error)."""
        ...


class ToChat(Protocol):
    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The request as a chat completion request (`model` and `stream` kept); raises
        `GatewayError(400)` naming the field, in the API's terms, for what is invalid or
        has no chat form."""
        ...


class FromChat(Protocol):
    def __call__(self, payload: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
        """A `chat.completion` object as the API's answer object, for request `payload`."""
        ...


class StreamFromChat(Protocol):
    def __call__(self, payload: dict[str, Any]) -> DialectStream: ...


@dataclass(frozen=True)
class Dialect:
    endpoint: Endpoint
    to_chat: ToChat
    from_chat: FromChat
    stream_from_chat: StreamFromChat


_MODULES = {
    Endpoint.RESPONSES: "spillgate.fallback.dialects.responses",
    Endpoint.MESSAGES: "spillgate.fallback.dialects.messages",
}


def dialect_for(endpoint: Endpoint) -> Dialect:
    """The dialect of an inbound API (its package's `DIALECT`); KeyError for chat and the
    other OpenAI endpoints, which need none."""
    module = importlib.import_module(_MODULES[endpoint])
    dialect: Dialect = module.DIALECT
    return dialect
