"""The built-in detectors: a pattern that finds candidates, a check that confirms them.

Speed comes from where a pattern may start. Python's `re` skips quickly to a pattern's
literal prefix or first character class, but tries a match at every position if the
pattern opens with a lookbehind; so each pattern opens with its first character(s) and
checks the boundary behind them afterwards (`sk-(?<![A-Za-z0-9_-]sk-)`).

Each detector reads either the whole text (secrets: the engine finds their fixed prefix
fast) or windows of it (`Around`): around runs of six or more digits, found by one pass
of `DIGIT_RUN` (every numeric identifier and phone number has one; most prose has none),
or around each occurrence of an anchor such as `@`.

No pattern backtracks badly, whatever the text (bench/privacy_hostile.py measures each
kind's worst case). Python's `re` backtracks, and google-re2, which cannot, lacks the
lookbehinds and the backreferences these patterns use; so the patterns are written not
to: a run of a character class is possessive (`++`, `{n,m}+`) where giving characters
back could not lead to a match (what follows it cannot be in it), and each repetition is
bounded where a value is. A bounded pattern (`reach`) is searched in slices of a long
text, so no single call holds the GIL for long; PEM blocks, of any length, are found by
`pem.blocks`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import orjson

from spillgate.server.privacy import checksums, pem

#: How many leading characters of a candidate form a valid value (0: not one).
Check = Callable[[str], int]
#: The (start, end) of each value in `text[lo:hi]`, in order: `find(text, lo, hi)`.
Find = Callable[[str, int, int], Iterable[tuple[int, int]]]


@dataclass(frozen=True, slots=True)
class Around:
    """Windows of the text a detector reads: `before` and `after` characters around each
    anchor, an occurrence of one of `anchors` (all of one length), or with `digits`, each
    run of digits."""

    anchors: tuple[str, ...]
    before: int
    after: int
    digits: bool = False

    @property
    def gate(self) -> str:
        """Found in every text that has a window of this scope (gate.py): the start of a
        `DIGIT_RUN`, or one of the anchors."""
        if self.digits:
            return DIGIT_GATE
        return "|".join(re.escape(anchor) for anchor in self.anchors)


#: Digit runs: a value may start 24 characters before its run (`+44 (0) `, `GB82 WEST `)
#: and end 16 after it (`MTLC AST0 01S`).
NUMBERS = Around((), before=24, after=16, digits=True)
#: Six characters or more of digits and separators, from a digit to a digit: every value
#: a NUMBERS detector finds holds one. (One character class, so the engine runs it fast.)
#: A longer run is found as pieces of at most `DIGIT_RUN_REACH` characters, each from a
#: digit to a digit, so each is found by a short call. A value's separators come one or
#: two at a time, so the pieces of its run are closer than a window's reach: they share
#: one window, whose longest piece is the whole run or longer than any `min_run`.
DIGIT_RUN = re.compile(r"[0-9][0-9 ./-]{4,254}[0-9]")
DIGIT_RUN_REACH = 256
#: The first six characters of every `DIGIT_RUN` match.
DIGIT_GATE = r"[0-9][0-9 ./-]{5}"


@dataclass(frozen=True, slots=True)
class Detector:
    kind: str
    pattern: re.Pattern[str]
    check: Check
    #: None: the whole text.
    scope: Around | None = None
    #: NUMBERS: read only the windows of digit runs at least this long (a value of 13
    #: digits has a run of 13 characters or more; "123-45-6789" one of 11).
    min_run: int = 0
    #: The pattern group that holds the value (the rest is context, such as a key name).
    group: int = 0
    #: The most characters a match attempt reads from where it starts, lookaheads
    #: included (None: no bound). A bounded pattern is searched in slices of a long text.
    reach: int | None = None
    #: Finds the values itself, in short calls, where one search would be long; `pattern`
    #: still defines them (the version digest and the tests read it).
    find: Find | None = None
    #: A short RE2 pattern found in every text where `pattern` finds a value (gate.py);
    #: None: the scope's gate, or for a whole-text detector, none (it always reads).
    gate: str | None = None


def _whole(valid: Callable[[str], bool]) -> Check:
    return lambda value: len(value) if valid(value) else 0


def _always(value: str) -> int:
    return len(value)


def _email_ok(value: str) -> bool:
    local = value[: value.rindex("@")]
    return not (local.startswith(".") or local.endswith(".") or ".." in local)


def _phone_ok(value: str) -> int:
    """The length of the phone number `value` starts with; 0 if it is none.

    The pattern runs on over every group of digits that follows, so a number followed by
    another number is cut back, group by group, until its digits fit.
    """
    if value.startswith("00") and value.isdigit():
        return 0  # 0012345678 is a zero-padded number, not a dialled one
    if value.startswith("00"):
        low, high, skip = 8, 15, 2
    elif value.lstrip("(").startswith("0"):
        # National numbers after a trunk 0 have ten digits or more in the countries whose
        # formats the pattern knows (UK, Germany, France...); fewer is more often an id.
        low, high, skip = 10, 13, 0
    else:  # E.164: at most 15 digits; none in use has fewer than 8 with its prefix.
        low, high, skip = 8, 15, 0
    while True:
        digits = len(checksums.digits_of(value)) - skip
        if digits <= high:
            return len(value) if digits >= low else 0
        cut = max(value.rfind(" "), value.rfind("-"), value.rfind("."))
        if cut <= 0:
            return 0
        value = value[:cut].rstrip(" .-(")


# The first `length` characters of an IBAN candidate, spaces between them.
_IBAN_CUTS = {n: re.compile(f"[A-Z0-9](?: ?[A-Z0-9]){{{n - 1}}}") for n in range(15, 35)}


def _iban_check(value: str) -> int:
    """An IBAN may be followed by a group that is not its own: try the country's length."""
    length = checksums.IBAN_LENGTHS.get(value[:2])
    cut = _IBAN_CUTS[length].match(value) if length is not None else None
    if cut is None:
        return 0
    return cut.end() if checksums.iban_ok(cut.group()) else 0


def _mixed_case(value: str) -> bool:
    """Real keys are random, so mixed case: `sk-my-long-kebab-case-name` is not a key."""
    return any(c.isupper() for c in value) and any(c.islower() for c in value)


def _mixed_key_ok(value: str) -> bool:
    return _mixed_case(value) and any(c.isdigit() for c in value[3:])


def _jwt_ok(value: str) -> bool:
    header = value.split(".", 1)[0]
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded


def _nino_ok(value: str) -> bool:
    return value[:2] not in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ")


#: Characters of a provider key after its prefix: real ones have a few hundred at most.
#: A longer run is read this far, so each key pattern is bounded and searched in slices.
KEY_RUN = 4096


def _secret(kind: str, prefix: str, rest: str, reach: int, before: str = "A-Za-z0-9_-") -> Detector:
    """A secret that opens with a fixed `prefix` not preceded by a character of `before`."""
    pattern = re.compile(f"{prefix}(?<![{before}]{prefix}){rest}")
    return Detector(kind, pattern, _always, reach=reach, gate=prefix)


# After a number: no digit, and no decimal or date separator followed by one.
_NUMBER_END = r"(?![0-9]|[.,/-][0-9])"
# A domain label: up to 63 letters, digits, `-` and `_`, opening and closing with a letter
# or a digit. One possessive run checked at both ends, so it never backtracks; a label is
# always the whole run, as a dot or the end of the address comes next.
_LABEL = r"(?=[^\W_])[\w-]{1,63}+(?<=[^\W_])"

BUILTIN: tuple[Detector, ...] = (
    # Secrets first: where matches overlap, the earlier detector wins.
    Detector("private_key", pem.PATTERN, _always, find=pem.blocks, gate="-----BEGIN"),
    Detector(
        "jwt",
        re.compile(
            r"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{8,8192}+\.eyJ[A-Za-z0-9_-]{8,8192}+"
            r"\.[A-Za-z0-9_-]{0,8192}+"
        ),
        _whole(_jwt_ok),
        reach=3 + 8192 + 4 + 8192 + 1 + 8192,
        gate="eyJ",
    ),
    _secret("anthropic_key", "sk-ant-", f"[A-Za-z0-9_-]{{20,{KEY_RUN}}}+", 7 + KEY_RUN),
    Detector(
        "openai_key",
        re.compile(rf"sk-(?<![A-Za-z0-9_-]sk-)(?!ant-)[A-Za-z0-9_-]{{20,{KEY_RUN}}}+"),
        _whole(_mixed_key_ok),
        reach=3 + KEY_RUN,
        gate="sk-",
    ),
    Detector(
        "aws_access_key",
        re.compile(r"A(?<![A-Z0-9]A)(?:KIA|SIA|BIA|CCA)[A-Z0-9]{16}(?![A-Z0-9])"),
        _always,
        reach=21,
        gate="A(?:KIA|SIA|BIA|CCA)",
    ),
    Detector(
        "aws_secret_key",
        # Forty base64 characters are only a secret next to their name.
        re.compile(
            r"(?i:aws_?secret_?access_?key|secretaccesskey)[\"']?\s{0,64}+[:=]\s{0,64}+[\"']?"
            r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
        ),
        _always,
        Around(("ecret", "ECRET"), before=16, after=96),
        group=1,
        reach=21 + 1 + 64 + 1 + 64 + 1 + 40 + 1,
    ),
    _secret("github_token", "gh[pousr]_", "[A-Za-z0-9]{36}(?![A-Za-z0-9_])", 41, "A-Za-z0-9_"),
    _secret(
        "github_token", "github_pat_", "[A-Za-z0-9_]{22,255}+(?![A-Za-z0-9_])", 267, "A-Za-z0-9_"
    ),
    _secret("gitlab_token", "glpat-", f"[A-Za-z0-9_-]{{20,{KEY_RUN}}}+", 6 + KEY_RUN),
    _secret("google_api_key", "AIza", "[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])", 40),
    _secret(
        "slack_token", "xox[abposre]-", f"[A-Za-z0-9-]{{10,{KEY_RUN}}}+", 5 + KEY_RUN, "A-Za-z0-9"
    ),
    *(
        _secret("stripe_key", prefix, f"[A-Za-z0-9]{{16,{KEY_RUN}}}+", 8 + KEY_RUN, "A-Za-z0-9_")
        for prefix in ("sk_(?:live|test)_", "rk_(?:live|test)_")
    ),
    Detector(
        "huggingface_token",
        re.compile(rf"hf_(?<![A-Za-z0-9_]hf_)[A-Za-z0-9]{{34,{KEY_RUN}}}+(?![A-Za-z0-9_])"),
        _whole(_mixed_case),
        reach=3 + KEY_RUN + 1,
        gate="hf_",
    ),
    Detector(
        "iban",
        re.compile(
            r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z][0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?"
            r"(?![A-Za-z0-9])"
        ),
        _iban_check,
        NUMBERS,
        min_run=8,
        reach=4 + 7 * 5 + 4 + 1,
    ),
    Detector(
        "payment_card",
        re.compile(
            r"[0-9](?<![0-9+][0-9])(?:[0-9]{12,18}"
            r"|[0-9]{3}([ -])[0-9]{4}\1[0-9]{4}\1[0-9]{1,4}"
            r"|[0-9]{3}([ -])[0-9]{6}\2[0-9]{4,5})(?![0-9])"
        ),
        _whole(checksums.payment_card_ok),
        NUMBERS,
        min_run=13,
        reach=19 + 1,
    ),
    Detector(
        "us_ssn",
        re.compile(r"[0-9](?<![0-9-][0-9])[0-9]{2}([- ])[0-9]{2}\1[0-9]{4}(?![0-9]|-[0-9])"),
        _whole(checksums.us_ssn_ok),
        NUMBERS,
        min_run=11,
        reach=11 + 2,
    ),
    Detector(
        "uk_nino",
        re.compile(
            r"[A-CEGHJ-PR-TW-Z](?<![A-Za-z0-9][A-Z])[A-CEGHJ-NPR-TW-Z]"
            r" ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D](?![A-Za-z0-9])"
        ),
        _whole(_nino_ok),
        NUMBERS,
        reach=13 + 1,
    ),
    Detector(
        "de_tax_id",
        re.compile(r"[1-9](?<![0-9.,-][1-9])[0-9](?: ?[0-9]{3}){3}" + _NUMBER_END),
        _whole(checksums.de_tax_id_ok),
        NUMBERS,
        min_run=11,
        reach=14 + 2,
    ),
    Detector(
        "fr_nir",
        re.compile(
            r"[12](?<![A-Za-z0-9][12]) ?[0-9]{2} ?(?:0[1-9]|1[0-2]|[2-9][0-9]) ?(?:[0-9]{2}|2[AB])"
            r" ?[0-9]{3} ?[0-9]{3} ?[0-9]{2}(?![A-Za-z0-9])"
        ),
        _whole(checksums.fr_nir_ok),
        NUMBERS,
        reach=21 + 1,
    ),
    Detector(
        "es_dni",
        re.compile(r"[0-9XYZ](?<![A-Za-z0-9][0-9XYZ])[0-9]{7}-?[A-Z](?![A-Za-z0-9])"),
        _whole(checksums.es_dni_ok),
        NUMBERS,
        min_run=7,
        reach=10 + 1,
    ),
    Detector(
        "it_fiscal_code",
        re.compile(
            r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]{5}[0-9LMNP-V]{2}[ABCDEHLMPRST][0-9LMNP-V]{2}[A-Z]"
            r"[0-9LMNP-V]{3}[A-Z](?![A-Za-z0-9])"
        ),
        _whole(checksums.it_fiscal_code_ok),
        reach=16 + 1,
        gate="[A-Z]{6}[0-9LMNP-V]{2}[ABCDEHLMPRST]",
    ),
    Detector(
        "email",
        # A domain has at most 128 labels (127 dots, as DNS allows in 255 characters).
        re.compile(
            rf"[\w.+%-](?<![\w.+%-][\w.+%-])[\w.+%-]{{0,63}}+@{_LABEL}"
            rf"(?:\.{_LABEL}){{0,126}}\.[^\W\d_]{{2,24}}+(?![\w-])"
        ),
        _whole(_email_ok),
        Around(("@",), before=64, after=1),
        reach=64 + 1 + 63 + 126 * 64 + 1 + 24 + 1,
    ),
    # Phone numbers, international: + or 00, a country code, groups (E.164: 15 digits);
    # a 0 or 00 that continues groups of digits (an IBAN, an account) dials nothing.
    # A group's digits are possessive, the whole of their run up to four: a split into
    # shorter groups could only end the number where a digit follows, which it may not.
    Detector(
        "phone",
        re.compile(
            r"(?:\+(?<![\w+]\+)|00(?<![\w+]00)(?<![0-9][ .-]00))"
            r"[1-9][0-9]{0,2}(?:[ .-]?\(?[0-9]{1,4}+\)?){1,6}(?![0-9])"
        ),
        _phone_ok,
        NUMBERS,
        min_run=7,
        reach=2 + 3 + 6 * 7 + 1,
    ),
    # National: North American (555) 123-4567, 555-123-4567, 555.123.4567, 555 123 4567;
    # with a trunk 0, grouped: (030) 1234567, 020 7946 0958, 030/1234567, 01.23.45.67.89.
    Detector(
        "phone",
        re.compile(
            r"(?:(?:\((?<![\w.+-]\()[2-9][0-9]{2}\) ?[2-9][0-9]{2}[-. ]"
            r"|[2-9](?<![\w.+-][2-9])[0-9]{2}([-. ])[2-9][0-9]{2}\1)[0-9]{4}"
            r"|\((?<![\w.+/-]\()0[1-9][0-9]{0,4}+\) ?[0-9]{2,8}+(?:[ -][0-9]{2,4}+){0,3}"
            r"|0(?<![\w.+/-]0)(?<![0-9][ .-]0)[1-9]"
            r"(?:[0-9]{0,4}+[ /-][0-9]{2,8}+(?:[ -][0-9]{2,4}+){0,3}"
            r"|(?:\.[0-9]{2}){4}))" + _NUMBER_END
        ),
        _phone_ok,
        NUMBERS,
        min_run=7,
        reach=9 + 8 + 3 * 5 + 2,
    ),
)

BUILTIN_KINDS: tuple[str, ...] = tuple(dict.fromkeys(d.kind for d in BUILTIN))
