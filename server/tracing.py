"""OpenTelemetry spans per request (the request, its decision, each upstream call),
exported over OTLP/HTTP when `tracing.otlp_endpoint` is set. Unset, no span is made at all:
every call here is a cheap no-op and the request path pays nothing."""

from __future__ import annotations

import time
from typing import Any

from spillgate.scrub import scrub
from spillgate.server.config import TracingConfig


class Tracing:
    def __init__(self, config: TracingConfig) -> None:
        self.enabled = config.otlp_endpoint is not None
        self._provider: Any = None
        self._tracer: Any = None
        if not self.enabled:
            return
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        assert config.otlp_endpoint is not None
        endpoint = config.otlp_endpoint.rstrip("/") + "/v1/traces"
        # A provider of our own, not the global one: nothing else in the process is traced
        # by accident, and two gateways in one test process stay apart.
        self._provider = TracerProvider(resource=Resource({"service.name": config.service_name}))
        self._provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), schedule_delay_millis=500)
        )
        self._tracer = self._provider.get_tracer("spillgate")

    def request_span(self, name: str, attributes: dict[str, Any]) -> Any:
        if not self.enabled:
            return None
        from opentelemetry.trace import SpanKind

        return self._tracer.start_span(name, kind=SpanKind.SERVER, attributes=attributes)

    def child(
        self, parent: Any, name: str, attributes: dict[str, Any], start_ns: int | None = None
    ) -> Any:
        if parent is None:
            return None
        from opentelemetry.trace import SpanKind, set_span_in_context

        kind = SpanKind.CLIENT if name == "spillgate.upstream" else SpanKind.INTERNAL
        return self._tracer.start_span(
            name,
            context=set_span_in_context(parent),
            kind=kind,
            attributes=attributes,
            start_time=start_ns,
        )

    @staticmethod
    def end(span: Any, attributes: dict[str, Any] | None = None, error: str | None = None) -> None:
        if span is None:
            return
        if attributes:
            span.set_attributes({k: v for k, v in attributes.items() if v is not None})
        if error is not None:
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, scrub(error)))
        span.end()

    @staticmethod
    def now_ns() -> int:
        return time.time_ns()

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()
