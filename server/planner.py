"""From a client's request to a routing decision: the one path every request takes.

authenticate → read and parse → candidates (404 for an unknown model) → features → exact
prompt tokens (the engine's tokenizer, where the estimate cannot say it fits) → runtime
views → decide. The endpoint handler runs it for every request; `route --explain` runs the
same path dry, so what it shows is what a request would get.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.datastructures import Headers
from starlette.requests import Request

from spillgate.errors import GatewayError
from spillgate.models.engine import LocalEngine
from spillgate.protocol import Backend, Endpoint
from spillgate.server.access import Access, credential
from spillgate.server.accounting import RequestState
from spillgate.server.admission import ANONYMOUS_KEY
from spillgate.server.budgets import BudgetBook, OutputAsked
from spillgate.server.features import prompt_token_bounds, text_bytes
from spillgate.server.keys import ApiKey, forbid_model
from spillgate.server.monitor import EngineMonitor
from spillgate.server.requests import FeatureReader, ParsedRequest, json_object, parse, read_body
from spillgate.server.runtime import RuntimeStore
from spillgate.server.scheduler import (
    Capabilities,
    CloudState,
    Decision,
    LocalState,
    Privacy,
    RequestFeatures,
    decide,
)
from spillgate.server.tracing import Tracing


def unknown_model(model: str, served: list[str]) -> GatewayError:
    return GatewayError(
        404,
        f"model {model!r} is not served here; available models: {', '.join(served) or 'none'}",
        code="model_not_found",
        param="model",
    )


@dataclass(slots=True)
class Plan:
    """What the path found: who asked, for what, where it may go, and the decision."""

    key: ApiKey | None
    parsed: ParsedRequest
    candidates: list[Backend]
    features: RequestFeatures
    decision: Decision
    #: The snapshot the decision read (shown by `route --explain`).
    local: list[LocalState]
    cloud: list[CloudState]
    #: The request's `spillgate.decide` span, open until the handler has a target.
    decide_span: Any = None


class Planner:
    """Runs the path for one endpoint (`plan`), and decides again on later facts (`decide`)."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        access: Access,
        targets_for: Callable[[str], list[Backend] | None],
        model_ids: Callable[[], list[str]],
        features: FeatureReader,
        monitor: Callable[[], EngineMonitor | None],
        runtime: RuntimeStore,
        cloud_caps: dict[str, Capabilities],
        budgets: BudgetBook,
        tracing: Tracing,
        max_body_bytes: int,
        default_max_tokens: int,
    ) -> None:
        """`monitor`: the engine monitor once the gateway has started it (exact counts);
        `cloud_caps` is read live, as the gateway fills it in at start."""
        self.endpoint = endpoint
        self.access = access
        self.targets_for = targets_for
        self.model_ids = model_ids
        self.features = features
        self.monitor = monitor
        self.runtime = runtime
        #: The scheduler's settings `decide` reads, made once (the config does not change).
        self.tuning = runtime.config.scheduler.tuning
        self.cloud_caps = cloud_caps
        self.budgets = budgets
        self.tracing = tracing
        self.max_body_bytes = max_body_bytes
        self.default_max_tokens = default_max_tokens

    async def plan(
        self, headers: Headers, body: Request | bytes, st: RequestState | None = None
    ) -> Plan:
        """The decision for a request, and what led to it.

        `body`: the client's request, read (within server.max_body_bytes) only once its
        key has passed, or bytes already read. With `st`, a request being served: `st` is
        filled in as the path goes (a refusal midway is recorded with what was known), the
        key is admitted for the model and its rate (403, 429) before anything costly, the
        decide span opens, and the key's cloud budget is claimed. Without it, a dry run
        that changes nothing (`route --explain`).
        """
        key = self.access.authenticate(credential(headers))
        if st is not None:
            st.key = key
        raw = body if isinstance(body, bytes) else await read_body(body, self.max_body_bytes)
        parsed = parse(raw, self.endpoint)
        span = None
        if st is not None:
            st.model, st.payload = parsed.model, parsed.payload
            await self.access.admit(key, parsed.model)
        candidates = self.candidates(parsed.model)
        if st is not None:
            span = self.tracing.child(st.span, "spillgate.decide", {})
        request_id = st.request_id if st is not None else ""
        features = await self.features.of(parsed, headers, candidates, key, request_id)
        endpoint, payload = parsed.as_chat(self.endpoint)
        monitor = self.monitor()
        if monitor is not None:
            local_engines = [c for c in candidates if isinstance(c, LocalEngine)]
            features = await monitor.exact_prompt_tokens(features, endpoint, payload, local_engines)
        if st is not None:
            st.prompt_tokens = features.prompt_tokens
            st.spend = self.budgets.claim(
                key,
                features.prompt_tokens_max,
                OutputAsked.of(payload, endpoint),
                self.default_max_tokens,
            )
        queue_key = key.id if key is not None else ANONYMOUS_KEY
        local, cloud = self.runtime.views(candidates, self.cloud_caps, queue_key)
        decision = decide(features, local, cloud, self.tuning)
        if st is not None:
            self._note_private(features, decision, candidates, queue_key)
        return Plan(key, parsed, candidates, features, decision, local, cloud, span)

    def _note_private(
        self,
        features: RequestFeatures,
        decision: Decision,
        candidates: list[Backend],
        queue_key: str,
    ) -> None:
        """A request that may not spill, headed for a local engine, counts toward that
        engine's measured private arrivals (which size its reserve)."""
        if features.privacy is not Privacy.LOCAL_ONLY and features.cloud_budget_ok:
            return
        first = decision.targets[0] if decision.targets else None
        engine = next(
            (c for c in candidates if isinstance(c, LocalEngine) and c.name == first), None
        )
        if engine is not None:
            self.runtime.engine(engine).note_private_arrival(time.monotonic(), queue_key)

    async def count_tokens(self, headers: Headers, request: Request) -> int:
        """Anthropic's `/v1/messages/count_tokens`: the prompt's tokens, counted by a local
        engine's tokenizer where one serves the model, else the gateway's estimate. Nothing
        is sent to a cloud provider, so nothing private can leave by it."""
        key = self.access.authenticate(credential(headers))
        raw = await read_body(request, self.max_body_bytes)
        payload = json_object(raw)
        # count_tokens takes a Messages request without `max_tokens`.
        asked = {"max_tokens": 1, **payload}
        parsed = parse(orjson.dumps(asked), self.endpoint)
        if key is not None and not key.may_use(parsed.model):
            raise forbid_model(key, parsed.model)
        candidates = self.candidates(parsed.model)
        endpoint, chat = parsed.as_chat(self.endpoint)
        monitor = self.monitor()
        if monitor is not None:
            local_engines = [c for c in candidates if isinstance(c, LocalEngine)]
            counted = await monitor.count_prompt(endpoint, chat, local_engines)
            if counted is not None:
                return counted
        size, messages, _images, _files = text_bytes(chat, endpoint)
        return prompt_token_bounds(size, messages)[0]

    def candidates(self, model: str) -> list[Backend]:
        """The targets of `model`'s route; 404 naming the models there are."""
        candidates = self.targets_for(model)
        if candidates is None:
            raise unknown_model(model, self.model_ids())
        return candidates

    def decide(self, features: RequestFeatures, candidates: list[Backend]) -> Decision:
        """Decide on the targets as they are now (after a wait, or an egress refusal)."""
        local, cloud = self.runtime.views(candidates, self.cloud_caps)
        return decide(features, local, cloud, self.tuning)
