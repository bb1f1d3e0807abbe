"""The backend protocol: what the server asks of a local engine or a cloud provider.

A backend takes one OpenAI-format request and answers in OpenAI format, as whole JSON bytes
or as server-sent-event bytes. The executor in `spillgate.server` tries the targets of a
decision in order; a backend raises `UpstreamError` only before its first byte.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class Endpoint(StrEnum):
    CHAT = "chat/completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    #: OpenAI's Responses API (Codex-style agents).
    RESPONSES = "responses"
    #: Anthropic's Messages API (Claude-Code-style agents).
    MESSAGES = "messages"


#: The inbound APIs read through the chat format: their features are those of the request
#: as chat, and a provider that does not speak them natively gets it as chat.
DIALECTS = frozenset({Endpoint.RESPONSES, Endpoint.MESSAGES})


class TargetKind(StrEnum):
    LOCAL = "local"
    CLOUD = "cloud"


#: A usage number above this is not a token count (no model reads or writes that many for
#: one request), and would overflow the ledger's integer columns.
MAX_REPORTED_TOKENS = 100_000_000


def reported_tokens(value: Any) -> int | None:
    """A token count as an upstream reported it: 0 when absent, None when it is not a count
    (negative, fractional, not a number, beyond MAX_REPORTED_TOKENS)."""
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= MAX_REPORTED_TOKENS else None


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    #: Fields the upstream reported as something other than a token count (counted as 0).
    invalid: tuple[str, ...] = ()

    @classmethod
    def reported(
        cls, prompt: tuple[Any, ...], completion: tuple[Any, ...], cached: tuple[Any, ...] = ()
    ) -> Usage:
        """Usage from the numbers an upstream sent, each field the sum of its parts (Anthropic
        reports the prompt in three). Never raises, whatever was sent: a field with a part
        that is not a count is 0 and named in `invalid`."""
        counts: list[int] = []
        invalid: list[str] = []
        for name, parts in (
            ("prompt_tokens", prompt),
            ("completion_tokens", completion),
            ("cached_tokens", cached),
        ):
            values = [reported_tokens(part) for part in parts]
            total = sum(v for v in values if v is not None)
            if None in values or total > MAX_REPORTED_TOKENS:
                invalid.append(name)
                total = 0
            counts.append(total)
        prompt_tokens, completion_tokens, cached_tokens = counts
        if cached_tokens > prompt_tokens:  # cached tokens are part of the prompt
            invalid.append("cached_tokens")
            cached_tokens = prompt_tokens
        return cls(prompt_tokens, completion_tokens, cached_tokens, tuple(invalid))

    @classmethod
    def from_openai(cls, usage: Any) -> Usage | None:
        """OpenAI's `usage` object; None when there is none (absent, or not an object)."""
        if not isinstance(usage, dict):
            return None
        details = usage.get("prompt_tokens_details")
        # Details of another type count as an invalid `cached_tokens`.
        cached = details.get("cached_tokens") if isinstance(details, dict) else details
        return cls.reported(
            (usage.get("prompt_tokens"),), (usage.get("completion_tokens"),), (cached,)
        )

    @classmethod
    def from_responses(cls, usage: Any) -> Usage | None:
        """The Responses API's `usage` (`input_tokens`, `output_tokens`)."""
        if not isinstance(usage, dict):
            return None
        details = usage.get("input_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, dict) else details
        return cls.reported((usage.get("input_tokens"),), (usage.get("output_tokens"),), (cached,))

    @classmethod
    def from_anthropic(cls, usage: Any) -> Usage | None:
        """Anthropic's `usage`: cached input is counted apart from `input_tokens`, where
        OpenAI counts it inside."""
        if not isinstance(usage, dict):
            return None
        cached = usage.get("cache_read_input_tokens")
        written = usage.get("cache_creation_input_tokens")
        return cls.reported(
            (usage.get("input_tokens"), cached, written), (usage.get("output_tokens"),), (cached,)
        )


@dataclass(slots=True)
class UpstreamRequest:
    """One client request as a backend sees it.

    `body` is the client's raw JSON; a backend that can forward it untouched should, and
    `payload` is the same request parsed, for backends that must translate it.
    `target_model` is the model name this backend must ask its upstream for.
    """

    endpoint: Endpoint
    model: str
    target_model: str
    body: bytes
    payload: dict[str, Any]
    stream: bool
    request_id: str
    #: The API key's id, for the egress audit (None without auth).
    key_id: str | None = None
    #: Marked on-prem (header, key or model) or found to carry personal data under
    #: keep-local: no cloud target may send it, whatever a decision said.
    private: bool = False
    #: What redaction replaced by placeholders, by kind (None: not redacted).
    redacted: dict[str, int] | None = None


@dataclass(slots=True)
class UpstreamReply:
    """An answer that has started: a status, and either whole bytes or a stream of SSE bytes.

    For a stream, `usage` is filled in once the stream has ended (from its final chunk).
    `cost_usd` is what a priced (cloud) call cost, known at the same time as `usage`.
    `close` releases what a stream holds upstream (connection, queue slot); `aclose()` runs
    it at most once. The server's `StreamRelay` is its one caller, whatever ends the stream.
    `on_first_chunk`, where set, is called by the relay once, when the stream's first chunk
    arrives (a local engine's prefill is done; accounting notes the first byte's time and
    calls the hook it found): a hook, not a wrapper, so no chunk passes through an extra frame.
    """

    status: int
    content_type: str = "application/json"
    body: bytes | None = None
    chunks: AsyncIterator[bytes] | None = None
    usage: Usage | None = None
    cost_usd: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    close: Callable[[], Awaitable[None]] | None = None
    on_first_chunk: Callable[[], None] | None = None

    async def aclose(self) -> None:
        if self.close is not None:
            close, self.close = self.close, None
            await close()


class Backend(Protocol):
    """A place a request can run: a local vLLM engine or a cloud provider target."""

    #: Stable target name, shown in `x-spillgate-route`, metrics and the ledger.
    name: str
    kind: TargetKind

    @property
    def ready(self) -> bool:
        """True when the backend can take requests now."""
        ...

    async def open(self, request: UpstreamRequest) -> UpstreamReply:
        """Send the request; return once the upstream has started answering.

        Raises `spillgate.errors.UpstreamError` when it could not start (connection
        refused, 5xx, 429, timeout before the first byte).
        """
        ...
