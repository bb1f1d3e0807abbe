"""A stream's accounting: the first chunk's time noted through the reply's first-chunk hook
(which still runs the engine's own), every chunk counted, and where the key opted in, the
text kept for the access log."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import orjson
import pytest

from spillgate.protocol import Endpoint, UpstreamReply
from spillgate.server import observe
from spillgate.server.accounting import Accounting
from spillgate.server.budgets import BudgetBook
from spillgate.server.config import TracingConfig
from spillgate.server.keys import ApiKey
from spillgate.server.ledger.store import Store
from spillgate.server.ledger.writer import Ledger
from spillgate.server.observe import Metrics
from spillgate.server.relay import StreamRelay
from spillgate.server.tracing import Tracing

CHUNKS = [b'data: {"choices":[{"delta":{"content":"hello"}}]}\n\n', b"data: [DONE]\n\n"]


class Tokens:
    def add_tokens(self, key: ApiKey, tokens: int) -> None:
        self.tokens = tokens


async def relayed(tmp_path: Path, key: ApiKey) -> tuple[dict[str, Any], list[str]]:
    """One stream relayed and accounted; its access line and the hook calls seen."""
    metrics = Metrics()
    store = Store(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    ledger = Ledger(store, tmp_path / "spool", metrics)
    accounting = Accounting(
        ledger,
        BudgetBook(metrics),
        Tokens(),
        metrics,
        Tracing(TracingConfig()),
        True,
    )
    calls: list[str] = []

    async def chunks() -> Any:
        for chunk in CHUNKS:
            calls.append("chunk")
            yield chunk

    reply = UpstreamReply(200, chunks=chunks(), on_first_chunk=lambda: calls.append("prefilled"))
    st = accounting.start("req-1", Endpoint.CHAT)
    st.key, st.reason = key, "local"
    on_chunk = accounting.stream_opened(st, reply, "local", "local")

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        return {}

    async def send(message: dict[str, Any]) -> None:
        pass

    done = lambda completed: accounting.finish(st, "local", "local", 200, reply, True)  # noqa: E731
    await StreamRelay(reply, [], on_chunk, done)({"type": "http"}, receive, send)
    ledger.spool.close(None)
    store.close()
    assert observe._access_stream is not None
    return orjson.loads(observe._access_stream.getvalue()), calls


@pytest.mark.parametrize("log_prompts", [False, True])
async def test_a_stream_is_timed_counted_and_kept_only_where_the_key_opted_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log_prompts: bool
) -> None:
    monkeypatch.setattr(observe, "_access_stream", io.StringIO())
    line, calls = await relayed(tmp_path, ApiKey("k1", "k", "sk-", log_prompts=log_prompts))
    assert calls == ["chunk", "prefilled", "chunk"], "the engine's hook, once, at the first chunk"
    assert line["ttft_ms"] is not None and line["ttft_ms"] <= line["duration_ms"]
    assert line["completion_tokens"] == 1, "counted from the text, as no usage came"
    if log_prompts:
        assert line["completion"] == b"".join(CHUNKS).decode()
    else:
        assert "completion" not in line
