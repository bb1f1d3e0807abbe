"""The gateway's egress guard, for tests that drive a CloudTarget without a gateway."""

from __future__ import annotations

from spillgate.server.observe import Metrics
from spillgate.server.privacy import Scanner
from spillgate.server.privacy.egress import EgressGuard
from spillgate.server.privacy.offload import ScanRunner


def egress_guard() -> EgressGuard:
    """The guard a gateway with the default privacy settings gives its cloud targets."""
    return EgressGuard(ScanRunner(Scanner(), 64 * 1024, 10.0), Metrics())
