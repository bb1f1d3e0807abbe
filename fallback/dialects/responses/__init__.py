"""OpenAI's Responses API (POST /v1/responses) through chat.

`request` checks a Responses request and reads it as chat (its docstring lists what each
field becomes, and what is refused), `items` does its `input` items, `response` writes a
chat answer as a Response object, `stream` a chat stream as the Responses events.
Providers that speak the API themselves (kind `openai`) are sent it as it is instead.
"""

from __future__ import annotations

from spillgate.fallback.dialects import Dialect
from spillgate.fallback.dialects.responses.request import to_chat
from spillgate.fallback.dialects.responses.response import from_chat
from spillgate.fallback.dialects.responses.stream import ResponsesStream
from spillgate.protocol import Endpoint

DIALECT = Dialect(Endpoint.RESPONSES, to_chat, from_chat, ResponsesStream)
