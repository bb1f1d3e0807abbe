"""Schemathesis over OpenAI's own OpenAPI description: no 5xx, every answer in OpenAI's shape.

The operations the gateway serves (three_routes.SERVED) of ../shared/specs/openai-openapi.yaml,
requests made from their schemas, valid and not (schemathesis' coverage, examples and fuzzing
phases), sent to one gateway with three routes: a launched stand-in engine, an
OpenAI-compatible fake and an Anthropic fake. Schemathesis draws any `model`; `aim` points
most requests that name one at a route, so the generated bodies reach each target, and
leaves the rest at the name drawn, which nothing serves.

Every answer: not a 5xx; a 4xx is an OpenAI error object (`ErrorResponse`); a 2xx conforms
to the operation's response schema, a stream event by event. The run is derandomised and
bounded (`MAX_EXAMPLES` drawn per operation, on top of the coverage phase's fixed cases) so
`make test` repeats it; the gateway must still be alive and healthy after it.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import jsonschema
import pytest
import schemathesis
from harness import GatewayProcess
from hypothesis import HealthCheck, settings
from schemathesis.core.failures import FailureGroup
from three_routes import ROUTES, SCHEMA, check_answer, three_route_gateway

MAX_EXAMPLES = 200
# None keeps the name schemathesis drew: a model no route serves.
AIMS = (*ROUTES, None)


def aim(case: schemathesis.Case) -> None:
    """Point a case whose `model` is a string at one of the routes, or leave it, chosen from
    the request itself so a run repeats. A `model` of another type is what a case tests."""
    if isinstance(case.body, dict):
        where = case.body
    elif case.path_parameters and "model" in case.path_parameters:
        where = case.path_parameters
    else:
        return
    if not isinstance(where.get("model"), str):
        return
    pick = AIMS[zlib.crc32(repr(sorted(where.items(), key=repr)).encode()) % len(AIMS)]
    if pick is not None:
        where["model"] = pick


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with three_route_gateway(tmp_path_factory.mktemp("fuzz")) as running:
        yield running


@SCHEMA.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)
def test_openai_spec_fuzz(case: schemathesis.Case, gateway: GatewayProcess) -> None:
    aim(case)
    base_url = f"{gateway.url}/v1"
    response = case.call(base_url=base_url, timeout=60)
    try:
        check_answer(case.method, case.path, response)
    except (AssertionError, jsonschema.ValidationError, FailureGroup) as err:
        curl = case.as_curl_command(base_url=base_url)
        raise AssertionError(f"{err}\n\nReproduce with:\n    {curl}") from err
