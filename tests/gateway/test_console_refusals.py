"""What the console and its admin endpoints refuse.

The decisions and overview endpoints need the admin token and answer bad filters with a
400 naming them. Guessing the admin token through the sign-in form is slowed: after five
wrong tokens from one address, sign-in answers 429 with Retry-After, even for the right
token, until the window has passed. Its own gateway: the lock-out would hold up other
tests that sign in from the same loopback address."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from harness import GatewayProcess, standin_engine_config
from services import ADMIN, ADMIN_TOKEN

from spillgate.server.console.session import MAX_FAILED_SIGNINS


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = {
        "engines": [standin_engine_config("local", ["small"])],
        "admin": {"token": ADMIN_TOKEN},
    }
    with GatewayProcess(config, tmp_path_factory.mktemp("signin")) as gw:
        yield gw


@pytest.mark.parametrize(
    ("path", "headers", "status", "code", "param"),
    [
        ("/admin/decisions", {}, 401, "invalid_admin_token", None),
        ("/admin/overview", {"authorization": "Bearer wrong"}, 401, "invalid_admin_token", None),
        ("/admin/decisions?limit=0", ADMIN, 400, None, "limit"),
        ("/admin/decisions?limit=1001", ADMIN, 400, None, "limit"),
        ("/admin/decisions?limit=ten", ADMIN, 400, None, "limit"),
        ("/admin/decisions/no-such-request", ADMIN, 404, "decision_not_found", None),
    ],
)
def test_the_decision_endpoints_refuse_clearly(
    gateway: GatewayProcess,
    path: str,
    headers: dict[str, str],
    status: int,
    code: str | None,
    param: str | None,
) -> None:
    answer = httpx.get(f"{gateway.url}{path}", headers=headers)
    assert answer.status_code == status
    error = answer.json()["error"]
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    if param is not None:
        assert error["param"] == param


def _sign_in(client: httpx.Client, token: str) -> httpx.Response:
    return client.post("/ui/signin", data={"token": token, "next": "/ui/overview"})


def test_wrong_tokens_lock_the_address_out(gateway: GatewayProcess) -> None:
    with httpx.Client(base_url=gateway.url, headers={"origin": gateway.url}) as client:
        for _ in range(MAX_FAILED_SIGNINS):
            wrong = _sign_in(client, "not-the-admin-token")
            assert wrong.status_code == 401 and "not right" in wrong.text
        locked = _sign_in(client, ADMIN_TOKEN)
        assert locked.status_code == 429
        assert 1 <= int(locked.headers["retry-after"]) <= 60
        assert "Too many wrong tokens" in locked.text
        assert "spillgate_console" not in locked.headers.get("set-cookie", "")
        assert ADMIN_TOKEN not in locked.text
