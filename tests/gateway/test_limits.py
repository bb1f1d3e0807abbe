"""Rate limits shared by two gateways through Redis, and Redis going away."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import GatewayProcess, free_port, standin_engine_config
from services import ADMIN, ADMIN_TOKEN, REDIS_URL, TcpProxy, create_key, metric, pg_schema, pg_url

__all__ = ["pg_schema"]  # a fixture


def _ask(url: str, key: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "standin-model", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {key}"},
    )


@pytest.fixture
def two_gateways(tmp_path: Path, pg_schema: str) -> Iterator[list[GatewayProcess]]:
    """Two replicas: one PostgreSQL ledger (so one set of keys), one Redis."""
    gateways = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            config = {
                "engines": [standin_engine_config("standin", ["standin-model"])],
                "auth": {"enabled": True, "key_refresh_s": 0.2},
                "admin": {"token": ADMIN_TOKEN},
                "ledger": {"url": pg_url(pg_schema)},
                "limits": {"redis_url": REDIS_URL},
            }
            gateways.append(GatewayProcess(config, tmp_path / name).start())
        yield gateways
    finally:
        for g in gateways:
            g.stop()


def test_an_rpm_limit_holds_across_two_gateways_sharing_redis(
    two_gateways: list[GatewayProcess],
) -> None:
    a, b = two_gateways
    key = create_key(a.url, name=f"shared-{secrets.token_hex(3)}", rpm=6)
    # The other replica learns of the key from the database within key_refresh_s; 401s
    # until then are not counted against the limit.
    first = _ask(b.url, key["key"])
    for _ in range(100):
        if first.status_code != 401:
            break
        time.sleep(0.05)
        first = _ask(b.url, key["key"])
    assert first.status_code == 200
    statuses = [_ask(g.url, key["key"]).status_code for _ in range(5) for g in (a, b)]
    # 6 per minute in all: one already used on b, so 5 more pass, alternating replicas.
    assert statuses.count(200) == 5, statuses
    assert statuses.count(429) == 5
    refused = _ask(a.url, key["key"])
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert "6 requests per minute" in refused.json()["error"]["message"]
    assert metric(a.url, "spillgate_limits_redis_up") == 1


def _limited_gateway(tmp_path: Path, redis_url: str) -> GatewayProcess:
    config = {
        "engines": [standin_engine_config("standin", ["standin-model"])],
        "auth": {"enabled": True},
        "admin": {"token": ADMIN_TOKEN},
        "limits": {"redis_url": redis_url, "redis_timeout_s": 0.2, "redis_retry_s": 0.5},
    }
    return GatewayProcess(config, tmp_path).start()


def test_redis_down_at_start_falls_back_to_in_process_limits(tmp_path: Path) -> None:
    gateway = _limited_gateway(tmp_path, f"redis://127.0.0.1:{free_port()}/0")
    try:
        key = create_key(gateway.url, name="no-redis", rpm=3)
        statuses = [_ask(gateway.url, key["key"]).status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        assert metric(gateway.url, "spillgate_limits_redis_up") == 0
        assert metric(gateway.url, "spillgate_limits_redis_fallbacks_total") >= 1
        assert gateway.logs().count("Redis for shared rate limits is unreachable") == 1
    finally:
        gateway.stop()


def test_redis_going_away_and_coming_back(tmp_path: Path) -> None:
    proxy = TcpProxy(6379).start()
    gateway = _limited_gateway(tmp_path, f"redis://127.0.0.1:{proxy.port}/0")
    try:
        key = create_key(gateway.url, name="flaky-redis", rpm=1000)
        assert _ask(gateway.url, key["key"]).status_code == 200
        assert metric(gateway.url, "spillgate_limits_redis_up") == 1
        proxy.cut()
        assert [_ask(gateway.url, key["key"]).status_code for _ in range(5)] == [200] * 5
        assert metric(gateway.url, "spillgate_limits_redis_up") == 0
        assert gateway.logs().count("Redis for shared rate limits is unreachable") == 1
        proxy.restore()
        time.sleep(0.6)  # past limits.redis_retry_s
        assert _ask(gateway.url, key["key"]).status_code == 200
        assert metric(gateway.url, "spillgate_limits_redis_up") == 1
        assert "rate limits are shared again" in gateway.logs()
    finally:
        gateway.stop()
        proxy.cut()


def test_admin_api_answers_in_openai_error_shape(tmp_path: Path) -> None:
    gateway = _limited_gateway(tmp_path, REDIS_URL)
    try:
        resp = httpx.post(f"{gateway.url}/admin/keys", json={"name": "x", "rpm": -1}, headers=ADMIN)
        assert resp.status_code == 400
        assert set(resp.json()["error"]) == {"message", "type", "param", "code"}
        assert resp.json()["error"]["param"] == "rpm"
    finally:
        gateway.stop()
