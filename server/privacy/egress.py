"""The egress guard: the last look at a body before it leaves the box for a cloud provider.

`CloudTarget.open` calls the guard with the exact request a provider adapter built, before
a byte of it goes to the socket. The guard reads every string of that body (and the URL),
whatever the provider kind and whatever the inbound API, so a field that nobody listed is
scanned by construction. A body with any finding is not sent: `EgressRefused` tells the
server to decide again with the request kept on the box. A body that leaves gets a record
in the egress audit (what left, never the values).

The ingress scan (requests.py) is the early hint that lets the scheduler keep such a
request local at once; this check is the one that cannot be bypassed.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson

from spillgate.errors import EgressRefused
from spillgate.fallback.adapter import ProviderCall
from spillgate.protocol import UpstreamRequest
from spillgate.server.ledger.egress import EgressRecord
from spillgate.server.observe import Metrics
from spillgate.server.privacy.offload import ScanRunner

log = logging.getLogger("spillgate.privacy")

#: Request fields that never go to a cloud target: they identify the end user or ask the
#: provider to keep the exchange, and change nothing in the answer (docs/privacy.md).
STRIPPED_FIELDS = ("user", "safety_identifier", "metadata", "store")

#: The kind an on-prem mark reports when a body marked so reaches the guard.
ON_PREM = "on_prem"
#: The kind reported when the audit record of a body cannot be written ahead.
AUDIT_UNWRITABLE = "audit_unwritable"


def without_stripped_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """The request as a cloud target may see it: `STRIPPED_FIELDS` removed."""
    if not any(name in payload for name in STRIPPED_FIELDS):
        return payload
    return {k: v for k, v in payload.items() if k not in STRIPPED_FIELDS}


class EgressGuard:
    """Called as `await guard(request, target, kind, call)`; raises `EgressRefused`."""

    def __init__(
        self,
        runner: ScanRunner | None,
        metrics: Metrics,
        record: Callable[[EgressRecord], None] | None = None,
    ) -> None:
        #: None when detection is off (`privacy.detect: false`): on-prem marks still hold.
        self.runner = runner
        self.metrics = metrics
        #: Where an audit record goes (the ledger); set once the ledger is open.
        self.record = record
        self.detector_version = runner.scanner.version if runner is not None else "off"

    async def __call__(
        self, request: UpstreamRequest, target: str, kind: str, call: ProviderCall
    ) -> None:
        if request.private:
            self._refuse(request, target, (ON_PREM,))
        verdict = "unscanned"
        if self.runner is not None:
            body = call.body
            findings = await self.runner.scan(
                lambda: _outbound_texts(call.url, body),
                len(body),
                "egress",
                request.request_id,
            )
            if findings:
                self._refuse(request, target, tuple(sorted(findings.kinds)))
            verdict = "redacted" if request.redacted else "clean"
        if self.record is not None:
            self._audit(request, target, kind, call, verdict)
        self.metrics.egress.labels(target, verdict).inc()

    def _audit(
        self, request: UpstreamRequest, target: str, kind: str, call: ProviderCall, verdict: str
    ) -> None:
        """Written ahead before the body is sent: what cannot be audited does not leave."""
        assert self.record is not None
        try:
            self.record(
                EgressRecord(
                    record_id=uuid.uuid4().hex,
                    request_id=request.request_id,
                    ts=time.time(),
                    key_id=request.key_id,
                    model=request.model,
                    target=target,
                    provider_kind=kind,
                    verdict=verdict,
                    detector_version=self.detector_version,
                    findings=dict(request.redacted or {}),
                    body_sha256=hashlib.sha256(call.body).hexdigest(),
                    body_bytes=len(call.body),
                    onprem_marked=request.private,
                )
            )
        except OSError as err:
            self.metrics.ledger_spool_errors.inc()
            log.error(
                "egress refused: its audit record could not be written ahead",
                extra={"request_id": request.request_id, "route": target, "error": str(err)},
            )
            self._refuse(request, target, (AUDIT_UNWRITABLE,))

    def _refuse(self, request: UpstreamRequest, target: str, kinds: tuple[str, ...]) -> None:
        self.metrics.egress.labels(target, "refused").inc()
        log.warning(
            "egress refused: the body was not sent to the cloud target",
            extra={"request_id": request.request_id, "route": target, "kinds": list(kinds)},
        )
        raise EgressRefused(kinds)


def _outbound_texts(url: str, body: bytes) -> list[Any]:
    """What a provider reads: the body's JSON (or its text, were it not JSON) and the URL."""
    parts = urlsplit(url)
    where = unquote(parts.path + ("?" + parts.query if parts.query else ""))
    try:
        return [orjson.loads(body), where]
    except orjson.JSONDecodeError:
        return [body.decode("utf-8", "replace"), where]
