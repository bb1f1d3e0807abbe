"""The operator console at /ui, and the admin JSON it adds (/admin/decisions,
/admin/overview): see docs/operations.md#operator-console."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

from spillgate.server.console.api import live_admin_router
from spillgate.server.console.pages import console_router

if TYPE_CHECKING:
    from spillgate.server.gateway import Gateway


def console(gw: Gateway) -> APIRouter:
    """The console's pages and its admin JSON endpoints, both behind `admin.token`."""
    router = APIRouter()
    router.include_router(live_admin_router(gw))
    router.include_router(console_router(gw))
    return router
