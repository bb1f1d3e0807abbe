"""Personal data and secrets in requests: find them, count them, redact and restore them.

The request reader scans a request (`scan(payload)`: every string, folded and decoded) to
tell the scheduler whether it may leave the box; the egress guard (`egress.py`) scans the
exact body a provider adapter built before it is sent, and refuses it on any finding.
Under the `redact-then-spill` policy `redact(payload)` makes the copy that leaves, and
`vault.restore_json(body)` or `vault.stream_restorer()` put the originals back in the
answer. `build_scanner(PrivacyConfig)` makes a scanner for a configuration; the module
functions use the built-in detectors. See docs/privacy.md.
"""

from __future__ import annotations

from typing import Any

from spillgate.server.privacy.config import (
    CustomPattern,
    PresidioOptions,
    PrivacyConfig,
    build_scanner,
)
from spillgate.server.privacy.detectors import BUILTIN_KINDS
from spillgate.server.privacy.findings import Findings
from spillgate.server.privacy.scanner import Scanner
from spillgate.server.privacy.stream import StreamRestorer
from spillgate.server.privacy.vault import Vault

__all__ = [
    "BUILTIN_KINDS",
    "CustomPattern",
    "Findings",
    "PresidioOptions",
    "PrivacyConfig",
    "Scanner",
    "StreamRestorer",
    "Vault",
    "build_scanner",
    "redact",
    "scan",
]

_DEFAULT = Scanner()


def scan(payload: dict[str, Any]) -> Findings:
    """What the built-in detectors find in a request's text, by kind."""
    return _DEFAULT.scan(payload)


def redact(payload: dict[str, Any]) -> tuple[dict[str, Any], Vault]:
    """A copy of the request with each finding replaced by a placeholder, and its vault."""
    return _DEFAULT.redact(payload)
