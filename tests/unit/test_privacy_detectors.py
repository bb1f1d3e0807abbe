"""The privacy detector: what it finds, what it must not find, and where it looks."""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from spillgate.server.privacy import BUILTIN_KINDS, PrivacyConfig, build_scanner, redact, scan
from spillgate.server.privacy import checksums as cs
from spillgate.server.privacy.detectors import BUILTIN
from spillgate.server.privacy.scanner import Scanner, Span, _without_overlaps

NIR = "1 84 12 76 451 089 46"  # key 46 = 97 - 1841276451089 mod 97
POSITIVES = [
    ("email", "jane.doe@example-mail.com"),
    ("email", "müller@bücher.de"),
    ("email", "a+b@sub.corp.co.uk"),
    ("phone", "+44 20 7946 0958"),
    ("phone", "+1 (415) 555-2671"),
    ("phone", "+49 30 12345678"),
    ("phone", "+33 1 23 45 67 89"),
    ("phone", "+4915112345678"),
    ("phone", "0044 20 7946 0958"),
    ("phone", "(415) 555-2671"),
    ("phone", "415-555-2671"),
    ("phone", "415.555.2671"),
    ("phone", "020 7946 0958"),
    ("phone", "(030) 1234567"),
    ("phone", "030/1234567"),
    ("phone", "01.23.45.67.89"),
    ("payment_card", "4111 1111 1111 1111"),
    ("payment_card", "5500-0000-0000-0004"),
    ("payment_card", "3782 822463 10005"),
    ("payment_card", "6011111111111117"),
    ("iban", "DE89 3704 0044 0532 0130 00"),
    ("iban", "GB82 WEST 1234 5698 7654 32"),
    ("iban", "FR14 2004 1010 0505 0001 3M02 606"),
    ("iban", "NL91ABNA0417164300"),
    ("us_ssn", "536-22-1234"),
    ("uk_nino", "AB 12 34 56 C"),
    ("uk_nino", "JG103759A"),
    ("de_tax_id", "86095742719"),
    ("de_tax_id", "86 095 742 719"),
    ("fr_nir", NIR),
    ("es_dni", "12345678Z"),
    ("es_dni", "X1234567L"),
    ("it_fiscal_code", "RSSMRA85T10A562S"),
    ("anthropic_key", "sk-ant-api03-Ab3dEf6hIj9kLmN0pQrStUvWxYz"),
    ("openai_key", "sk-proj-Ab3dEf6hIj9kLmN0pQrStUvWx"),
    ("openai_key", "sk-Ab3dEf6hIj9kLmN0pQrStUvWxYz012345678901234567"),
    ("aws_access_key", "AKIAIOSFODNN7EXAMPLE"),
    ("github_token", "ghp_" + "aB3" * 12),
    ("github_token", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuv"),
    ("gitlab_token", "glpat-Ab3dEf6hIj9kLmN0pQrS"),
    ("google_api_key", "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"),
    ("slack_token", "xoxb-123456789012-abcdefABCDEF"),
    ("stripe_key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("huggingface_token", "hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh"),
    (
        "jwt",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
        "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ),
    (
        "private_key",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx4Ks0r8mQz5v\nabcdefghijklmnop==\n"
        "-----END RSA PRIVATE KEY-----",
    ),
    ("private_key", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU"),
]

NEGATIVES = [
    "1234567890",  # a plain number
    "0012345678",  # zero-padded
    "1700000000",  # a timestamp
    "ID 100000000000",
    "2024-01-15",
    "15.03.2024",
    "2024-03-15T10:42:17.512Z",
    "12:30:45",
    "v10.0.19045.2965",
    "1.2.3.4.5.6.7",
    "192.168.100.200",
    "$1,234,567.89",
    "1 234 567,89 €",
    "3.14159265358979",
    "ISBN 978-3-16-148410-0",
    "+15 points",
    "build 20240314.1",
    "order #4521987",
    "ticket 2024-0042-17",
    "ratio 1/2/3/4/5/6",
    "4111 1111 1111 1112",  # Luhn fails
    "0000 0000 0000 0000",
    "1234 5678 9012 3452",  # Luhn holds, but no card network starts with 12
    "DE89 3704 0044 0532 0130 02",  # mod 97 fails
    "000-12-3456",
    "666-12-3456",
    "912-34-5678",
    "078-05-1120",  # the SSA's famous wallet sample
    "GB123456A",  # GB is never a NINO prefix
    "AB123456E",  # suffixes are A-D
    "86095742710",  # check digit wrong
    "1 84 12 76 451 089 47",  # key wrong
    "12345678A",  # check letter wrong
    "RSSMRA85T10A562T",  # check letter wrong
    "@property",
    "user@localhost",
    "a..b@x.com",
    "sk-learn-is-a-python-library-name",
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END PUBLIC KEY-----",
    "eyJub3RhbGciOjF9.eyJzdWIiOjF9abc.abcdefghij",  # its header has no alg
]


def chat(*contents: object) -> dict[str, object]:
    return {"model": "m", "messages": [{"role": "user", "content": c} for c in contents]}


@pytest.mark.parametrize(("kind", "value"), POSITIVES, ids=[f"{k}:{v[:24]}" for k, v in POSITIVES])
def test_finds_each_kind_exactly(kind: str, value: str) -> None:
    text = f"Please note {value} for later."
    spans = Scanner().spans(text)
    assert [(s.kind, text[s.start : s.end]) for s in spans] == [(kind, value)]
    assert scan(chat(text)).counts == {kind: 1}


@pytest.mark.parametrize("text", NEGATIVES)
def test_ignores_lookalikes(text: str) -> None:
    assert not scan(chat(f"see {text} now")), text


def test_an_aws_secret_key_is_found_next_to_its_name_only() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    text = f'aws_secret_access_key = "{secret}"'
    [span] = Scanner().spans(text)
    assert (span.kind, text[span.start : span.end]) == ("aws_secret_key", secret)
    assert not scan(chat(f"the hash is {secret}"))


def test_checksums() -> None:
    assert cs.luhn_ok("79927398713") and not cs.luhn_ok("79927398710")
    assert cs.iban_ok("GB82WEST12345698765432") and not cs.iban_ok("GB82WEST12345698765433")
    assert not cs.iban_ok("DE89370400440532013000" + "0")  # Germany's length is 22
    assert cs.de_tax_id_ok("86095742719") and not cs.de_tax_id_ok("86095742718")
    assert not cs.de_tax_id_ok("11111111116")  # the repeated-digit rule
    assert cs.fr_nir_ok(NIR) and not cs.fr_nir_ok(NIR[:-1] + "7")
    corsica = "2 69 05 2A 004 012"  # department 2A counts as 19 in the key
    key = 97 - int("2690519004012") % 97
    assert cs.fr_nir_ok(f"{corsica} {key:02d}")
    assert cs.es_dni_ok("12345678Z") and cs.es_dni_ok("Y1234567X")
    assert cs.it_fiscal_code_ok("RSSMRA85T10A562S")


def test_findings_never_show_the_values() -> None:
    values = [v for _, v in POSITIVES]
    findings = scan(chat(" and ".join(values)))
    assert findings.total == len(values)
    _, vault = redact(chat(" and ".join(values)))
    for printable in (repr(findings), str(findings), repr(vault), str(vault)):
        for value in values:
            assert value not in printable
            assert value[:8] not in printable
    assert repr(scan(chat("Mail bob@corp.io"))) == "Findings(email=1)"


def test_reads_every_text_field_and_no_image_bytes() -> None:
    payload = {
        "model": "m",
        "instructions": "reply to ops@corp.io",
        "messages": [
            {"role": "system", "content": "key sk-ant-api03-Ab3dEf6hIj9kLmN0pQrStUvWxYz"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "my IBAN is DE89 3704 0044 0532 0130 00"},
                    # Base64 is read as the text it is, never decoded (this is "a@b.io").
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,YUBiLmlv"}},
                    # No field is skipped for what it looks like.
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,c@d.io"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "send", "arguments": '{"to": "ann@corp.io"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sent; call +44 20 7946 0958"},
        ],
        # Tool definitions leave the box like the messages do: read.
        "tools": [{"type": "function", "function": {"name": "x", "description": "x@y.io"}}],
    }
    # ann@corp.io counts once, though read both in the JSON text and decoded from it.
    assert scan(payload).counts == {"anthropic_key": 1, "email": 4, "iban": 1, "phone": 1}
    assert scan({"model": "m", "prompt": ["call 415-555-2671", [1, 2, 3]]}).counts == {"phone": 1}
    responses_input = [
        {"role": "user", "content": [{"type": "input_text", "text": "bob@corp.io"}]},
        {"type": "function_call", "arguments": '{"card": "4111111111111111"}'},
        {"type": "function_call_output", "output": "SSN 536-22-1234"},
    ]
    assert scan({"model": "m", "input": responses_input}).counts == {
        "email": 1,
        "payment_card": 1,
        "us_ssn": 1,
    }
    assert scan({"model": "m", "input": ["bob@corp.io", "ok"]}).counts == {"email": 1}
    assert not scan({"model": "m", "messages": []})


def test_configuration_switches_detectors_and_adds_patterns() -> None:
    text = "call 415-555-2671, employee EMP-004211, mail bob@corp.io and noreply@corp.io"
    config = PrivacyConfig.model_validate(
        {
            "disabled": ["phone"],
            "custom": [{"name": "employee_id", "pattern": r"EMP-\d{6}"}],
            "allow": [r"noreply@corp\.io"],
        }
    )
    assert build_scanner(config).scan(chat(text)).counts == {"email": 1, "employee_id": 1}
    redacted, _ = build_scanner(config).redact(chat(text))
    assert redacted["messages"][0]["content"] == (
        "call 415-555-2671, employee <EMPLOYEE_ID_1>, mail <EMAIL_1> and noreply@corp.io"
    )


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"disabled": ["phones"]}, "unknown detector 'phones'"),
        ({"custom": [{"name": "x", "pattern": "(["}]}, "not a valid regular expression"),
        ({"custom": [{"name": "Bad Name", "pattern": "x"}]}, "should match pattern"),
        ({"allow": ["a)"]}, "not a valid regular expression"),
        ({"presidio": {"score_threshold": 2}}, "less than or equal to 1"),
        ({"detectors": []}, "Extra inputs are not permitted"),
    ],
)
def test_bad_configuration_says_what_to_change(section: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        PrivacyConfig.model_validate(section)


def test_every_builtin_kind_is_exercised() -> None:
    assert set(BUILTIN_KINDS) <= {k for k, _ in POSITIVES} | {"aws_secret_key"}


# The scanner reads windows of the text for speed; it must find what a plain pass over the
# whole text finds.
def _whole_text_spans(text: str) -> list[Span]:
    found = []
    for rank, det in enumerate(BUILTIN):
        pos = 0
        while (match := det.pattern.search(text, pos)) is not None:
            start, end = match.span(det.group)
            length = det.check(text[start:end])
            if length:
                found.append(Span(start, start + length, det.kind, rank))
            pos = start + length if length else match.start() + 1
    return _without_overlaps(found)


_PIECES = st.sampled_from(
    [v for _, v in POSITIVES]
    + NEGATIVES
    + [" ", "\n", "-", ".", "+", "(", ")", "/", "@", "0", "7", "A", "x", "no", "Ü", "😀"]
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(_PIECES, max_size=12))
def test_windows_find_what_the_whole_text_holds(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert Scanner().spans(text) == _whole_text_spans(text)


def test_percent_and_html_encoded_values_are_read_as_what_they_decode_to() -> None:
    assert scan({"m": "mail jane.doe%40corp.io"}).counts == {"email": 1}
    assert scan({"m": "mail jane.doe&#64;corp.io or ann&commat;corp.io"}).counts == {"email": 2}
    image = base64.b64encode(bytes(range(256)) * 64).decode()
    for text in (f"data:image/png;base64,{image}", "50% off", "fish &amp; chips", "a%2Fb"):
        assert not scan({"m": text}), text
