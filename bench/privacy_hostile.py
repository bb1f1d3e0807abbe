"""Worst cases for the privacy detectors: scan time against size, and the longest call.

Each built-in kind has a hostile text (`HOSTILE[kind](chars)`): runs that almost match,
built to make that kind's pattern try, and fail, as much as it can. A backtracking
pattern shows here as a scan whose time grows faster than its input; a pattern that
holds the GIL for long in one C call, as a long stall of the event loop.

For each kind and each size the bench scans the text once (`Scanner().spans`, in a
worker thread as the gateway does) and prints the time, the growth per doubling of the
size (linear is about 2) and, at the largest size: the longest single call that searched
text (a regular expression, `str.find`), the longest C-level call of any kind (both in
the thread's CPU time), and the longest another thread waited for the GIL meanwhile, as
the event loop would (at least the 5 ms switch interval, plus any pause of the garbage
collector, plus on a busy machine the time the system ran other processes).

    python bench/privacy_hostile.py [--sizes 0.25,1,2,4,8] [--kinds email,phone,...]

The sizes are MiB of text. Other engineers' benches import `HOSTILE` (privacy_healthz.py).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from math import log2
from typing import Any, NamedTuple


def repeat(unit: str, chars: int) -> str:
    """`unit` repeated to `chars` characters."""
    return (unit * (chars // len(unit) + 1))[:chars]


def _with_tail(head: str, unit: str, chars: int) -> str:
    return head + repeat(unit, max(chars - len(head), 0))


_B64 = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj"  # 64 characters

#: A text of about the given number of characters for each kind, its worst case.
HOSTILE: dict[str, Callable[[int], str]] = {
    # The line a hostile user sent: every BEGIN searched for its END.
    "private_key": lambda n: repeat("-----BEGIN PRIVATE KEY-----\n", n),
    # Many candidates of three segments whose header is not JSON, each decoded and refused.
    "jwt": lambda n: repeat("eyJhbGciOi.eyJzdWIiOj.", n),
    "anthropic_key": lambda n: repeat(" sk-ant-api03-AbCdEfGhIj012", n),
    # One run: the first `sk-` reads all of it, every later `sk-` is inside it.
    "openai_key": lambda n: repeat("sk-", n),
    "aws_access_key": lambda n: repeat(" AKIA" + "A" * 15, n),
    "aws_secret_key": lambda n: repeat("aws_secret_access_key=" + "A" * 39 + ",", n),
    "github_token": lambda n: repeat(" ghp_" + "aB3" * 11 + "a", n),
    "gitlab_token": lambda n: repeat(" glpat-" + "a" * 19, n),
    "google_api_key": lambda n: repeat(" AIza" + "A" * 34, n),
    "slack_token": lambda n: repeat(" xoxb-" + "1" * 9, n),
    "stripe_key": lambda n: repeat(" sk_live_" + "a" * 15, n),
    # The token's run is followed by `_`: a backtracking run gives back every character.
    "huggingface_token": lambda n: _with_tail(" hf_", "a", n - 1) + "_",
    # Well-formed IBANs whose mod 97 fails, and `DE00` groups that almost continue them.
    "iban": lambda n: repeat("DE00 DE00 DE00 DE00 DE00 DE00 DE00 DE00 1234 5678 ", n),
    # Luhn fails; and digit runs with separators, every digit a place a number may start.
    "payment_card": lambda n: repeat("4111 1111 1111 1112 1 2 3 4 5 6 7 8 9 0 ", n),
    "us_ssn": lambda n: repeat("078-05-1120 1-2-3-4-5-6 ", n),
    "uk_nino": lambda n: repeat("GB 12 34 56 C 1 2 3 4 5 6 ", n),
    "de_tax_id": lambda n: repeat("86 095 742 718 1 234 567 890 1 ", n),
    "fr_nir": lambda n: repeat("1 84 12 76 451 089 47 1 2 3 4 5 ", n),
    "es_dni": lambda n: repeat("12345678A X1234567A 1234567 ", n),
    "it_fiscal_code": lambda n: repeat("RSSMRA85T10A562T ", n),
    # One address whose domain never reaches a top-level domain: the domain's labels.
    "email": lambda n: _with_tail("a@", "b.", n),
    # International numbers with more digits than six groups hold, one after the other:
    # a backtracking pattern tries every split of the digits into groups.
    "phone": lambda n: repeat("+1" + "2" * 30 + " ", n),
}

#: Further hostile texts, shown in the table after the kinds.
VARIANTS: dict[str, Callable[[int], str]] = {
    "private_key: BEGIN then base64 lines no END": lambda n: _with_tail(
        "-----BEGIN RSA PRIVATE KEY-----\n", _B64 + "\n", n
    ),
    "private_key: BEGIN then one long line": lambda n: _with_tail(
        "-----BEGIN PRIVATE KEY-----\n", "A", n
    ),
    "private_key: BEGIN lines in JSON": lambda n: repeat("-----BEGIN PRIVATE KEY-----\\n", n),
    "private_key: BEGIN and armour headers": lambda n: repeat(
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,AB\n", n
    ),
    "jwt: one run": lambda n: _with_tail("eyJ", "a", n),
    "email: many @": lambda n: repeat("@", n),
    "email: @ beside spaces": lambda n: repeat("@ ", n),
    "email: a@b.": lambda n: repeat("a@b.", n),
    "email: @ far apart without whitespace": lambda n: repeat("x" * 99 + "@", n),
    "digits: 1 2 3": lambda n: repeat("1 2 3 4 5 6 7 8 9 0 ", n),
    "digits: runs far apart without whitespace": lambda n: repeat("123456" + "x" * 50, n),
    "digits: one digit then separators": lambda n: _with_tail("1", "-", n),
    "phone: +1 (": lambda n: repeat("+1 (", n),
    "findings of every kind": lambda n: repeat(_EVERY_KIND, n),
}

# One value of each kind, as a request full of personal data has them.
_EVERY_KIND = (
    "jane.doe@corp.io +44 20 7946 0958 4111 1111 1111 1111 DE89 3704 0044 0532 0130 00 "
    "536-22-1234 AB 12 34 56 C 86095742719 1 84 12 76 451 089 46 12345678Z RSSMRA85T10A562S "
    "sk-proj-Ab3dEf6hIj9kLmN0pQrStUvWx AKIAIOSFODNN7EXAMPLE "
    "ghp_aB3aB3aB3aB3aB3aB3aB3aB3aB3aB3aB3aB3 "
    "glpat-Ab3dEf6hIj9kLmN0pQrS AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q xoxb-123456789012-abc "
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh\n"
)


class _LongestCall:
    """The longest C-level call (`sys.setprofile` reports each one) made by this thread,
    and the longest of them that searched text (a regular expression, `str.find`).

    A call that runs Python code inside it (`any` over a generator, a sort's key) lets
    other threads in meanwhile, so it does not count. Calls are timed in the thread's CPU
    time: on a shared machine, wall time would add the time other processes ran.
    """

    def __init__(self) -> None:
        self.longest = self.longest_search = 0.0
        self.name = ""
        self._started: dict[int, float | None] = {}  # None: Python code ran inside

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        if event == "c_call":
            self._started[id(arg)] = time.thread_time()
        elif event == "call":
            self._started = dict.fromkeys(self._started)
        elif event in ("c_return", "c_exception"):
            started = self._started.pop(id(arg), None)
            if started is None:
                return
            took = time.thread_time() - started
            name = getattr(arg, "__qualname__", repr(arg))
            if name.startswith(("Pattern.", "str.find", "str.rfind")):
                self.longest_search = max(self.longest_search, took)
            if took > self.longest:
                self.longest, self.name = took, name


class Scan(NamedTuple):
    seconds: float
    #: The longest time this thread waited for the GIL while the scan ran: what the
    #: event loop would wait (never less than the 5 ms switch interval).
    stall: float
    calls: _LongestCall | None


def scan_once(text: str, profile: bool = False) -> Scan:
    """One `Scanner().spans(text)` in a worker thread, as the gateway runs a large scan,
    while this thread wakes every half millisecond and notes how late it woke."""
    from spillgate.server.privacy import Scanner

    scanner = Scanner()
    calls = _LongestCall() if profile else None
    took: list[float] = []

    def run() -> None:
        if calls is not None:
            sys.setprofile(calls)
        start = time.perf_counter()
        scanner.spans(text)
        took.append(time.perf_counter() - start)
        sys.setprofile(None)

    worker = threading.Thread(target=run)
    stall, last = 0.0, time.perf_counter()
    worker.start()
    while worker.is_alive():
        time.sleep(0.0005)
        now = time.perf_counter()
        stall, last = max(stall, now - last - 0.0005), now
    worker.join()
    return Scan(took[0], stall, calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="0.25,1,2,4,8", help="MiB of text, ascending")
    parser.add_argument("--kinds", default=",".join([*HOSTILE, *VARIANTS]), help="names, by ,")
    args = parser.parse_args()
    sizes = [float(s) for s in args.sizes.split(",")]
    texts = {**HOSTILE, **VARIANTS}
    head = " | ".join(f"{s:g} MiB" for s in sizes)
    last = f"{sizes[-1]:g} MiB"
    print(
        f"| hostile text | {head} | growth per doubling | longest search call at {last} "
        f"| longest C call at {last} | longest GIL wait at {last} |"
    )
    print("| --- |" + " ---: |" * (len(sizes) + 2) + " --- | ---: |")
    for kind in args.kinds.split(","):
        scans = [scan_once(texts[kind](int(size * 1024 * 1024))) for size in sizes]
        calls = scan_once(texts[kind](int(sizes[-1] * 1024 * 1024)), profile=True).calls
        assert calls is not None
        # Growth per doubling over the whole range: (t_last / t_first) ** (1 / doublings).
        doublings = log2(sizes[-1] / sizes[0]) or 1
        growth = (scans[-1].seconds / max(scans[0].seconds, 1e-9)) ** (1 / doublings)
        cells = " | ".join(
            f"{s.seconds * 1000:,.0f} ms" if s.seconds < 10 else f"{s.seconds:,.1f} s"
            for s in scans
        )
        print(
            f"| `{kind}` | {cells} | {growth:.2f} | {calls.longest_search * 1000:.1f} ms | "
            f"{calls.longest * 1000:.1f} ms `{calls.name}` | {scans[-1].stall * 1000:.0f} ms |",
            flush=True,
        )


if __name__ == "__main__":
    main()
