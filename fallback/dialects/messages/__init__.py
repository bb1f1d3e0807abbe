"""Anthropic's Messages API (`POST /v1/messages`) read as chat, and chat answers written
back as Messages: `request` (the request, and the check of it), `content` (its turns and
blocks), `response` (a whole answer), `stream` (a streamed one)."""

from __future__ import annotations

from spillgate.fallback.dialects import Dialect
from spillgate.fallback.dialects.messages.request import to_chat
from spillgate.fallback.dialects.messages.response import from_chat
from spillgate.fallback.dialects.messages.stream import MessagesStream
from spillgate.protocol import Endpoint

DIALECT = Dialect(Endpoint.MESSAGES, to_chat, from_chat, MessagesStream)
