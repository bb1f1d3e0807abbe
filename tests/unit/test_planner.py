"""The one path from a request to a decision: served (admits, claims, fills the record's
state) and dry (route --explain: changes nothing), in-process against a local engine."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from starlette.datastructures import Headers

from spillgate.errors import GatewayError
from spillgate.models.engine import LocalEngine
from spillgate.protocol import Backend, Endpoint
from spillgate.server.access import Access
from spillgate.server.accounting import RequestState
from spillgate.server.budgets import BudgetBook
from spillgate.server.config import from_dict
from spillgate.server.keys import ApiKey, new_secret
from spillgate.server.limits import Limiter
from spillgate.server.observe import Metrics
from spillgate.server.planner import Planner
from spillgate.server.requests import FeatureReader
from spillgate.server.runtime import RuntimeStore
from spillgate.server.scheduler import Reason
from spillgate.server.tracing import Tracing

BODY = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})


@pytest.fixture
def rig() -> Any:
    engines = [{"name": "local", "url": "http://127.0.0.1:9/v1", "served_model_names": ["m"]}]
    config = from_dict({"engines": engines})
    metrics = Metrics()
    access = Access(True, Limiter(config.limits, metrics), metrics)
    secret, key_hash, prefix = new_secret()
    key = ApiKey("k1", "one", prefix, allowed_models=["m"], rpm=1, budget_day_usd=5.0)
    access.ring.put(key_hash, key)
    engine = LocalEngine("local", "http://127.0.0.1:9/v1", None, served_models=frozenset({"m"}))  # type: ignore[arg-type]
    engine.set_health(True)
    routes: dict[str, list[Backend]] = {"m": [engine]}
    budgets = BudgetBook(metrics)
    planner = Planner(
        Endpoint.CHAT,
        access=access,
        targets_for=routes.get,
        model_ids=lambda: sorted(routes),
        features=FeatureReader(Endpoint.CHAT, config.scheduler, config.privacy, budgets, None),
        monitor=lambda: None,
        runtime=RuntimeStore(config),
        cloud_caps={},
        budgets=budgets,
        tracing=Tracing(config.tracing),
        max_body_bytes=config.server.max_body_bytes,
        default_max_tokens=config.budgets.default_max_tokens,
    )
    headers = Headers({"authorization": f"Bearer {secret}"})
    return planner, headers, key


def state() -> RequestState:
    return RequestState("req-1", Endpoint.CHAT, 0.0, 0.0, "rec-1")


async def test_a_served_plan_decides_and_fills_in_the_request_state(rig: Any) -> None:
    planner, headers, key = rig
    st = state()
    plan = await planner.plan(headers, BODY, st)
    assert plan.key is key and plan.parsed.model == "m"
    assert plan.decision.targets == ("local",) and plan.decision.reason is Reason.LOCAL
    assert [s.name for s in plan.local] == ["local"] and plan.cloud == []
    assert st.key is key and st.model == "m" and st.payload == plan.parsed.payload
    assert st.prompt_tokens == plan.features.prompt_tokens > 0
    assert st.spend is not None, "a key with a cloud budget has its claim"


async def test_a_dry_run_decides_the_same_and_neither_admits_nor_claims(rig: Any) -> None:
    planner, headers, _ = rig
    dry = [await planner.plan(headers, BODY) for _ in range(3)]  # rpm=1: never counted
    assert all(p.decision.targets == ("local",) for p in dry)
    st = state()
    served = await planner.plan(headers, BODY, st)  # the key's one request this minute
    assert served.decision.targets == dry[0].decision.targets
    with pytest.raises(GatewayError) as caught:
        await planner.plan(headers, BODY, state())
    assert caught.value.status == 429 and caught.value.code == "rpm_limit_exceeded"
    assert (await planner.plan(headers, BODY)).decision.targets == ("local",)


async def test_a_served_plan_admits_the_key_before_looking_the_model_up(rig: Any) -> None:
    planner, headers, key = rig
    other = orjson.dumps({"model": "secret-model", "messages": [{"role": "user", "content": "x"}]})
    st = state()
    with pytest.raises(GatewayError) as caught:
        await planner.plan(headers, other, st)
    assert caught.value.status == 403, "a key limited to some models learns nothing of others"
    assert st.key is key and st.model == "secret-model", "the refusal is recorded with both"
    with pytest.raises(GatewayError) as caught:
        await planner.plan(headers, other)
    assert caught.value.status == 404 and "available models: m" in caught.value.message


async def test_the_key_is_checked_before_the_body_is_read(rig: Any) -> None:
    planner, _, _ = rig
    st = state()
    with pytest.raises(GatewayError) as caught:
        await planner.plan(Headers({}), b"not json", st)
    assert caught.value.status == 401 and st.model == ""
