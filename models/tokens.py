"""Does a request fit an engine's context window? A cheap bound first, an exact count if needed.

The bound. With a byte-level BPE tokenizer (GPT-2 style: Llama 3, Qwen, Mistral's Tekken,
SmolLM2) every token that is not a special token stands for at least one byte of UTF-8
text, so a text of N bytes is at most N tokens. A chat prompt is the chat template
rendered around the messages, so its tokens are at most: the template's own tokens
(measured once per engine by tokenizing a conversation with empty contents) plus each
message's content bytes plus a small slack per message for re-segmentation where content
meets the template text. When that bound plus the requested output fits `max_model_len`,
no count is needed; most requests are far below the limit and never pay for one.

Where the bound does not hold, and what happens then (an exact count via the engine's
`POST /tokenize`, which applies the same template vLLM will, cached by request):
  * tokenizers that are not byte-level: SentencePiece may add a `▁` prefix token, and a
    normalizer such as NFKC can expand text (U+FDFA is 3 bytes, 18 characters after
    NFKC). `calibrate` probes the engine with such text and drops the bound if it fails;
  * anything the template renders in a form we do not measure: tools, tool calls,
    non-text content parts (images, audio), a request's own `chat_template` or
    `chat_template_kwargs`, roles other than system/user/assistant;
  * templates whose cost is not additive per message (the bound assumes it is; checked
    for SmolLM2's template in tests/unit/test_tokens.py).
When no exact count can be had (the engine cannot tokenize), the result says so
(`counted=False`) and `fits` stays True: the engine itself is the judge then, and it
answers an over-long request with a clear 400.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from spillgate.protocol import Endpoint

log = logging.getLogger("spillgate.engine.tokens")

#: Extra tokens allowed per message for where its content meets the template's text.
SLACK_PER_MESSAGE = 2
#: How long to wait before measuring again an engine that could not be measured.
CALIBRATE_RETRY_S = 30.0
#: Roles whose template cost `calibrate` measures; other roles always get an exact count.
MEASURED_ROLES = ("system", "user", "assistant")
#: Text that breaks the byte bound under an expanding normalizer: U+FDFA is 3 bytes and
#: 18 characters after NFKC. A byte-level tokenizer spends at most 3 tokens on each.
BOUND_PROBE = "\ufdfa" * 8
#: Chat request fields the engine's template reads; forwarded to `/tokenize` as they are.
_CHAT_FIELDS = (
    "messages",
    "tools",
    "add_generation_prompt",
    "continue_final_message",
    "chat_template",
    "chat_template_kwargs",
)
#: Chat request fields whose rendering the bound does not cover.
_UNBOUNDED_CHAT_FIELDS = ("tools", "chat_template", "chat_template_kwargs")


@dataclass(frozen=True, slots=True)
class FitResult:
    """Whether a request's prompt plus its requested output fits the context window.

    `prompt_tokens_upper` is the cheap bound (None where none holds); `prompt_tokens` the
    exact count, when one was made (`counted`). `fits` is False only when a count proved
    the request too long, or when the bound did and the count could not be made.
    """

    prompt_tokens_upper: int | None
    prompt_tokens: int | None
    output_tokens: int
    counted: bool
    fits: bool


@dataclass(frozen=True, slots=True)
class TemplateCost:
    """Tokens a chat template adds, measured once per engine.

    `first[role]`: a conversation of one empty message of that role. `next[role]`: what one
    more empty message of that role adds after an empty user message. `completion`: what
    an empty completion prompt costs (a BOS token, for some models). `byte_bound_holds`:
    the engine's tokenizer passed the probe for byte-level behaviour.
    """

    first: dict[str, int]
    next: dict[str, int]
    completion: int
    byte_bound_holds: bool


def requested_output_tokens(payload: dict[str, Any], endpoint: Endpoint) -> int:
    """The output budget the request asks for; 1 when it leaves it to the engine.

    vLLM fills the rest of the window when `max_tokens` is absent, so only the prompt
    (and room for one token) must fit then.
    """
    if endpoint is Endpoint.EMBEDDINGS:
        return 0
    for key in ("max_completion_tokens", "max_tokens"):
        value = payload.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 1


def _text_bytes(content: Any) -> tuple[int, int] | None:
    """(UTF-8 bytes, parts) of a message's text content; None for anything but text."""
    if content is None:
        return 0, 0
    if isinstance(content, str):
        return len(content.encode()), 1
    if not isinstance(content, list):
        return None
    total = 0
    for part in content:
        if not isinstance(part, dict) or part.get("type") != "text":
            return None
        text = part.get("text")
        if not isinstance(text, str):
            return None
        total += len(text.encode()) + 1  # parts are joined with a newline
    return total, len(content)


def chat_upper_bound(payload: dict[str, Any], cost: TemplateCost) -> int | None:
    """An upper bound on a chat request's prompt tokens, or None where none holds."""
    if not cost.byte_bound_holds or any(payload.get(f) for f in _UNBOUNDED_CHAT_FIELDS):
        return None
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    total = 0
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) - {"role", "content", "name"}:
            return None  # tool calls, tool results and the like render as JSON
        table = cost.first if i == 0 else cost.next
        role = message.get("role")
        text = _text_bytes(message.get("content"))
        if role not in table or text is None:
            return None
        name = message.get("name")
        name_bytes = len(name.encode()) + SLACK_PER_MESSAGE if isinstance(name, str) else 0
        total += table[role] + text[0] + name_bytes + SLACK_PER_MESSAGE * max(1, text[1])
    return total


def completion_prompts(payload: dict[str, Any], endpoint: Endpoint) -> list[str | int] | None:
    """Each prompt of a completions/embeddings request: a string, or its token count."""
    prompt = payload.get("input" if endpoint is Endpoint.EMBEDDINGS else "prompt")
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt:
        if all(isinstance(t, int) for t in prompt):
            return [len(prompt)]
        if all(isinstance(p, str) for p in prompt):
            return list(prompt)
        if all(isinstance(p, list) for p in prompt):
            return [len(p) for p in prompt]
    return None


class TokenCounter:
    """Counts prompt tokens for one engine and model, cheaply when it can.

    `root_url` is the engine's address without `/v1`; `model` the name it serves. The
    template cost is measured on first use (or by calling `calibrate` at start-up); exact
    counts are cached by request content in an LRU of `cache_size` entries (keys are
    digests: no prompt text is kept).
    """

    def __init__(
        self,
        root_url: str,
        model: str,
        session: aiohttp.ClientSession,
        *,
        cache_size: int = 1024,
        timeout_s: float = 5.0,
        auth_headers: dict[str, str] | None = None,
    ) -> None:
        self.root_url = root_url.rstrip("/").removesuffix("/v1")
        self.model = model
        self.cost: TemplateCost | None = None
        self._session = session
        self._headers = {"content-type": "application/json", **(auth_headers or {})}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._cache: OrderedDict[bytes, int] = OrderedDict()
        self._cache_size = cache_size
        self._calibrate_after = 0.0

    async def calibrate(self) -> TemplateCost | None:
        """Measure the template's cost and probe the byte bound; None if the engine can't."""
        first: dict[str, int] = {}
        following: dict[str, int] = {}
        user = {"role": "user", "content": ""}
        base = await self._tokenize({"messages": [user]})
        completion = await self._tokenize({"prompt": ""})
        probe = await self._tokenize({"prompt": BOUND_PROBE})
        if base is None or completion is None or probe is None:
            # An engine without /tokenize (or not up yet) is asked again later, not per request.
            self._calibrate_after = time.monotonic() + CALIBRATE_RETRY_S
            return None
        for role in MEASURED_ROLES:
            alone = await self._tokenize({"messages": [{"role": role, "content": ""}]})
            after = await self._tokenize({"messages": [user, {"role": role, "content": ""}]})
            if alone is not None:
                first[role] = alone
            if after is not None:
                following[role] = max(0, after - base)
        holds = probe <= completion + len(BOUND_PROBE.encode())
        if not holds:
            log.info(
                "engine at %s: tokenizer is not byte-level; counting every prompt", self.root_url
            )
        self.cost = TemplateCost(first, following, completion, holds)
        return self.cost

    def upper_bound(self, endpoint: Endpoint, payload: dict[str, Any]) -> int | None:
        """The cheap bound on prompt tokens (the longest prompt, for several); None if none."""
        cost = self.cost
        if cost is None or not cost.byte_bound_holds:
            return None
        if endpoint is Endpoint.CHAT:
            return chat_upper_bound(payload, cost)
        prompts = completion_prompts(payload, endpoint)
        if prompts is None:
            return None
        return max(
            p if isinstance(p, int) else cost.completion + len(p.encode()) + SLACK_PER_MESSAGE
            for p in prompts
        )

    async def count(self, endpoint: Endpoint, payload: dict[str, Any]) -> int | None:
        """The exact prompt tokens (the longest prompt, for several), or None if not countable."""
        if endpoint is Endpoint.CHAT:
            body = {k: payload[k] for k in _CHAT_FIELDS if k in payload}
            return await self._tokenize(body) if body.get("messages") else None
        prompts = completion_prompts(payload, endpoint)
        if prompts is None:
            return None
        counts = [p if isinstance(p, int) else await self._tokenize({"prompt": p}) for p in prompts]
        known = [c for c in counts if c is not None]
        return max(known) if len(known) == len(counts) else None

    async def fits(
        self, endpoint: Endpoint, payload: dict[str, Any], max_model_len: int
    ) -> FitResult:
        """Whether the request fits `max_model_len`; counts only where the bound can't tell."""
        if self.cost is None and time.monotonic() >= self._calibrate_after:
            await self.calibrate()
        output = requested_output_tokens(payload, endpoint)
        upper = self.upper_bound(endpoint, payload)
        if upper is not None and upper + output <= max_model_len:
            return FitResult(upper, None, output, counted=False, fits=True)
        exact = await self.count(endpoint, payload)
        if exact is None:
            return FitResult(upper, None, output, counted=False, fits=True)
        return FitResult(upper, exact, output, counted=True, fits=exact + output <= max_model_len)

    async def _tokenize(self, body: dict[str, Any]) -> int | None:
        data = orjson.dumps({"model": self.model, **body}, option=orjson.OPT_SORT_KEYS)
        key = hashlib.blake2b(data, digest_size=16).digest()
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        try:
            async with self._session.post(
                f"{self.root_url}/tokenize",
                data=data,
                headers=self._headers,
                timeout=self._timeout,
            ) as resp:
                answer = await resp.json(content_type=None) if resp.status == 200 else None
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
            answer = None
        count = answer.get("count") if isinstance(answer, dict) else None
        if not isinstance(count, int):
            return None
        self._cache[key] = count
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return count
