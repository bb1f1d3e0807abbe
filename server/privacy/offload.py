"""Running a scan without stalling the event loop, and failing closed.

A small body is scanned inline: a thread hop would cost more than the scan. A body above
`privacy.thread_above_bytes` is scanned in a worker thread, so the loop keeps serving
every other client (`/healthz` included) meanwhile. A scan that raises or outlives
`privacy.scan_timeout_s` answers a finding of kind `scan_incomplete`: what could not be
read whole is treated as carrying personal data, never as clean.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from spillgate.errors import EgressRefused
from spillgate.server.privacy.findings import Findings
from spillgate.server.privacy.scanner import Scanner
from spillgate.server.privacy.vault import Vault

T = TypeVar("T")

log = logging.getLogger("spillgate.privacy")

#: The kind a failed or timed-out scan reports.
SCAN_INCOMPLETE = "scan_incomplete"


class ScanRunner:
    def __init__(
        self,
        scanner: Scanner,
        thread_above_bytes: int,
        timeout_s: float,
        on_failure: Callable[[str], None] = lambda where: None,
    ) -> None:
        self.scanner = scanner
        self.thread_above_bytes = thread_above_bytes
        self.timeout_s = timeout_s
        self._on_failure = on_failure
        self._pool: ThreadPoolExecutor | None = None

    async def scan(
        self, read: Callable[[], Any], size: int, where: str, request_id: str
    ) -> Findings:
        """Findings in the value `read()` returns (it may parse: it runs where the scan does).

        `size` is the body's size in bytes; `where` names the check in logs and metrics.
        """
        try:
            return await self._run(lambda: self.scanner.scan(read()), size)
        except Exception as err:  # fail closed: RecursionError, MemoryError, a timeout...
            self._failed(where, request_id, err)
            return Findings({SCAN_INCOMPLETE: 1})

    async def redact(
        self, payload: dict[str, Any], size: int, request_id: str
    ) -> tuple[dict[str, Any], Vault]:
        """`Scanner.redact`, off the loop when large; raises EgressRefused when it fails."""
        try:
            return await self._run(lambda: self.scanner.redact(payload), size)
        except Exception as err:
            self._failed("redact", request_id, err)
            raise EgressRefused((SCAN_INCOMPLETE,)) from None

    async def _run(self, work: Callable[[], T], size: int) -> T:
        if size <= self.thread_above_bytes:
            return work()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(2, thread_name_prefix="spillgate-scan")
        future = asyncio.get_running_loop().run_in_executor(self._pool, work)
        return await asyncio.wait_for(future, self.timeout_s)

    def _failed(self, where: str, request_id: str, err: Exception) -> None:
        self._on_failure(where)
        log.warning(
            "privacy scan did not complete; the request counts as carrying personal data",
            extra={"request_id": request_id, "where": where, "error": type(err).__name__},
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
