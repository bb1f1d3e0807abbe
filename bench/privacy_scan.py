"""Measure the privacy scan and redaction per request: microseconds of one CPU core.

The gateway's whole budget is ~6 ms of CPU for a 2,000-token request, so the scan, which
runs on every request a key may spill, should take well under 1 ms. Prompts (about four
characters a token):

- short:  a 20-token chat question;
- prose:  ~2,000 tokens of English prose, no digits and no `@` (every gate closed);
- mixed:  ~2,000 tokens of prose, Python code with decorators, log lines with dates,
          times, IP addresses, versions, prices and ids: no personal data, but every
          numeric detector runs (the realistic worst case for a clean request);
- pii:    `mixed` with an email, a phone number, a card, an IBAN and an API key.

    python bench/privacy_scan.py [--repeat 2000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from spillgate.server.privacy import redact, scan

PROSE = (
    "The committee reviewed the proposal for the new library wing and asked the architects "
    "to reconsider the lighting in the reading rooms, which several members found too dim "
    "for long study sessions. A revised plan will be circulated before the next meeting. "
)
CODE = """
class Cache:
    @property
    def size(self) -> int:
        return len(self._items)

    @staticmethod
    def key(request: dict) -> str:
        return f"{request['model']}:{request.get('seed', 0)}"
"""
LOGS = (
    "2024-03-15T10:42:17.512Z INFO worker-3 served 1842 requests in 60.0s from 10.0.12.7 "
    "(v2.14.3, build 20240314.1), p99 412 ms, cost $1,234.56, order #4521987, "
    "retry 3/5 at 12:30:45 on 15.03.2024, ticket 2024-0042-17.\n"
)


def chat(*texts: str) -> dict[str, Any]:
    return {
        "model": "m",
        "messages": [
            {"role": "system", "content": "You are a careful assistant."},
            *({"role": "user", "content": t} for t in texts),
        ],
    }


def about_chars(unit: str, chars: int) -> str:
    return (unit * (chars // len(unit) + 1))[:chars]


def payloads() -> dict[str, dict[str, Any]]:
    mixed = about_chars(PROSE, 3000) + about_chars(CODE, 2500) + about_chars(LOGS, 2500)
    pii = (
        mixed + " Reach me at jane.doe@example-mail.com or +44 20 7946 0958; card "
        "4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, key "
        "sk-proj-Ab3dEf6hIj9kLmN0pQrStUvWxYz12345."
    )
    return {
        "short": chat("What is the capital of France? Answer with one word, please."),
        "prose": chat(about_chars(PROSE, 8000)),
        "mixed": chat(mixed),
        "pii": chat(pii),
    }


def per_call_us(fn: Callable[[], object], repeat: int) -> float:
    """The best of 7 rounds of the mean time of one call: the least disturbed by other
    work on the machine, as timeit advises."""
    rounds = []
    for _ in range(7):
        start = time.perf_counter_ns()
        for _ in range(repeat):
            fn()
        rounds.append((time.perf_counter_ns() - start) / repeat / 1000)
    return min(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=2000, help="calls per round")
    args = parser.parse_args()
    print(f"{'prompt':<8}{'chars':>8}{'scan µs':>10}{'redact µs':>11}  findings")
    for name, payload in payloads().items():
        chars = sum(len(m["content"]) for m in payload["messages"])
        scan_us = per_call_us(lambda p=payload: scan(p), args.repeat)
        redact_us = per_call_us(lambda p=payload: redact(p), max(args.repeat // 4, 1))
        print(f"{name:<8}{chars:>8}{scan_us:>10.1f}{redact_us:>11.1f}  {scan(payload)!r}")


if __name__ == "__main__":
    main()
