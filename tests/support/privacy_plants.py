"""Planted secrets and personal data: valid values, written the ways that hide them.

For the privacy-boundary tests (tests/gateway/test_privacy_egress_property.py) and the recall
bench (bench/privacy_recall.py). No tests live here.

- `secrets()`: hypothesis strategies for one value of each kind the built-in detector
  finds (docs/privacy.md), with valid check digits: Luhn cards with real issuer prefixes,
  mod-97 IBANs, SSNs outside the never-issued ranges, Steuer-IDs, NIRs, DNIs, codici
  fiscali, internationalised emails, phones, provider keys, JWTs, PEM private keys.
- `plants()`: such a value rendered in one of the forms a hostile client uses to slip it
  past a pattern: plain; digit groups joined by U+00A0 or U+202F; full-width digits and
  at sign (U+FF10..U+FF19, U+FF20); zero-width characters inside; `\\uXXXX`-escaped inside
  a JSON document; and the further forms of `EXTRA_FORMS`.

Each value carries its needles: its canonical forms (digits only for numeric ids, lower
case for emails, the key material of a PEM block), folded by `privacy_readings.fold`, to
look for in what a provider received (`privacy_readings.find_needles`).
"""

from __future__ import annotations

import base64
import html
import json
import string
import unicodedata
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from hypothesis import strategies as st
from privacy_readings import fold, json_strings

from spillgate.server.privacy import checksums

# -- the values ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Secret:
    """One value of a detector kind.

    `value` is its usual written form; `spaced` the same with its digit groups separated
    by ASCII spaces (None for kinds without groups); `needles` the folded forms that
    prove it left the box (digits only for numeric ids, lower case for emails, the key
    material for PEM blocks)."""

    kind: str
    value: str
    needles: tuple[str, ...]
    spaced: str | None = None


def _needles(*canonical: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(fold(c) for c in canonical))


_DIGITS = string.digits
_UPPER = string.ascii_uppercase
_ALNUM = string.ascii_letters + string.digits
_B64URL = _ALNUM + "-_"


def _chars(alphabet: str, size: int) -> st.SearchStrategy[str]:
    return st.text(st.sampled_from(alphabet), min_size=size, max_size=size)


def _mixed(alphabet: str, size: int) -> st.SearchStrategy[str]:
    """Random like a real key: upper case, lower case and a digit somewhere."""

    def ok(s: str) -> bool:
        return (
            any(c.isupper() for c in s)
            and any(c.islower() for c in s)
            and any(c.isdigit() for c in s)
        )

    return _chars(alphabet, size).filter(ok)


def _group(text: str, sizes: tuple[int, ...], sep: str = " ") -> str:
    out, pos = [], 0
    for size in sizes:
        out.append(text[pos : pos + size])
        pos += size
    if pos < len(text):
        out.append(text[pos:])
    return sep.join(p for p in out if p)


def _by_four(text: str) -> str:
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


# Names with and without non-ASCII letters: `müller@bücher.de` is an email too.
_NAMES = ["jane", "john", "max", "li", "ana", "müller", "jürgen", "zoë", "françois", "søren",
          "ødegaard", "josé", "kowalski", "o'neil", "smith"]  # fmt: skip
_DOMAINS = ["corp", "bücher", "example-mail", "exämple", "acme", "büro", "mail", "kästner"]
_TLDS = ["de", "io", "com", "org", "fr", "co.uk", "ch"]


@st.composite
def emails(draw: st.DrawFn) -> Secret:
    first = draw(st.sampled_from(_NAMES)).replace("'", "")
    local = first
    if draw(st.booleans()):
        local += draw(st.sampled_from([".", "_", "+", "-"])) + draw(st.sampled_from(_NAMES))
    local = local.replace("'", "") + draw(_chars(_DIGITS, draw(st.integers(0, 3))))
    label = draw(st.sampled_from(_DOMAINS)) + draw(_chars(string.ascii_lowercase, 2))
    tld = draw(st.sampled_from(_TLDS))
    value = f"{local}@{label}.{tld}"
    canonical = [value.lower()]
    if not label.isascii():  # the same address as DNS carries it
        canonical.append(f"{local}@{label.encode('idna').decode()}.{tld}".lower())
    return Secret("email", value, _needles(*canonical))


@st.composite
def phones(draw: st.DrawFn) -> Secret:
    style = draw(st.sampled_from(["uk", "uk00", "us", "de", "fr"]))
    if style in ("uk", "uk00"):
        tail = draw(_chars(_DIGITS, 4))
        head = "+44" if style == "uk" else "0044"
        value = f"{head} 20 7946 {tail}"
        digits = f"44207946{tail}"
    elif style == "us":
        area = draw(st.sampled_from("23456789")) + draw(_chars(_DIGITS, 2))
        exchange = draw(st.sampled_from("23456789")) + draw(_chars(_DIGITS, 2))
        line = draw(_chars(_DIGITS, 4))
        value = f"+1 ({area}) {exchange}-{line}"
        digits = f"1{area}{exchange}{line}"
    elif style == "de":
        local = draw(st.sampled_from("123456789")) + draw(_chars(_DIGITS, 7))
        value = f"+49 30 {local}"
        digits = f"4930{local}"
    else:
        groups = [draw(st.sampled_from("123456789"))] + [draw(_chars(_DIGITS, 2)) for _ in range(4)]
        value = "+33 " + " ".join(groups)
        digits = "33" + "".join(groups)
    return Secret("phone", value, _needles(digits), spaced=value)


def _luhn_complete(partial: str) -> str:
    """`partial` plus the check digit that makes it pass Luhn."""
    for check in _DIGITS:
        if checksums.luhn_ok(partial + check):
            return partial + check
    raise AssertionError("unreachable: one of ten digits always completes Luhn")


# (issuer prefixes, length): Visa, Mastercard (both ranges), Amex, Discover, JCB, UnionPay.
_ISSUERS = [
    (["4"], 16),
    ([str(p) for p in range(51, 56)], 16),
    (["2221", "2300", "2500", "2720"], 16),
    (["34", "37"], 15),
    (["6011", "65"], 16),
    ([str(p) for p in range(3528, 3590, 7)], 16),
    (["62"], 16),
]


@st.composite
def payment_cards(draw: st.DrawFn) -> Secret:
    prefixes, length = draw(st.sampled_from(_ISSUERS))
    prefix = draw(st.sampled_from(prefixes))
    body = prefix + draw(_chars(_DIGITS, length - len(prefix) - 1))
    number = _luhn_complete(body)
    if len(set(number)) == 1 or not checksums.payment_card_ok(number):
        number = _luhn_complete(body[:-1] + ("1" if body[-1] != "1" else "2"))
    grouped = _group(number, (4, 6, 5) if length == 15 else (4, 4, 4, 4))
    style = draw(st.sampled_from(["grouped", "dashes", "compact"]))
    value = {"grouped": grouped, "dashes": grouped.replace(" ", "-"), "compact": number}[style]
    return Secret("payment_card", value, _needles(number), spaced=grouped)


# Country: what its BBAN is made of (a letter count, then digits), per the IBAN registry.
_IBAN_BBANS = {"DE": (0, 18), "GB": (4, 14), "FR": (0, 23), "NL": (4, 10), "ES": (0, 20),
               "IT": (1, 22), "CH": (0, 17), "AT": (0, 16)}  # fmt: skip


@st.composite
def ibans(draw: st.DrawFn) -> Secret:
    country = draw(st.sampled_from(sorted(_IBAN_BBANS)))
    letters, digits = _IBAN_BBANS[country]
    bban = draw(_chars(_UPPER, letters)) + draw(_chars(_DIGITS, digits))
    rearranged = bban + country + "00"
    check = 98 - int("".join(str(int(c, 36)) for c in rearranged)) % 97
    iban = f"{country}{check:02d}{bban}"
    assert checksums.iban_ok(iban), iban
    spaced = _by_four(iban)
    value = spaced if draw(st.booleans()) else iban
    return Secret("iban", value, _needles(iban), spaced=spaced)


@st.composite
def us_ssns(draw: st.DrawFn) -> Secret:
    area = draw(st.integers(1, 899).filter(lambda a: a != 666))
    group = draw(st.integers(1, 99))
    serial = draw(st.integers(1, 9999))
    digits = f"{area:03d}{group:02d}{serial:04d}"
    if not checksums.us_ssn_ok(digits):  # a published sample: step off it
        digits = f"{area:03d}{group:02d}{serial % 9998 + 1:04d}"
    spaced = f"{digits[:3]} {digits[3:5]} {digits[5:]}"
    value = spaced if draw(st.booleans()) else spaced.replace(" ", "-")
    return Secret("us_ssn", value, _needles(digits), spaced=spaced)


_NINO_BAD = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}


@st.composite
def uk_ninos(draw: st.DrawFn) -> Secret:
    prefix = draw(
        st.tuples(st.sampled_from("ABCEGHJKLMNOPRSTWXYZ"), st.sampled_from("ABCEGHJKLMNPRSTWXYZ"))
        .map("".join)
        .filter(lambda p: p not in _NINO_BAD)
    )
    digits = draw(_chars(_DIGITS, 6))
    suffix = draw(st.sampled_from("ABCD"))
    compact = prefix + digits + suffix
    spaced = f"{prefix} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}"
    value = spaced if draw(st.booleans()) else compact
    return Secret("uk_nino", value, _needles(compact), spaced=spaced)


def _de_tax_check(first_ten: str) -> str:
    product = 10
    for ch in first_ten:
        total = (int(ch) + product) % 10 or 10
        product = (total * 2) % 11
    return str((11 - product) % 10)


@st.composite
def de_tax_ids(draw: st.DrawFn) -> Secret:
    # Nine different digits and one of them twice, never leading with 0.
    order = draw(st.permutations(_DIGITS))
    twice = draw(st.integers(0, 8))
    ten = [*order[:9], order[twice]]
    shuffled = draw(st.permutations(ten).filter(lambda p: p[0] != "0"))
    first_ten = "".join(shuffled)
    number = first_ten + _de_tax_check(first_ten)
    assert checksums.de_tax_id_ok(number), number
    spaced = _group(number, (2, 3, 3, 3))
    value = spaced if draw(st.booleans()) else number
    return Secret("de_tax_id", value, _needles(number), spaced=spaced)


@st.composite
def fr_nirs(draw: st.DrawFn) -> Secret:
    sex = draw(st.sampled_from("12"))
    year = f"{draw(st.integers(0, 99)):02d}"
    month = f"{draw(st.integers(1, 12)):02d}"
    dept = draw(st.sampled_from([f"{d:02d}" for d in range(1, 96) if d != 20] + ["2A", "2B"]))
    commune = f"{draw(st.integers(1, 990)):03d}"
    order = f"{draw(st.integers(1, 999)):03d}"
    body = sex + year + month + dept + commune + order
    numeric = body.replace("2A", "19") if dept == "2A" else body.replace("2B", "18")
    key = f"{97 - int(numeric) % 97:02d}"
    spaced = f"{sex} {year} {month} {dept} {commune} {order} {key}"
    assert checksums.fr_nir_ok(spaced), spaced
    value = spaced if draw(st.booleans()) else spaced.replace(" ", "")
    return Secret("fr_nir", value, _needles(body + key), spaced=spaced)


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


@st.composite
def es_dnis(draw: st.DrawFn) -> Secret:
    if draw(st.booleans()):
        number = draw(_chars(_DIGITS, 8))
        compact = number + _DNI_LETTERS[int(number) % 23]
    else:
        lead = draw(st.sampled_from("XYZ"))
        rest = draw(_chars(_DIGITS, 7))
        compact = lead + rest + _DNI_LETTERS[int(str("XYZ".index(lead)) + rest) % 23]
    assert checksums.es_dni_ok(compact), compact
    value = compact if draw(st.booleans()) else f"{compact[:-1]}-{compact[-1]}"
    return Secret("es_dni", value, _needles(compact))


@st.composite
def it_fiscal_codes(draw: st.DrawFn) -> Secret:
    letters = draw(_chars(_UPPER, 6))
    year = draw(_chars(_DIGITS, 2))
    month = draw(st.sampled_from("ABCDEHLMPRST"))
    day = f"{draw(st.sampled_from([*range(1, 32), *range(41, 72)])):02d}"
    town = draw(st.sampled_from(_UPPER)) + draw(_chars(_DIGITS, 3))
    body = letters + year + month + day + town
    code = next(body + c for c in _UPPER if checksums.it_fiscal_code_ok(body + c))
    return Secret("it_fiscal_code", code, _needles(code))


def _key(kind: str, prefix: st.SearchStrategy[str], rest: st.SearchStrategy[str]) -> Any:
    return st.tuples(prefix, rest).map(lambda p: Secret(kind, p[0] + p[1], _needles(p[0] + p[1])))


@st.composite
def aws_secret_keys(draw: st.DrawFn) -> Secret:
    secret = draw(_mixed(_ALNUM + "/+", 40))
    name = draw(st.sampled_from(["aws_secret_access_key = ", "AWS_SECRET_ACCESS_KEY=",
                                 "SecretAccessKey: "]))  # fmt: skip
    return Secret("aws_secret_key", name + secret, _needles(secret))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@st.composite
def jwts(draw: st.DrawFn) -> Secret:
    alg = draw(st.sampled_from(["HS256", "RS256", "ES256", "PS384"]))
    header = _b64url(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {
        "sub": draw(_chars(_DIGITS, 8)),
        "iat": draw(st.integers(1_500_000_000, 1_800_000_000)),
    }
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = draw(_chars(_B64URL, 43))
    token = f"{header}.{payload}.{signature}"
    return Secret("jwt", token, _needles(f"{payload}.{signature}"))


_PEM_LABELS = ["RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY", "OPENSSH PRIVATE KEY",
               "ENCRYPTED PRIVATE KEY"]  # fmt: skip


@st.composite
def private_keys(draw: st.DrawFn) -> Secret:
    label = draw(st.sampled_from(_PEM_LABELS))
    lines = draw(st.lists(_mixed(_ALNUM + "+/", 64), min_size=2, max_size=3))
    block = f"-----BEGIN {label}-----\n" + "\n".join(lines)
    if draw(st.booleans()):  # pasted whole, or cut off before its END line
        block += f"\n-----END {label}-----"
    return Secret("private_key", block, _needles(lines[0]))


KINDS: dict[str, st.SearchStrategy[Secret]] = {
    "email": emails(),
    "phone": phones(),
    "payment_card": payment_cards(),
    "iban": ibans(),
    "us_ssn": us_ssns(),
    "uk_nino": uk_ninos(),
    "de_tax_id": de_tax_ids(),
    "fr_nir": fr_nirs(),
    "es_dni": es_dnis(),
    "it_fiscal_code": it_fiscal_codes(),
    "openai_key": _key("openai_key", st.sampled_from(["sk-proj-", "sk-"]), _mixed(_ALNUM, 40)),
    "anthropic_key": _key("anthropic_key", st.just("sk-ant-api03-"), _mixed(_B64URL, 40)),
    "aws_access_key": _key(
        "aws_access_key", st.sampled_from(["AKIA", "ASIA"]), _chars(_UPPER + _DIGITS, 16)
    ),
    "aws_secret_key": aws_secret_keys(),
    "github_token": _key(
        "github_token", st.sampled_from(["ghp_", "gho_", "ghs_"]), _mixed(_ALNUM, 36)
    ),
    "gitlab_token": _key("gitlab_token", st.just("glpat-"), _mixed(_ALNUM, 20)),
    "google_api_key": _key("google_api_key", st.just("AIza"), _mixed(_B64URL, 35)),
    "slack_token": _key(
        "slack_token",
        st.sampled_from(["xoxb-", "xoxp-"]),
        st.tuples(_chars(_DIGITS, 12), _chars(_DIGITS, 12), _mixed(_ALNUM, 24)).map("-".join),
    ),
    "stripe_key": _key("stripe_key", st.sampled_from(["sk_live_", "rk_live_"]), _mixed(_ALNUM, 24)),
    "huggingface_token": _key("huggingface_token", st.just("hf_"), _mixed(_ALNUM, 34)),
    "jwt": jwts(),
    "private_key": private_keys(),
}


def secrets(kinds: tuple[str, ...] | None = None) -> st.SearchStrategy[Secret]:
    return st.one_of([KINDS[k] for k in kinds or tuple(KINDS)])


# -- the forms -------------------------------------------------------------------------------

NBSP, NNBSP = "\u00a0", "\u202f"
#: Zero-width space, zero-width joiner, word joiner, byte-order mark, soft hyphen.
ZERO_WIDTH = ("\u200b", "\u200d", "\u2060", "\ufeff", "\u00ad")
#: The forms the hostile tester used against the egress guard.
FORMS = ("plain", "nbsp", "nnbsp", "fullwidth", "zero_width", "json_escaped")
#: More ways to write the same value, for the recall bench and for probing: digits of
#: other scripts, other spaces and dashes, a small `@` (`other_unicode`); decomposed
#: letters (`nfd`); percent-encoding; HTML character references; base64; JSON inside a
#: JSON string inside a JSON document (`nested_json`); groups joined by dots or slashes.
EXTRA_FORMS = ("other_unicode", "nfd", "percent", "html", "base64", "nested_json", "dotted")
#: What the gateway's egress guard reads through (docs/privacy.md), so what the property
#: tests plant: all but base64 (not decoded, by choice) and dotted groups (no pattern).
GUARDED_FORMS = (*FORMS, "other_unicode", "nfd", "percent", "html", "nested_json")

# Zero of each script's digits: Arabic-Indic, Extended Arabic-Indic, Devanagari, Bengali,
# Thai, mathematical bold and double-struck (those two NFKC-fold to ASCII).
_DIGIT_ZEROS = (0x660, 0x6F0, 0x966, 0x9E6, 0xE50, 0x1D7CE, 0x1D7D8)
# Figure, thin, ideographic, medium mathematical and en space.
_SPACES = ("\u2007", "\u2009", "\u3000", "\u205f", "\u2002")
# Hyphen, non-breaking hyphen, en dash, figure dash.
_DASHES = ("\u2010", "\u2011", "\u2013", "\u2012")
_SMALL_AT = "\ufe6b"


#: The kinds written in digit groups, which the NBSP, NNBSP and dotted forms join.
GROUPED_KINDS = ("phone", "payment_card", "iban", "us_ssn", "uk_nino", "de_tax_id", "fr_nir")


def kinds_for(form: str) -> tuple[str, ...]:
    """The kinds a form can be written in."""
    if form in ("nbsp", "nnbsp", "dotted"):
        return GROUPED_KINDS
    if form == "nfd":  # decomposes only what has accents
        return ("email",)
    return tuple(KINDS)


def applicable_forms(secret: Secret) -> tuple[str, ...]:
    forms = ["plain"]
    if secret.spaced is not None:
        forms += ["nbsp", "nnbsp", "dotted"]
    if any(c.isdigit() or c == "@" for c in secret.value):
        forms += ["fullwidth", "other_unicode"]
    if unicodedata.normalize("NFD", secret.value) != secret.value:
        forms.append("nfd")
    return (*forms, "zero_width", "json_escaped", "percent", "html", "base64", "nested_json")


@dataclass(frozen=True)
class Plant:
    """A value rendered in a form, ready to be put into a request. `text` is what goes
    in; with `is_json` it is a whole JSON document holding the value in a string."""

    kind: str
    form: str
    text: str
    needles: tuple[str, ...] = field(repr=False)
    is_json: bool = False

    def decoded(self) -> str:
        """The text as a reader that decodes JSON-in-strings, percent-encoding, HTML
        references and base64 sees it."""
        if self.is_json:
            return "\n".join(json_strings(json.loads(self.text)))
        if self.form == "percent":
            return unquote(self.text)
        if self.form == "html":
            return html.unescape(self.text)
        if self.form == "base64":
            return base64.b64decode(self.text).decode()
        return self.text


def fullwidth(text: str) -> str:
    """Digits and `@` as their full-width forms (U+FF10..U+FF19, U+FF20)."""
    return "".join(
        chr(0xFF10 + int(c)) if c in _DIGITS else "\uff20" if c == "@" else c for c in text
    )


def _escape_json(text: str, forced: set[int]) -> str:
    """A JSON string literal of `text`: non-ASCII and the characters at `forced` as
    `\\uXXXX` (surrogate pairs beyond the BMP), the rest as JSON requires."""
    out = ['"']
    for i, ch in enumerate(text):
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif code < 0x20 or code > 0x7E or i in forced:
            if code > 0xFFFF:
                high, low = divmod(code - 0x10000, 0x400)
                out.append(f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}")
            else:
                out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _json_document(draw: st.DrawFn, value: str) -> str:
    """`{"key": "…"}` holding `value`, some of its letters and digits `\\uXXXX`-escaped."""
    escapable = [i for i, c in enumerate(value) if c.isalnum() or c == "@"]
    forced = set(draw(st.lists(st.sampled_from(escapable), min_size=1, max_size=6)))
    key = draw(st.sampled_from(["to", "note", "email", "account", "value", "q"]))
    return "{" + json.dumps(key) + ": " + _escape_json(value, forced) + "}"


def _some(draw: st.DrawFn, value: str, wanted: Any) -> set[int]:
    """Indices of some characters of `value` that pass `wanted`, at least one."""
    places = [i for i, c in enumerate(value) if wanted(c)] or [0]
    return set(draw(st.lists(st.sampled_from(places), min_size=1, max_size=8)))


@st.composite
def render(draw: st.DrawFn, secret: Secret, form: str) -> Plant:
    value, is_json = secret.value, False
    if form in ("nbsp", "nnbsp", "dotted"):
        assert secret.spaced is not None
        joint = {"nbsp": NBSP, "nnbsp": NNBSP}.get(form) or draw(st.sampled_from("./"))
        text = secret.spaced.replace(" ", joint)
    elif form == "fullwidth":
        text = fullwidth(value)
    elif form == "zero_width":
        inside = st.integers(1, len(value) - 1)
        spots = sorted(draw(st.lists(inside, min_size=1, max_size=3, unique=True)), reverse=True)
        text = value
        for spot in spots:
            text = text[:spot] + draw(st.sampled_from(ZERO_WIDTH)) + text[spot:]
    elif form == "json_escaped":
        text, is_json = _json_document(draw, value), True
    elif form == "nested_json":
        inner = _json_document(draw, value)
        text, is_json = json.dumps({"payload": inner}, ensure_ascii=draw(st.booleans())), True
    elif form == "other_unicode":
        zero = draw(st.sampled_from(_DIGIT_ZEROS))
        space, dash = draw(st.sampled_from(_SPACES)), draw(st.sampled_from(_DASHES))
        swap = {" ": space, "-": dash, "@": _SMALL_AT}
        text = "".join(
            chr(zero + int(c)) if c in _DIGITS else swap.get(c, c) for c in (secret.spaced or value)
        )
    elif form == "nfd":
        text = unicodedata.normalize("NFD", value)
    elif form == "percent":
        chosen = _some(draw, value, lambda c: c.isalnum() or c in "@ .-+")
        text = "".join(quote(c, safe="") if i in chosen or c in " %" else c
                       for i, c in enumerate(value))  # fmt: skip
    elif form == "html":
        chosen = _some(draw, value, lambda c: c.isalnum() or c in "@ .-+")
        style = draw(st.sampled_from(["&#{};", "&#x{:x};"]))
        text = "".join(style.format(ord(c)) if i in chosen else html.escape(c, quote=False)
                       for i, c in enumerate(value))  # fmt: skip
    elif form == "base64":
        text = base64.b64encode(value.encode()).decode()
    else:
        text = value
    return Plant(secret.kind, form, text, secret.needles, is_json)


@st.composite
def plants(
    draw: st.DrawFn, forms: tuple[str, ...] = FORMS, kinds: tuple[str, ...] | None = None
) -> Plant:
    """A secret or personal value of one of `kinds` (all), rendered in one of `forms`."""
    form = draw(st.sampled_from(forms))
    usable = [k for k in kinds_for(form) if kinds is None or k in kinds]
    kind = draw(st.sampled_from(usable))
    secret = draw(KINDS[kind].filter(lambda s: form in applicable_forms(s)))
    return draw(render(secret, form))
