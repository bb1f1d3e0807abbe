"""A Responses API stream from OpenAI itself: passed on as the provider's bytes.

The client speaks this API, so nothing is rewritten: not the events, not a provider
`error` event (the client's SDK reads it as OpenAI wrote it). Only watched: the usage in
`response.completed` (or `response.incomplete`/`response.failed`), and whether one of the
stream's last events came at all, since a stream that simply stops is a cut the client
must be told about.
"""

from __future__ import annotations

import re

from spillgate.fallback.wire import stream_cut
from spillgate.protocol import Endpoint, Usage
from spillgate.sse import EventSplitter, UsageTap, next_sequence_number

#: The events after which a Responses stream has nothing more to say.
_LAST_EVENT = re.compile(
    rb'^(event: ?(response\.(completed|incomplete|failed)|error)\r?$|data: ?\{"type": ?"error")',
    re.M,
)


class ResponsesPassThrough:
    """A `StreamTranslator` that hands on the provider's Responses events as they come."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self._tap = UsageTap(endpoint=Endpoint.RESPONSES)
        self._events = EventSplitter()
        self._ended = False
        #: The number of an event added after the provider's (the error of a cut stream).
        self.next_sequence = 0

    @property
    def usage(self) -> Usage | None:
        return self._tap.usage

    def feed(self, data: bytes) -> bytes:
        whole = self._events.cut(data)
        if whole:
            self.next_sequence = next_sequence_number(whole, self.next_sequence)
            if not self._ended and _LAST_EVENT.search(whole):
                self._ended = True
        return self._tap.feed(data)

    def finish(self) -> bytes:
        if not self._ended:
            raise stream_cut(self.provider, "its last event (response.completed)")
        return b""
