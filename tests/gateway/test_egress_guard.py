"""The privacy boundary at the egress: what a cloud provider receives never carries a finding.

One gateway with cloud-only routes (an OpenAI-compatible, an Anthropic and a Gemini
provider, each a recording fake on loopback) and the `keep-local` policy. Each leak class
the hostile review found is sent to each kind; the fakes record what reaches them, and
the test reads every string they received, folded as the detectors fold it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from fakes.openai_server import FakeOpenAIServer, Fault
from harness import FakeProviderProcess, GatewayProcess
from services import metric

from spillgate.server.privacy.normalise import fold
from spillgate.server.privacy.payload import texts

KEYS = {"openai": "sk-egress-provider-key-0042", "anthropic": "sk-ant-egress-5f4e3d2c1b0a9988",
        "gemini": "AIzaEgressGeminiKey-77665544"}  # fmt: skip
ROUTES = {"openai": "oai-route", "anthropic": "claude-route", "gemini": "gemini-route"}
TARGETS = {"openai": "oai/gpt-4o-mini", "anthropic": "claude/claude-sonnet-4-5",
           "gemini": "gem/gemini-2.5-flash"}  # fmt: skip
ADMIN = "egress-admin-token-31415"


@dataclass
class Cloud:
    gateway: GatewayProcess
    openai: FakeOpenAIServer
    anthropic: FakeProviderProcess
    gemini: FakeProviderProcess

    def received(self, kind: str) -> list[Any]:
        if kind == "openai":
            return [r.body for r in self.openai.requests] + list(self.openai.rejected)
        fake = self.anthropic if kind == "anthropic" else self.gemini
        return fake.received()

    def reset(self) -> None:
        self.openai.reset()
        self.anthropic.reset()
        self.gemini.reset()


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    workdir = tmp_path_factory.mktemp("egress")
    oai = FakeOpenAIServer("openai", KEYS["openai"]).start()
    claude = FakeProviderProcess("anthropic_server.py", KEYS["anthropic"], workdir)
    gem = FakeProviderProcess("gemini_server.py", KEYS["gemini"], workdir)
    config = {
        "providers": [
            {"name": "oai", "kind": "openai-compatible", "base_url": oai.base_url,
             "api_key": KEYS["openai"], "retries": {"max_attempts": 1}},
            {"name": "claude", "kind": "anthropic", "api_key": KEYS["anthropic"],
             "retries": {"max_attempts": 1}},
            {"name": "gem", "kind": "gemini", "api_key": KEYS["gemini"],
             "retries": {"max_attempts": 1}},
        ],
        "routes": {**{ROUTES[kind]: [TARGETS[kind]] for kind in ROUTES},
                   "failover": [TARGETS["openai"], TARGETS["anthropic"]]},
        "privacy": {"policy": "keep-local"},
        "admin": {"token": ADMIN},
        "server": {"max_body_bytes": 16 * 1024 * 1024},  # room for the hostile body
    }  # fmt: skip
    try:
        claude.start()
        gem.start()
        config["providers"][1]["base_url"] = claude.url
        config["providers"][2]["base_url"] = gem.url
        with GatewayProcess(config, workdir) as gateway:
            yield Cloud(gateway, oai, claude, gem)
    finally:
        oai.stop()
        claude.stop()
        gem.stop()


@pytest.fixture(autouse=True)
def _fresh(cloud: Cloud) -> None:
    cloud.reset()


def readings(bodies: list[Any]) -> str:
    """Everything the fakes received, as a provider could read it: every string (JSON in
    strings decoded), folded as the detectors fold it, separators removed."""
    plain, decoded = texts(bodies)
    folded = fold("\n".join(plain + decoded)).text
    return folded + "\n" + re.sub(r"[\s./-]", "", folded)


def chat(route: str, content: str = "Say hello.", **fields: Any) -> dict[str, Any]:
    return {"model": route, "messages": [{"role": "user", "content": content}], **fields}


def _tool(description: str = "Send a message.", parameters: Any = None) -> dict[str, Any]:
    schema = parameters or {"type": "object", "properties": {"to": {"type": "string"}}}
    function = {"name": "send", "description": description, "parameters": schema}
    return {"type": "function", "function": function}


def _tool_turns(arguments: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "Send it."},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "send", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sent"},
    ]  # fmt: skip


# (name, the request's fields after model, what must never arrive in any reading)
LEAKS: list[tuple[str, dict[str, Any], str]] = [
    ("card grouped with no-break spaces",
     {"messages": [{"role": "user", "content": "Card 4111\u00a01111\u00a01111\u00a01111"}]},
     "4111111111111111"),
    ("IBAN grouped with narrow no-break spaces",
     {"messages": [{"role": "user",
                    "content": "IBAN DE89\u202f3704\u202f0044\u202f0532\u202f0130\u202f00"}]},
     "DE89370400440532013000"),
    ("full-width digits",
     {"messages": [{"role": "user",
                    "content": "SSN \uff15\uff13\uff16-\uff12\uff12-\uff11\uff12\uff13\uff14"}]},
     "536221234"),
    ("full-width at sign",
     {"messages": [{"role": "user", "content": "Write to jane.doe\uff20corp.io"}]},
     "jane.doe@corp.io"),
    ("zero-width characters inside an email",
     {"messages": [{"role": "user", "content": "Write to ja\u200bne.d\u2060oe@co\u200drp.io"}]},
     "jane.doe@corp.io"),
    ("escaped non-ASCII email in tool-call arguments",
     {"messages": _tool_turns('{"to": "m\\u00fcller@b\\u00fccher.de"}'), "tools": [_tool()]},
     "müller@bücher.de"),
    ("tool description",
     {"messages": [{"role": "user", "content": "hi"}],
      "tools": [_tool("Escalate to ops.lead@corp.io when stuck.")]},
     "ops.lead@corp.io"),
    ("tool parameter schema",
     {"messages": [{"role": "user", "content": "hi"}],
      "tools": [_tool(parameters={"type": "object", "properties": {"to": {
          "type": "string", "description": "default recipient ops.lead@corp.io"}}})]},
     "ops.lead@corp.io"),
    ("response_format schema",
     {"messages": [{"role": "user", "content": "hi"}],
      "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {
          "type": "object", "description": "key AKIAIOSFODNN7EXAMPLF"}}}},
     "AKIAIOSFODNN7EXAMPLF"),
    ("prediction content",
     {"messages": [{"role": "user", "content": "hi"}],
      "prediction": {"type": "content", "content": "call +44 20 7946 0958"}},
     "442079460958"),
    ("message name",
     {"messages": [{"role": "user", "name": "jane.doe@corp.io", "content": "hi"}]},
     "jane.doe@corp.io"),
    ("percent-encoded email",
     {"messages": [{"role": "user", "content": "see https://x.io/?u=jane.doe%40corp.io"}]},
     "jane.doe@corp.io"),
    ("HTML-escaped email in a tool description",
     {"messages": [{"role": "user", "content": "hi"}],
      "tools": [_tool("escalate to ops.lead&#64;corp.io")]},
     "ops.lead@corp.io"),
    ("stop sequence",
     {"messages": [{"role": "user", "content": "hi"}], "stop": ["DE89 3704 0044 0532 0130 00"]},
     "DE89370400440532013000"),
]  # fmt: skip


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
@pytest.mark.parametrize(("name", "fields", "needle"), LEAKS, ids=[c[0] for c in LEAKS])
def test_no_leak_class_reaches_any_provider_kind(
    cloud: Cloud, kind: str, name: str, fields: dict[str, Any], needle: str
) -> None:
    reply = httpx.post(
        f"{cloud.gateway.url}/v1/chat/completions",
        json={"model": ROUTES[kind], **fields},
        timeout=30,
    )
    # The route has no local engine: the request is refused, clearly, and sent nowhere.
    assert reply.status_code in (400, 429), reply.text
    assert "leave the box" in reply.json()["error"]["message"]
    assert needle not in readings(cloud.received(kind))


def test_completions_suffix_and_stop_are_read(cloud: Cloud) -> None:
    for fields in (
        {"prompt": "def f():", "suffix": "# owner: jane.doe@corp.io"},
        {"prompt": "Count:", "stop": ["jane.doe@corp.io"]},
    ):
        reply = httpx.post(
            f"{cloud.gateway.url}/v1/completions",
            json={"model": ROUTES["openai"], **fields},
            timeout=30,
        )
        assert reply.status_code == 400, reply.text
    assert "jane.doe@corp.io" not in readings(cloud.received("openai"))


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
def test_end_user_fields_are_stripped_not_sent(cloud: Cloud, kind: str) -> None:
    """`user`, `metadata` and `store` identify the end user or ask the provider to keep
    the exchange: they never go to a cloud target, and the request itself still may."""
    fields = {"user": "jane.doe@corp.io", "metadata": {"customer": "DE89 3704 0044 0532 0130 00"},
              "store": True, "safety_identifier": "jane.doe@corp.io"}  # fmt: skip
    reply = httpx.post(
        f"{cloud.gateway.url}/v1/chat/completions", json=chat(ROUTES[kind], **fields), timeout=30
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-spillgate-route"] == TARGETS[kind]
    received = cloud.received(kind)
    assert len(received) == 1
    seen = readings(received)
    assert "jane.doe@corp.io" not in seen and "DE89370400440532013000" not in seen
    if kind == "openai":
        assert not {"user", "metadata", "store", "safety_identifier"} & set(received[0])


def test_each_cloud_target_of_a_failover_gets_its_own_model_and_a_stripped_body(
    cloud: Cloud,
) -> None:
    cloud.openai.fail_next(Fault(status=500))
    reply = httpx.post(
        f"{cloud.gateway.url}/v1/chat/completions",
        json=chat("failover", user="jane.doe@corp.io"),
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-spillgate-route"] == TARGETS["anthropic"]
    [sent] = cloud.received("anthropic")
    assert sent["body"]["model"] == "claude-sonnet-4-5"
    assert "jane.doe@corp.io" not in readings([*cloud.received("openai"), sent])


def test_arguments_given_as_an_object_are_refused(cloud: Cloud) -> None:
    turns = _tool_turns("{}")
    turns[1]["tool_calls"][0]["function"]["arguments"] = {"to": "jane.doe@corp.io"}
    reply = httpx.post(
        f"{cloud.gateway.url}/v1/chat/completions",
        json={"model": ROUTES["anthropic"], "messages": turns, "tools": [_tool()]},
        timeout=30,
    )
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == "messages[1].tool_calls[0].function.arguments"
    assert "must be a string" in error["message"]
    assert "jane.doe" not in reply.text
    assert cloud.received("anthropic") == []


def test_what_only_the_built_body_shows_is_refused_at_the_egress(cloud: Cloud) -> None:
    """Gemini's adapter joins a tool result's text parts into one string: a card split
    across two parts is whole only in the body the adapter built. The ingress scan cannot
    see it; the egress guard does, and the request is decided again, kept home."""
    before = _refused(cloud, "gemini")
    turns = _tool_turns('{"to": "bank"}')
    turns[2]["content"] = [{"type": "text", "text": "4111 1111 "},
                           {"type": "text", "text": "1111 1111"}]  # fmt: skip
    reply = httpx.post(
        f"{cloud.gateway.url}/v1/chat/completions",
        json={"model": ROUTES["gemini"], "messages": turns, "tools": [_tool()]},
        timeout=30,
    )
    assert reply.status_code == 400, reply.text
    assert "leave the box" in reply.json()["error"]["message"]
    assert cloud.received("gemini") == []
    assert _refused(cloud, "gemini") == before + 1


def _refused(cloud: Cloud, kind: str) -> float:
    labels = f'route="{TARGETS[kind]}",verdict="refused"'
    try:
        return metric(cloud.gateway.url, "spillgate_egress_total", labels)
    except KeyError:  # not counted yet
        return 0.0


def test_a_clean_spill_is_audited(cloud: Cloud) -> None:
    reply = httpx.post(
        f"{cloud.gateway.url}/v1/chat/completions",
        json=chat(ROUTES["anthropic"], "What is 2 + 2?"),
        headers={"x-request-id": "audit-me-0001"},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    admin = {"authorization": f"Bearer {ADMIN}"}

    def audited() -> dict[str, Any]:
        answer = httpx.get(f"{cloud.gateway.url}/admin/audit/egress", headers=admin, timeout=10)
        answer.raise_for_status()
        report: dict[str, Any] = answer.json()
        return report

    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not audited().get("requests"):
        time.sleep(0.2)
    report = audited()
    assert report["requests"] >= 1
    assert report["onprem_marked"] == 0
    assert TARGETS["anthropic"] in orjson.dumps(report).decode()
    verified = httpx.get(f"{cloud.gateway.url}/admin/audit/verify", headers=admin, timeout=10)
    assert verified.status_code == 200 and verified.json()["ok"] is True


def test_healthz_answers_while_a_hostile_body_is_scanned(cloud: Cloud) -> None:
    """An 8 MiB body of a detector's worst case is scanned off the event loop."""
    hostile = "-----BEGIN PRIVATE KEY-----\n" * (8 * 1024 * 1024 // 28)
    done = threading.Event()
    answered_during: list[int] = []
    result: dict[str, Any] = {}

    def send() -> None:
        try:
            result["reply"] = httpx.post(
                f"{cloud.gateway.url}/v1/chat/completions",
                json=chat(ROUTES["openai"], hostile),
                timeout=300,
            )
        finally:
            done.set()

    sender = threading.Thread(target=send)
    sender.start()
    with httpx.Client(timeout=60) as client:
        while not done.is_set():
            status = client.get(f"{cloud.gateway.url}/healthz").status_code
            if not done.is_set():
                answered_during.append(status)
    sender.join()
    assert result["reply"].status_code == 400, result["reply"].text
    assert answered_during and set(answered_during) == {200}
    assert cloud.received("openai") == []
