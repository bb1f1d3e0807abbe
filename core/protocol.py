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


class TargetKind(StrEnum):
    LOCAL = "local"
    CLOUD = "cloud"


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    @classmethod
    def from_openai(cls, usage: dict[str, Any] | None) -> Usage | None:
        if not isinstance(usage, dict):
            return None
        details = usage.get("prompt_tokens_details") or {}
        return cls(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            cached_tokens=int(details.get("cached_tokens") or 0),
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
    `close` releases the upstream connection; it is called exactly once by the executor.
    """

    status: int
    content_type: str = "application/json"
    body: bytes | None = None
    chunks: AsyncIterator[bytes] | None = None
    usage: Usage | None = None
    cost_usd: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    close: Callable[[], Awaitable[None]] | None = None

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
