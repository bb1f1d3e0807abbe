"""The privacy gate: it may only ever save work, never hide a finding."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_privacy_detectors import NEGATIVES, POSITIVES

from spillgate.server.privacy import gate as gate_module
from spillgate.server.privacy.detectors import BUILTIN, DIGIT_RUN
from spillgate.server.privacy.gate import MAX_GATE_CHARS, Gate
from spillgate.server.privacy.scanner import Scanner

GATES = [d.gate or (d.scope.gate if d.scope is not None else None) for d in BUILTIN]


def _candidates(text: str) -> list[bool]:
    """For each built-in detector: does its pattern match anywhere in `text` (before any
    check), or, for a windowed one, does the text have a window of its scope?"""
    out = []
    for det in BUILTIN:
        if det.scope is not None and det.scope.digits:
            out.append(DIGIT_RUN.search(text) is not None)
        elif det.scope is not None:
            out.append(any(anchor in text for anchor in det.scope.anchors))
        else:
            out.append(det.pattern.search(text) is not None)
    return out


_PIECES = st.sampled_from(
    [v for _, v in POSITIVES]
    + NEGATIVES
    + [" ", "\n", "\x00", "-", "_", ".", "@", "0", "7", "A", "K", "I", "sk", "ey", "J", "Ü", "😀"]
)


def test_every_builtin_detector_has_a_gate() -> None:
    assert all(g is not None for g in GATES)


def test_a_gate_matches_at_most_max_gate_chars() -> None:
    for g in GATES:
        assert g is not None
        widest = re._parser.parse(g).getwidth()[1]  # type: ignore[attr-defined]
        assert widest <= MAX_GATE_CHARS, g


@pytest.mark.parametrize(("kind", "value"), POSITIVES, ids=[f"{k}:{v[:24]}" for k, v in POSITIVES])
def test_each_kinds_gate_opens_on_its_values(kind: str, value: str) -> None:
    passes = Gate(GATES).passes(f"text before {value} and after")
    assert any(p for det, p in zip(BUILTIN, passes, strict=True) if det.kind == kind)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(_PIECES, max_size=12))
def test_a_gate_opens_wherever_its_detector_could_match(pieces: list[str]) -> None:
    text = "".join(pieces)
    passes = Gate(GATES).passes(text)
    for det, could, passed in zip(BUILTIN, _candidates(text), passes, strict=True):
        assert passed or not could, (det.kind, text)


def test_clean_prose_opens_no_gate() -> None:
    prose = "The gateway forwards each request to a local engine unless it is full. " * 50
    assert not any(Gate(GATES).passes(prose))
    assert Scanner().spans(prose) == []


def test_a_value_across_a_slice_boundary_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gate_module, "SLICE", 1000)
    for offset in range(990, 1001):
        text = "x " * (offset // 2) + ("" if offset % 2 == 0 else "x") + " jane.doe@corp.io 12"
        assert Scanner().scan({"m": text}).counts == {"email": 1}, offset


def test_a_lone_surrogate_does_not_stop_the_gate() -> None:
    assert Scanner().scan({"m": "\ud800 mail jane.doe@corp.io"}).counts == {"email": 1}


def test_a_failing_gate_lets_every_detector_read(monkeypatch: pytest.MonkeyPatch) -> None:
    scanner = Scanner()

    def broken(data: bytes) -> set[int]:
        raise RuntimeError("hyperscan is broken")

    monkeypatch.setattr(scanner._gate, "_matched", broken)
    assert scanner.scan({"m": "mail jane.doe@corp.io, key AKIAIOSFODNN7EXAMPLE"}).counts == {
        "email": 1,
        "aws_access_key": 1,
    }


def test_a_custom_detector_has_no_gate_and_always_reads() -> None:
    from spillgate.server.privacy import PrivacyConfig, build_scanner

    scanner = build_scanner(PrivacyConfig(custom=[{"name": "ticket", "pattern": r"TCK-\d+"}]))
    assert scanner.scan({"m": "see tck-1 and TCK-42"}).counts == {"ticket": 1}
