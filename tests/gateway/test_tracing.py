"""OpenTelemetry spans over OTLP/HTTP: a collector on loopback receives the request's span
with its decision and upstream call as children."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import GatewayProcess, standin_engine_config
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from services import wait_for


class Collector:
    """An OTLP/HTTP trace receiver: parses each export as the protobuf the spec defines."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.services: set[str] = set()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                assert self.path == "/v1/traces"
                assert self.headers["content-type"] == "application/x-protobuf"
                export = ExportTraceServiceRequest.FromString(body)
                for resource_spans in export.resource_spans:
                    for attr in resource_spans.resource.attributes:
                        if attr.key == "service.name":
                            collector.services.add(attr.value.string_value)
                    for scope in resource_spans.scope_spans:
                        collector.spans.extend(scope.spans)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def by_name(self, name: str) -> list[Any]:
        return [s for s in self.spans if s.name == name]


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.server.shutdown()


def test_each_request_is_a_span_with_its_decision_and_upstream_call(
    tmp_path: Path, collector: Collector
) -> None:
    config = {
        "engines": [standin_engine_config("standin", ["standin-model"])],
        "tracing": {"otlp_endpoint": collector.url, "service_name": "spillgate-test"},
    }
    with GatewayProcess(config, tmp_path) as gateway:
        resp = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": "standin-model", "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-request-id": "traced-1"},
        )
        assert resp.status_code == 200
        wait_for(lambda: collector.by_name("POST /v1/chat/completions"), what="request span")
        wait_for(lambda: collector.by_name("spillgate.upstream"), what="upstream span")
    (root,) = collector.by_name("POST /v1/chat/completions")
    (decide,) = collector.by_name("spillgate.decide")
    (upstream,) = collector.by_name("spillgate.upstream")
    assert collector.services == {"spillgate-test"}
    assert decide.parent_span_id == root.span_id == upstream.parent_span_id
    assert decide.trace_id == root.trace_id == upstream.trace_id
    attrs = {a.key: a.value for a in root.attributes}
    assert attrs["spillgate.request_id"].string_value == "traced-1"
    assert attrs["spillgate.route"].string_value == "standin"
    assert attrs["spillgate.reason"].string_value == "local"
    assert attrs["http.response.status_code"].int_value == 200
    up = {a.key: a.value for a in upstream.attributes}
    assert up["spillgate.target"].string_value == "standin"
    assert root.start_time_unix_nano <= upstream.start_time_unix_nano
    assert upstream.end_time_unix_nano <= root.end_time_unix_nano
