"""The egress guard on its own: the body each provider adapter builds, read before it leaves."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import aiohttp
import orjson
import pytest

from spillgate.errors import EgressRefused
from spillgate.fallback.adapter import CloudTarget, ProviderCall, ProviderSettings
from spillgate.fallback.registry import create_adapter
from spillgate.protocol import Endpoint, UpstreamRequest
from spillgate.server.ledger.egress import EgressRecord
from spillgate.server.observe import Metrics
from spillgate.server.privacy import Findings, Scanner
from spillgate.server.privacy.egress import EgressGuard
from spillgate.server.privacy.offload import SCAN_INCOMPLETE, ScanRunner

KINDS = ["openai", "azure", "mistral", "openai-compatible", "anthropic", "gemini"]


def adapter_for(kind: str) -> Any:
    options = {"api_version": "2024-10-21"} if kind == "azure" else {}
    return create_adapter(
        ProviderSettings(kind, kind, "http://127.0.0.1:9", api_key="sk-test", options=options)
    )


def request(payload: dict[str, Any], **fields: Any) -> UpstreamRequest:
    return UpstreamRequest(
        Endpoint.CHAT, "route", "model-x", orjson.dumps(payload), payload, False, "req-1", **fields
    )


def guard(records: list[EgressRecord] | None = None, **runner: Any) -> EgressGuard:
    scans = ScanRunner(Scanner(), runner.get("thread_above_bytes", 1 << 16),
                       runner.get("timeout_s", 10.0))  # fmt: skip
    return EgressGuard(scans, Metrics(), records.append if records is not None else None)


QUESTION = {"model": "route", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}


@pytest.mark.parametrize("kind", KINDS)
async def test_a_finding_in_any_field_of_the_built_body_is_refused(kind: str) -> None:
    # A field the ingress never had to know about: the tool's parameter schema.
    payload = {
        **QUESTION,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "properties": {"to": {"type": "string",
                                                    "default": "jane.doe@corp.io"}}}}}],
    }  # fmt: skip
    call = adapter_for(kind).build(request(payload))
    assert b"jane.doe@corp.io" in call.body  # the adapter does carry it...
    records: list[EgressRecord] = []
    with pytest.raises(EgressRefused) as refused:
        await guard(records)(request(payload), f"{kind}/x", kind, call)
    assert refused.value.kinds == ("email",)
    assert "jane.doe" not in refused.value.message
    assert records == []  # ...and nothing is recorded as having left


@pytest.mark.parametrize("kind", KINDS)
async def test_a_clean_body_leaves_with_an_audit_record(kind: str) -> None:
    call = adapter_for(kind).build(request(QUESTION))
    records: list[EgressRecord] = []
    await guard(records)(request(QUESTION, key_id="key-1"), f"{kind}/x", kind, call)
    [record] = records
    assert (record.target, record.provider_kind, record.verdict) == (f"{kind}/x", kind, "clean")
    assert record.body_sha256 == hashlib.sha256(call.body).hexdigest()
    assert record.body_bytes == len(call.body)
    assert (record.key_id, record.request_id, record.onprem_marked) == ("key-1", "req-1", False)
    assert record.detector_version == Scanner().version
    assert record.findings == {}


async def test_a_redacted_body_is_recorded_with_what_was_replaced() -> None:
    payload = {**QUESTION, "messages": [{"role": "user", "content": "Mail <EMAIL_1> twice"}]}
    call = adapter_for("openai").build(request(payload))
    records: list[EgressRecord] = []
    await guard(records)(request(payload, redacted={"email": 2}), "o/x", "openai", call)
    assert (records[0].verdict, records[0].findings) == ("redacted", {"email": 2})


async def test_a_request_marked_on_prem_never_leaves_even_clean() -> None:
    call = adapter_for("openai").build(request(QUESTION))
    with pytest.raises(EgressRefused) as refused:
        await guard([])(request(QUESTION, private=True), "o/x", "openai", call)
    assert refused.value.kinds == ("on_prem",)


async def test_the_url_is_read_too() -> None:
    call = ProviderCall("http://127.0.0.1:9/v1/models/jane.doe%40corp.io", {}, b"{}")
    with pytest.raises(EgressRefused):
        await guard()(request(QUESTION), "o/x", "openai", call)


async def test_a_body_whose_audit_record_cannot_be_written_does_not_leave() -> None:
    def full_disk(record: EgressRecord) -> None:
        raise OSError(28, "No space left on device")

    call = adapter_for("openai").build(request(QUESTION))
    runner = ScanRunner(Scanner(), 1 << 16, 10.0)
    with pytest.raises(EgressRefused) as refused:
        await EgressGuard(runner, Metrics(), full_disk)(request(QUESTION), "o/x", "openai", call)
    assert refused.value.kinds == ("audit_unwritable",)


class _Broken(Scanner):
    def scan(self, value: Any) -> Findings:
        raise RecursionError("too deep")


class _Slow(Scanner):
    def scan(self, value: Any) -> Findings:
        time.sleep(0.5)
        return Findings()


@pytest.mark.parametrize(
    ("scanner", "thread_above_bytes"), [(_Broken(), 1 << 16), (_Slow(), 0)], ids=["error", "late"]
)
async def test_a_scan_that_fails_or_runs_late_counts_as_a_finding(
    scanner: Scanner, thread_above_bytes: int
) -> None:
    failures: list[str] = []
    runner = ScanRunner(scanner, thread_above_bytes, 0.05, failures.append)
    call = adapter_for("openai").build(request(QUESTION))
    with pytest.raises(EgressRefused) as refused:
        await EgressGuard(runner, Metrics())(request(QUESTION), "o/x", "openai", call)
    assert refused.value.kinds == (SCAN_INCOMPLETE,)
    assert failures == ["egress"]
    runner.close()


async def test_a_refused_body_never_reaches_the_socket() -> None:
    """Port 9 (discard) has no listener: a call that was made would fail as unreachable."""
    payload = {**QUESTION, "stop": ["4111 1111 1111 1111"]}
    async with aiohttp.ClientSession() as session:
        target = CloudTarget("x", adapter_for("openai"), session, egress=guard())
        with pytest.raises(EgressRefused):
            await target.open(request(payload))
        assert target.breaker.allows_request()
