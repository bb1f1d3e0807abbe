"""Nothing sensitive leaves the box: requests generated from OpenAI's own request schemas,
a secret or personal value planted in a random string field in a random form, sent through
one gateway whose routes have only cloud targets (`privacy.policy: keep-local`).

Each provider kind (openai, azure, mistral, openai-compatible, anthropic, gemini) sits
behind a wiretap (tests/support/fakes/wiretap.py) that records every byte the gateway sends it.
The property: no provider ever receives the planted value, in any reading of what it got
(tests/support/privacy_readings.py: the raw body, its JSON strings decoded recursively, JSON
escapes, percent-encoding and HTML references decoded, the URL, the headers; all folded
to NFKC). A refused request (4xx, 429) is fine; a value on the wire is a leak, whatever
the answer. Each request is also sent clean, and a good share of the clean ones must reach
their provider, so a gateway that sends nothing cannot pass.

Requests: `CreateChatCompletionRequest`, `CreateCompletionRequest` and
`CreateEmbeddingRequest` of ../shared/specs/openai-openapi.yaml, generated with
hypothesis-jsonschema (tests/support/openai_requests.py). A planted request is valid against the
untrimmed schema, except tool-call `arguments` sent as an object, a form hostile clients
use. Values and forms: tests/support/privacy_plants.py. Each known leak class (the hostile
tester's requests, and those this suite found) is replayed one by one at the end.

    SPILLGATE_EGRESS_EXAMPLES=50   examples per provider kind and form (default 6)
    SPILLGATE_EGRESS_REPORT=FILE   every case as a JSON line, to read what leaked where
"""

from __future__ import annotations

import copy
import json
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from fakes.openai_server import FakeOpenAIServer
from fakes.wiretap import Wiretap
from harness import FakeProviderProcess, GatewayProcess
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from openai_requests import (
    FOCUS,
    Path,
    field_of,
    fit_for_translation,
    get_at,
    is_arguments,
    json_arguments,
    put_at,
    requests,
    string_leaves,
    validator,
)
from privacy_plants import GUARDED_FORMS, NBSP, NNBSP, Plant, fullwidth, plants
from privacy_readings import Received, find_needles, fold, normalise

from spillgate.server.privacy import Scanner

# -- planting --------------------------------------------------------------------------------

ENDPOINTS = {
    "chat": ("CreateChatCompletionRequest", "/v1/chat/completions"),
    "completions": ("CreateCompletionRequest", "/v1/completions"),
    "embeddings": ("CreateEmbeddingRequest", "/v1/embeddings"),
}
# Each provider kind, its route, and the endpoints its adapter sends (the others are
# refused before anything leaves, which tests nothing).
PROVIDERS = {
    "openai": ("leak-openai", ("chat", "completions", "embeddings")),
    "azure": ("leak-azure", ("chat", "completions", "embeddings")),
    "mistral": ("leak-mistral", ("chat",)),
    "openai-compatible": ("leak-compatible", ("chat", "completions", "embeddings")),
    "anthropic": ("leak-anthropic", ("chat",)),
    "gemini": ("leak-gemini", ("chat",)),
}


@dataclass
class Case:
    provider: str
    endpoint: str
    clean: dict[str, Any]
    planted: dict[str, Any]
    plant: Plant
    field: str
    placement: str
    ascii_body: bool


def _insert(draw: st.DrawFn, old: str, plant: Plant, arguments: bool) -> tuple[Any, str]:
    """The leaf's new value, and how the plant sits in it."""
    if plant.is_json:  # the whole string, or a JSON document written inside prose
        how = draw(st.sampled_from(["json_document", "json_in_text"]))
        if how == "json_document" or arguments:
            return plant.text, "json_document"
        cut = draw(st.integers(0, len(old)))
        return f"{old[:cut]} {plant.text} {old[cut:]}", how
    if arguments:  # still valid JSON, the value \u-escaped or not, or an object outright
        how = draw(st.sampled_from(["json_ascii", "json_utf8", "as_object"]))
        payload = {"q": old, "note": plant.text}
        if how == "as_object":
            return payload, how
        return json.dumps(payload, ensure_ascii=how == "json_ascii"), how
    how = draw(st.sampled_from(["replace", "before", "after", "inside"]))
    if how == "replace":
        return plant.text, how
    if how == "before":
        return f"{plant.text} {old}", how
    if how == "after":
        return f"{old} {plant.text}", how
    cut = draw(st.integers(0, len(old)))
    return f"{old[:cut]} {plant.text} {old[cut:]}", how


def _in_focus(path: Path, focus: str) -> bool:
    if focus == "tool_calls":  # the arguments: JSON text, the tester's favourite
        return "tool_calls" in path and is_arguments(path)
    if focus == "name":
        return path[0] == "messages" and path[-1] == "name"
    return path[0] == focus


@st.composite
def cases(draw: st.DrawFn, provider: str, form: str) -> Case:
    plant = draw(plants(forms=(form,)))
    route, endpoints = PROVIDERS[provider]
    endpoint = draw(st.sampled_from(endpoints))
    schema_name, _ = ENDPOINTS[endpoint]
    focus = draw(st.sampled_from(FOCUS[endpoint]))
    native = provider in ("anthropic", "gemini", "mistral")
    clean = draw(requests(schema_name, focus, native))
    if focus in ("tool_calls", "name"):
        turn = draw(requests("message", focus, native))
        clean["messages"].insert(draw(st.integers(0, len(clean["messages"]))), turn)
    if native:
        fit_for_translation(clean)
    clean["model"] = route
    if endpoint != "embeddings" and draw(st.integers(0, 3)) == 0:
        clean["stream"] = True
    json_arguments(clean)
    leaves = list(string_leaves(clean))
    if not leaves:  # only token ids: the value goes into `user`, a free-text field
        planted = {**clean, "user": plant.text}
        return Case(provider, endpoint, clean, planted, plant, "user", "added", False)
    focused = [p for p in leaves if _in_focus(p, focus)]
    if focused and draw(st.integers(0, 3)) > 0:
        leaves = focused
    fields: dict[str, list[Path]] = {}
    for path in leaves:
        fields.setdefault(field_of(path), []).append(path)
    for _ in range(5):  # a place where the value keeps the request valid
        chosen = draw(st.sampled_from(sorted(fields)))
        path = draw(st.sampled_from(fields[chosen]))
        planted = copy.deepcopy(clean)
        new, placement = _insert(draw, get_at(clean, path), plant, is_arguments(path))
        put_at(planted, path, new)
        if placement == "as_object" or validator(schema_name).is_valid(planted):
            break
    return Case(provider, endpoint, clean, planted, plant, chosen, placement, draw(st.booleans()))


# -- the gateway in front of the wiretapped fakes ------------------------------------------

KEYS = {
    "openai": "sk-egress-openai-0001",
    "azure": "az-egress-key-0002",
    "mistral": "mis-egress-key-0003",
    "openai-compatible": "gsk-egress-compat-0004",
    "anthropic": "sk-ant-egress-fake-0005",
    "gemini": "AIzaEgressGeminiKey-0006",
}
MODELS = {
    "openai": "gpt-4o-mini",
    "azure": "gpt-4o-mini",
    "mistral": "mistral-small-latest",
    "openai-compatible": "llama-3.1-8b-instant",
    "anthropic": "claude-sonnet-4-5",
    "gemini": "gemini-2.5-flash",
}
# What each kind's adapter refuses outright: dropped, so that a request carrying one still
# goes (without it) and tests its other fields.
DROP = {
    "anthropic": ["prediction"],
    "gemini": ["prediction", "functions", "function_call"],
    "mistral": ["user", "metadata", "safety_identifier", "prompt_cache_key", "functions",
                "function_call", "name", "refusal"],
}  # fmt: skip
_QUICK = {
    "retries": {"max_attempts": 1},
    # Refused requests are the point here; the breaker has its own tests.
    "breaker": {"failure_threshold": 1_000_000},
    "timeouts": {"first_byte_s": 10, "total_s": 20},
}


class Cloud:
    def __init__(self, gateway: GatewayProcess, taps: dict[str, Wiretap]) -> None:
        self.gateway = gateway
        self.taps = taps
        self.http = httpx.Client(base_url=gateway.url, timeout=30)

    def send(self, endpoint: str, body: dict[str, Any], ascii_body: bool = False):
        """(the answer, every request each provider received meanwhile)."""
        for tap in self.taps.values():
            tap.reset()
        raw = json.dumps(body, ensure_ascii=True).encode() if ascii_body else orjson.dumps(body)
        answer = self.http.post(
            ENDPOINTS[endpoint][1], content=raw, headers={"content-type": "application/json"}
        )
        received = {kind: [Received(*seen) for seen in tap.seen] for kind, tap in self.taps.items()}
        return answer, received


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    workdir = tmp_path_factory.mktemp("egress")
    openai_like = {
        "openai": FakeOpenAIServer("openai", KEYS["openai"]),
        "azure": FakeOpenAIServer("azure", KEYS["azure"]),
        "mistral": FakeOpenAIServer("mistral", KEYS["mistral"]),
        "openai-compatible": FakeOpenAIServer("openai", KEYS["openai-compatible"]),
    }
    native = {
        "anthropic": FakeProviderProcess("anthropic_server.py", KEYS["anthropic"], workdir),
        "gemini": FakeProviderProcess("gemini_server.py", KEYS["gemini"], workdir),
    }
    taps: dict[str, Wiretap] = {}
    try:
        for kind, fake in openai_like.items():
            fake.start()
            taps[kind] = Wiretap(f"http://127.0.0.1:{fake.port}").start()
        for kind, process in native.items():
            process.start()
            taps[kind] = Wiretap(process.url).start()
        v1 = {"openai", "mistral", "openai-compatible"}
        providers = []
        for kind, tap in taps.items():
            provider: dict[str, Any] = {
                "name": f"p-{kind}",
                "kind": kind,
                "base_url": tap.url + ("/v1" if kind in v1 else ""),
                "api_key": KEYS[kind],
                **_QUICK,
            }
            if kind == "azure":
                provider["options"] = {"api_version": "2024-10-21"}
            provider["drop_params"] = DROP.get(kind, [])
            if kind == "openai-compatible":
                provider["prices"] = {MODELS[kind]: {"input": 0.05, "output": 0.08}}
            providers.append(provider)
        routes = {route: [f"p-{kind}/{MODELS[kind]}"] for kind, (route, _) in PROVIDERS.items()}
        config = {
            "providers": providers,
            "routes": routes,
            "privacy": {"policy": "keep-local"},
        }
        with GatewayProcess(config, workdir) as gateway:
            yield Cloud(gateway, taps)
    finally:
        for tap in taps.values():
            tap.stop()
        for fake in openai_like.values():
            fake.stop()
        for process in native.values():
            process.stop()


def _leaks(received: dict[str, list[Received]], plant: Plant) -> list[str]:
    return [
        f"{kind}: {', '.join(hits)}"
        for kind, requests in received.items()
        for request in requests
        if (hits := find_needles(request, plant.needles))
    ]


# -- the readings find what they should ----------------------------------------------------

CARD = "4111 1111 1111 1111"
EMAIL = "müller@bücher.de"
_CARD_NEEDLES = (fold("4111111111111111"),)
_EMAIL_NEEDLES = (fold(EMAIL),)


def _as_received(body: Any, path: str = "/v1/chat/completions", ascii_body: bool = False):
    raw = json.dumps(body, ensure_ascii=ascii_body).encode()
    return Received("POST", path, "", {"content-type": "application/json"}, raw)


def _chat(content: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": content}]}


@pytest.mark.parametrize("ascii_body", [False, True], ids=["utf8", "ascii"])
@pytest.mark.parametrize(
    ("written", "needles"),
    [
        (f"card {CARD} ok", _CARD_NEEDLES),
        (f"card {CARD.replace(' ', NBSP)}", _CARD_NEEDLES),
        (f"card {CARD.replace(' ', NNBSP)}", _CARD_NEEDLES),
        (f"card {fullwidth(CARD)}", _CARD_NEEDLES),
        ("card 4111-1111\u200b-1111-11\u00ad11", _CARD_NEEDLES),
        (f"write to {EMAIL}", _EMAIL_NEEDLES),
        ("write to MÜLLER\uff20BÜCHER.DE", _EMAIL_NEEDLES),
        ("write to mü\u200bller@bü\u2060cher.de", _EMAIL_NEEDLES),
        ('{"to": "m\\u00fcller@b\\u00fccher.de"}', _EMAIL_NEEDLES),
        ('{"args": "{\\"to\\": \\"m\\\\u00fcller\\\\u0040b\\\\u00fccher.de\\"}"}', _EMAIL_NEEDLES),
        ('see {"to": "m\\u00fcller\\u0040b\\u00fccher.de"} above', _EMAIL_NEEDLES),
        ("mail m%C3%BCller%40b%C3%BCcher.de", _EMAIL_NEEDLES),
        ("mail m&uuml;ller&#64;b&#xfc;cher.de", _EMAIL_NEEDLES),
    ],
    ids=[
        "plain",
        "nbsp",
        "nnbsp",
        "fullwidth",
        "zero-width",
        "email",
        "fullwidth-at",
        "zero-width-email",
        "json-escaped",
        "json-in-json",
        "json-in-prose",
        "percent",
        "html",
    ],
)
def test_the_readings_find_a_value_in_each_form(
    written: str, needles: tuple[str, ...], ascii_body: bool
) -> None:
    in_content = _as_received(_chat(written), ascii_body=ascii_body)
    assert find_needles(in_content, needles)
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": written}}
    in_arguments = {"model": "m", "messages": [{"role": "assistant", "tool_calls": [call]}]}
    assert find_needles(_as_received(in_arguments, ascii_body=ascii_body), needles)


def test_the_readings_look_at_the_url_and_headers_too() -> None:
    path = "/openai/deployments/m%C3%BCller%40b%C3%BCcher.de/chat/completions"
    assert find_needles(Received("POST", path, "", {}, b"{}"), _EMAIL_NEEDLES) == ["url"]
    sent = Received("POST", "/v1/x", "", {"x-user": "4111111111111111"}, b"{}")
    assert find_needles(sent, _CARD_NEEDLES) == ["headers"]


def test_the_readings_find_nothing_in_a_clean_body() -> None:
    clean = _chat("card ending 1111, order 4111 1111, mail müller at bücher dot de")
    assert find_needles(_as_received(clean), _CARD_NEEDLES + _EMAIL_NEEDLES) == []
    other = _chat("card 4111 1111 1111 1112 and mueller@buecher.de")
    assert find_needles(_as_received(other), _CARD_NEEDLES + _EMAIL_NEEDLES) == []


# Fairness: every plant is a value the built-in detector finds once the text is read as the
# egress guard reads it, so a correct guard can pass this suite.
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(plant=plants(GUARDED_FORMS), before=st.sampled_from(["", "see ", "x\n"]))
def test_every_plant_is_found_once_normalised(plant: Plant, before: str) -> None:
    text = before + normalise(plant.decoded()) + " ok"
    assert plant.kind in {span.kind for span in Scanner().spans(text)}, plant


# -- the property ----------------------------------------------------------------------------


@dataclass
class Outcome:
    case: Case
    clean_status: int
    clean_reached: bool
    #: Why the clean request went nowhere: the error message, list indices masked.
    clean_refusal: str
    status: int
    reason: str
    leaked: list[str]


# Per provider kind and form: 396 requests, each sent clean and planted.
EXAMPLES = int(os.environ.get("SPILLGATE_EGRESS_EXAMPLES", "6"))


@pytest.mark.parametrize("form", GUARDED_FORMS)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_planted_value_reaches_a_cloud_provider(cloud: Cloud, provider: str, form: str) -> None:
    outcomes: list[Outcome] = []

    @seed(zlib.crc32(f"{provider}/{form}".encode()))  # reproducible, different per test
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        # Every case runs to the end and is reported; shrinking would resend requests.
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases(provider, form))
    def run(case: Case) -> None:
        clean, received = cloud.send(case.endpoint, case.clean)
        reached = bool(received[case.provider])
        planted, received = cloud.send(case.endpoint, case.planted, case.ascii_body)
        reason = planted.headers.get("x-spillgate-reason", "")
        leaked = _leaks(received, case.plant)
        refusal = "" if reached else _message(clean)
        outcomes.append(
            Outcome(case, clean.status_code, reached, refusal, planted.status_code, reason, leaked)
        )

    run()
    _report(outcomes)
    summary = _summary(outcomes)
    print(f"\n[{provider}, {form}] {summary}")
    _REACHED.setdefault(provider, []).extend(o.clean_reached for o in outcomes)
    assert sum(bool(o.leaked) for o in outcomes) == 0, summary


#: Per provider kind, whether each clean twin reached its provider (filled by the above).
_REACHED: dict[str, list[bool]] = {}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_clean_twins_reached_their_provider(provider: str) -> None:
    """Not vacuous: each route works, and takes a good share of the clean requests (some
    generated requests are refused by the provider's adapter, the planted twin with them).
    Counted over every form of the property test above, which runs first."""
    reached = _REACHED.get(provider)
    if reached is None:
        pytest.skip("runs after test_no_planted_value_reaches_a_cloud_provider")
    assert sum(reached) >= len(reached) // 3, f"{sum(reached)} of {len(reached)} reached"


def _report(outcomes: list[Outcome]) -> None:
    """With SPILLGATE_EGRESS_REPORT=FILE, each case as a JSON line appended to FILE."""
    path = os.environ.get("SPILLGATE_EGRESS_REPORT")
    if not path:
        return
    with open(path, "a") as out:
        for o in outcomes:
            row = {"provider": o.case.provider, "endpoint": o.case.endpoint,
                   "field": o.case.field, "form": o.case.plant.form, "kind": o.case.plant.kind,
                   "placement": o.case.placement, "ascii_body": o.case.ascii_body,
                   "planted": o.case.plant.text,
                   "clean_status": o.clean_status, "clean_reached": o.clean_reached,
                   "clean_refusal": o.clean_refusal,
                   "status": o.status, "reason": o.reason, "leaked": o.leaked}  # fmt: skip
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def _message(answer: httpx.Response) -> str:
    try:
        message = str(answer.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = answer.text
    return f"{answer.status_code} " + re.sub(r"\[\d+\]", "[i]", message)[:110]


def _summary(outcomes: list[Outcome]) -> str:
    leaks = [o for o in outcomes if o.leaked]
    statuses = Counter(o.status for o in outcomes)
    lines = [
        f"{len(outcomes)} requests; {sum(o.clean_reached for o in outcomes)} reached a "
        f"provider when clean; {len(leaks)} leaked when planted",
        "planted answered: " + ", ".join(f"{s} x{n}" for s, n in sorted(statuses.items())),
    ]
    refusals = Counter(o.clean_refusal for o in outcomes if not o.clean_reached)
    if refusals:
        lines.append("clean requests that went nowhere, by answer:")
        lines += [f"  {n} x {message}" for message, n in refusals.most_common(8)]
    if leaks:
        lines.append("leaked: field [form, placement] kind via provider, answer: readings")
        lines += [
            f"  {o.case.field} [{o.case.plant.form}, {o.case.placement}] {o.case.plant.kind} "
            f"via {o.case.provider} ({o.case.endpoint}), {o.status}: {'; '.join(o.leaked)}"
            for o in leaks
        ]
    return "\n".join(lines)


# -- each known leak class, one request per provider kind ---------------------------------


def _call(arguments: Any) -> dict[str, Any]:
    return {
        "id": "call_1",
        "type": "function",
        "function": {"name": "lookup", "arguments": arguments},
    }


_SCHEMA = {"type": "object", "properties": {"to": {"type": "string", "description": "{V}"}}}
_TURNS = [
    {"role": "user", "content": "Look it up"},
    {"role": "assistant", "content": None, "tool_calls": [_call("{V}")]},
    {"role": "tool", "tool_call_id": "call_1", "content": "done"},
]
_HELLO = [{"role": "user", "content": "Hello"}]
_CARD_NBSP, _CARD_NNBSP = CARD.replace(" ", NBSP), CARD.replace(" ", NNBSP)
_JANE = (fold("jane.doe@corp.io"),)
_KEYED = {"type": "object", "properties": {"{V}": {"type": "string"}}}
# (name, endpoint, request with "{V}" where the value goes, the value, its needles): the
# hostile tester's requests, then the classes this suite found.
KNOWN_CASES: list[tuple[str, str, dict[str, Any], Any, tuple[str, ...]]] = [
    ("content-nbsp-card", "chat", {"messages": [{"role": "user", "content": "pay {V}"}]},
     _CARD_NBSP, _CARD_NEEDLES),
    ("content-nnbsp-card", "chat", {"messages": [{"role": "user", "content": "pay {V}"}]},
     _CARD_NNBSP, _CARD_NEEDLES),
    ("content-fullwidth-card", "chat", {"messages": [{"role": "user", "content": "pay {V}"}]},
     fullwidth(CARD), _CARD_NEEDLES),
    ("content-fullwidth-at", "chat", {"messages": [{"role": "user", "content": "mail {V}"}]},
     "jane.doe\uff20corp.io", _JANE),
    ("content-zero-width-email", "chat", {"messages": [{"role": "user", "content": "mail {V}"}]},
     "jane.\u200bdoe@co\u2060rp.io", _JANE),
    ("arguments-escaped-email", "chat", {"messages": _TURNS},
     '{"to": "m\\u00fcller@b\\u00fccher.de"}', _EMAIL_NEEDLES),
    ("arguments-as-object", "chat", {"messages": _TURNS}, {"to": EMAIL}, _EMAIL_NEEDLES),
    ("tool-description", "chat", {"messages": _HELLO, "tools": [{"type": "function",
     "function": {"name": "lookup", "description": "mail {V}"}}]}, EMAIL, _EMAIL_NEEDLES),
    ("tool-parameters", "chat", {"messages": _HELLO, "tools": [{"type": "function",
     "function": {"name": "lookup", "parameters": _SCHEMA}}]}, EMAIL, _EMAIL_NEEDLES),
    ("function-description", "chat", {"messages": _HELLO, "functions": [
     {"name": "lookup", "description": "mail {V}"}]}, EMAIL, _EMAIL_NEEDLES),
    ("response-format-schema", "chat", {"messages": _HELLO, "response_format": {
     "type": "json_schema", "json_schema": {"name": "r", "schema": _SCHEMA}}},
     EMAIL, _EMAIL_NEEDLES),
    ("prediction", "chat", {"messages": _HELLO, "prediction": {"type": "content",
     "content": "card {V}"}}, CARD, _CARD_NEEDLES),
    ("user", "chat", {"messages": _HELLO, "user": "{V}"}, EMAIL, _EMAIL_NEEDLES),
    ("metadata", "chat", {"messages": _HELLO, "metadata": {"owner": "{V}"}},
     EMAIL, _EMAIL_NEEDLES),
    ("message-name", "chat", {"messages": [{"role": "user", "name": "{V}", "content": "Hi"}]},
     EMAIL, _EMAIL_NEEDLES),
    # A JSON document, or JSON escapes, inside a longer string: read only as JSON when
    # the whole string is one.
    ("content-escaped-in-prose", "chat", {"messages": [{"role": "user", "content": "mail {V}"}]},
     "jane.doe\\u0040corp\\u002eio", _JANE),
    ("content-json-in-prose", "chat", {"messages": [{"role": "user", "content": "see {V} ok"}]},
     '{"to": "m\\u00fcller@b\\u00fccher.de"}', _EMAIL_NEEDLES),
    # Object keys (a schema's property names) are read, but not decoded.
    ("schema-key-html", "chat", {"messages": _HELLO, "tools": [{"type": "function",
     "function": {"name": "lookup", "parameters": _KEYED}}]}, "jane.doe&#64;corp.io", _JANE),
    ("schema-key-percent", "chat", {"messages": _HELLO, "response_format": {
     "type": "json_schema", "json_schema": {"name": "r", "schema": _KEYED}}},
     "jane.doe%40corp.io", _JANE),
    ("schema-key-json", "chat", {"messages": _HELLO, "tools": [{"type": "function",
     "function": {"name": "lookup", "parameters": _KEYED}}]},
     '{"to": "jane.doe\\u0040corp.io"}', _JANE),
    ("completions-suffix", "completions", {"prompt": "Hello", "suffix": "mail {V}"},
     EMAIL, _EMAIL_NEEDLES),
    ("completions-stop", "completions", {"prompt": "Hello", "stop": ["{V}"]},
     EMAIL, _EMAIL_NEEDLES),
]  # fmt: skip


def _fill(template: Any, value: Any) -> Any:
    if isinstance(template, dict):
        return {_fill(k, value): _fill(v, value) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, value) for v in template]
    if template == "{V}":
        return value
    if isinstance(template, str) and "{V}" in template:
        return template.replace("{V}", value)
    return template


@pytest.mark.parametrize(
    ("endpoint", "template", "value", "needles"),
    [case[1:] for case in KNOWN_CASES],
    ids=[case[0] for case in KNOWN_CASES],
)
def test_each_known_leak_class_stays_home(
    cloud: Cloud, endpoint: str, template: dict[str, Any], value: Any, needles: tuple[str, ...]
) -> None:
    # The clean twin: the same request with a harmless value (arguments as the string the
    # API asks for), to prove the route takes such requests at all.
    harmless = '{"to": "nobody"}'
    leaked, reached, statuses = [], [], {}
    for provider, (route, endpoints) in PROVIDERS.items():
        if endpoint not in endpoints:
            continue
        _, received = cloud.send(endpoint, {**_fill(template, harmless), "model": route})
        if received[provider]:
            reached.append(provider)
        answer, received = cloud.send(endpoint, {**_fill(template, value), "model": route})
        statuses[provider] = answer.status_code
        plant = Plant("", "", "", needles)
        leaked += [f"{provider} ({answer.status_code}): {hit}" for hit in _leaks(received, plant)]
    assert reached, "no provider took even the clean request: the case proves nothing"
    assert not leaked, f"left the box: {leaked}; answered {statuses}"
