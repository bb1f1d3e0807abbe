"""Engine discovery through a headless Service, against a fake DNS answer.

The stand-in engines are real processes, all on one port and each on its own loopback
address (127.0.0.2, .3, ...), the way engine pods share a port on their own pod IPs. The
gateway runs in this process so the test can hand it the DNS answer; requests reach it
over HTTP through the official `openai` client.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
import uvicorn
from harness import STANDIN, free_port, wait_http

from spillgate.models.discovery import DiscoveryError, resolve_dns
from spillgate.server.app import create_app
from spillgate.server.config import ConfigError, from_dict
from spillgate.server.gateway import Gateway

SERVICE = "vllm-engines.spillgate.svc.cluster.local"
MODEL = "llama-3.1-8b-instruct"
ADDRESSES = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
NOTHING_THERE = "127.0.0.9"  # an address in the answer with no engine behind it


class FakeDNS:
    """Answers the Service's name with whatever addresses the test sets."""

    def __init__(self) -> None:
        self.answer: list[str] = []
        self.failing = False
        self.lookups = 0

    async def resolve(self, name: str) -> list[str]:
        assert name == SERVICE, f"the gateway resolved {name!r}"
        self.lookups += 1
        if self.failing:
            raise DiscoveryError(f"cannot resolve {name}: Temporary failure in name resolution")
        return list(self.answer)


@pytest.fixture(scope="module")
def engine_port() -> Iterator[int]:
    """One port, a stand-in engine listening on it at each address in ADDRESSES."""
    port = free_port()
    procs = [
        subprocess.Popen(
            [*STANDIN, "--host", address, "--port", str(port), "--served-model-name", MODEL],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for address in ADDRESSES
    ]
    try:
        for address in ADDRESSES:
            wait_http(f"http://{address}:{port}/health")
        yield port
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)


def group_config(port: int, **engine: Any) -> dict[str, Any]:
    entry = {
        "name": "vllm",
        "discover": {"dns": SERVICE, "port": port, "interval_s": 0.05},
        "served_model_names": [MODEL],
        "health_interval_s": 0.05,
        **engine,
    }
    return {
        "engines": [entry],
        "server": {"ready_wait_s": 0, "access_log": False},
        "auth": {"enabled": False},
    }


@contextlib.asynccontextmanager
async def gateway_at(config: dict[str, Any], dns: FakeDNS) -> AsyncIterator[str]:
    """The gateway's app served by uvicorn on a loopback port of this process."""
    app = create_app(Gateway(from_dict(config), resolve=dns.resolve))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the gateway did not start"
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 15.0):
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


async def ready_engines(url: str) -> dict[str, bool]:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"{url}/readyz")).json()["engines"]


def until_engines(url: str, expected: dict[str, bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await ready_engines(url) == expected

    return check


async def route_of_chat(client: openai.AsyncOpenAI) -> str:
    raw = await client.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hello"}]
    )
    assert raw.parse().choices[0].message.content == "You said: hello"
    return raw.headers["x-spillgate-route"]


async def standin_requests(address: str, port: int) -> int:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"http://{address}:{port}/_standin/stats")).json()["requests"]


def client_for(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


async def test_engines_follow_the_dns_answer(engine_port: int) -> None:
    dns = FakeDNS()
    dns.answer = ["127.0.0.2"]
    async with gateway_at(group_config(engine_port), dns) as url:
        client = client_for(url)
        await eventually(until_engines(url, {"vllm@127.0.0.2": True}), "the first pod is ready")
        assert await route_of_chat(client) == "vllm@127.0.0.2"

        dns.answer = ["127.0.0.2", "127.0.0.3"]  # scaled up: a second pod became ready
        await eventually(
            until_engines(url, {"vllm@127.0.0.2": True, "vllm@127.0.0.3": True}),
            "the new pod is attached",
        )

        dns.answer = ["127.0.0.3"]  # the first pod is gone (scaled down, or not ready)
        await eventually(until_engines(url, {"vllm@127.0.0.3": True}), "the old pod is dropped")
        before = await standin_requests("127.0.0.2", engine_port)
        assert [await route_of_chat(client) for _ in range(3)] == ["vllm@127.0.0.3"] * 3
        assert await standin_requests("127.0.0.2", engine_port) == before

        # The dropped pod's series is gone, so "engine down" does not fire on a scale-down.
        async def only_the_live_pod_exported() -> bool:
            async with httpx.AsyncClient() as http:
                metrics = (await http.get(f"{url}/metrics")).text
            per_engine = ("spillgate_engine_", "spillgate_local_queue_depth{")
            gauges = [line for line in metrics.splitlines() if line.startswith(per_engine)]
            return gauges == [
                'spillgate_engine_up{engine="vllm@127.0.0.3"} 1.0',
                'spillgate_engine_in_flight{engine="vllm@127.0.0.3"} 0.0',
                'spillgate_local_queue_depth{engine="vllm@127.0.0.3"} 0.0',
            ]

        await eventually(only_the_live_pod_exported, "the metrics show only the live pod")


async def test_load_spreads_over_the_discovered_pods(engine_port: int) -> None:
    dns = FakeDNS()
    dns.answer = ADDRESSES[:2]
    async with httpx.AsyncClient() as http:
        for address in ADDRESSES[:2]:  # streams that stay open until the test reads them out
            await http.post(
                f"http://{address}:{engine_port}/_standin/mode", json={"chunk_delay_s": 0.2}
            )
    try:
        # Least predicted wait spreads the load; the two prompts are the same, and prefix
        # affinity would keep them on one pod (tests/gateway/test_affinity.py).
        config = {**group_config(engine_port), "scheduler": {"prefix_affinity": False}}
        async with gateway_at(config, dns) as url:
            await eventually(
                until_engines(url, {f"vllm@{a}": True for a in ADDRESSES[:2]}), "both pods ready"
            )
            client = client_for(url)
            messages = [{"role": "user", "content": "a long answer"}]
            first = await client.chat.completions.with_raw_response.create(
                model=MODEL, messages=messages, stream=True
            )
            second = await client.chat.completions.with_raw_response.create(
                model=MODEL, messages=messages, stream=True
            )
            routes = {first.headers["x-spillgate-route"], second.headers["x-spillgate-route"]}
            assert routes == {"vllm@127.0.0.2", "vllm@127.0.0.3"}
            for raw in (first, second):
                text = "".join([c.choices[0].delta.content or "" async for c in raw.parse()])
                assert text == "You said: a long answer"
    finally:
        async with httpx.AsyncClient() as http:
            for address in ADDRESSES[:2]:
                await http.post(f"http://{address}:{engine_port}/_standin/mode", json={})


async def test_a_dead_address_in_the_answer_gets_no_requests(engine_port: int) -> None:
    dns = FakeDNS()
    dns.answer = [NOTHING_THERE, "127.0.0.4"]  # a pod that died before DNS caught up
    async with gateway_at(group_config(engine_port), dns) as url:
        expected = {f"vllm@{NOTHING_THERE}": False, "vllm@127.0.0.4": True}
        await eventually(until_engines(url, expected), "the live pod is ready")
        client = client_for(url)
        assert [await route_of_chat(client) for _ in range(3)] == ["vllm@127.0.0.4"] * 3


async def test_no_pod_yet_is_503_not_an_unknown_model(engine_port: int) -> None:
    dns = FakeDNS()  # the Service has no ready pod: its name resolves to nothing
    async with gateway_at(group_config(engine_port), dns) as url:
        client = client_for(url)
        await eventually(lambda: _asked(dns), "the gateway resolved the name")
        assert [m.id for m in (await client.models.list()).data] == [MODEL]
        with pytest.raises(openai.APIStatusError) as caught:
            await route_of_chat(client)
        assert caught.value.status_code == 503
        assert caught.value.response.json()["error"]["code"] == "no_target_ready"
        assert "retry shortly" in caught.value.message
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{url}/readyz")).status_code == 503

        dns.answer = ["127.0.0.2"]  # the first pod came up
        await eventually(until_engines(url, {"vllm@127.0.0.2": True}), "the pod is ready")
        assert await route_of_chat(client) == "vllm@127.0.0.2"


async def _asked(dns: FakeDNS) -> bool:
    return dns.lookups > 0


async def test_a_dns_failure_keeps_the_engines_found_so_far(engine_port: int) -> None:
    dns = FakeDNS()
    dns.answer = ["127.0.0.3"]
    async with gateway_at(group_config(engine_port), dns) as url:
        await eventually(until_engines(url, {"vllm@127.0.0.3": True}), "the pod is ready")
        dns.failing = True
        lookups = dns.lookups

        async def failed_a_few_times() -> bool:
            return dns.lookups >= lookups + 3

        await eventually(failed_a_few_times, "the gateway asked again through the failure")
        assert await ready_engines(url) == {"vllm@127.0.0.3": True}
        assert await route_of_chat(client_for(url)) == "vllm@127.0.0.3"


async def test_model_names_come_from_the_pods_when_not_configured(engine_port: int) -> None:
    dns = FakeDNS()
    dns.answer = ["127.0.0.2"]
    config = group_config(engine_port, served_model_names=[])
    config["aliases"] = {"default": MODEL}
    async with gateway_at(config, dns) as url:
        client = client_for(url)

        async def model_listed() -> bool:
            return MODEL in [m.id for m in (await client.models.list()).data]

        await eventually(model_listed, "the pod's model names are known")
        raw = await client.chat.completions.with_raw_response.create(
            model="default", messages=[{"role": "user", "content": "hi"}]
        )
        assert raw.headers["x-spillgate-route"] == "vllm@127.0.0.2"
        assert raw.parse().choices[0].message.content == "You said: hi"


async def test_the_system_resolver_answers_for_localhost() -> None:
    assert "127.0.0.1" in await resolve_dns("localhost")


@pytest.mark.parametrize(
    ("engine", "message"),
    [
        (
            {"discover": {"dns": "http://vllm-engines:8000"}},
            "`dns` takes a DNS name like vllm-engines.NAMESPACE.svc.cluster.local, not a URL",
        ),
        (
            {"discover": {"dns": "vllm-engines"}, "url": "http://127.0.0.1:8000/v1"},
            "set exactly one of `model` (launch vLLM), `url` (attach) or `discover`",
        ),
        (
            {"discover": {"dns": "vllm-engines"}, "port": 8001},
            "`args`, `env`, `launcher` and `port` apply to launched engines only",
        ),
        ({"discover": {"dns": "vllm-engines", "interval_s": 0}}, "engines[0].discover.interval_s"),
        ({"discover": {"dns": "vllm-engines", "every": 5}}, "engines[0].discover.every: unknown"),
    ],
)
def test_bad_discover_settings_say_what_to_change(engine: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_dict({"engines": [{"name": "vllm", **engine}]})
    assert message in str(caught.value)
