"""Folding Unicode forms to what the detectors read, and mapping findings back."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spillgate.server.privacy import normalise
from spillgate.server.privacy.normalise import fold


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("4111\u00a01111\u202f1111\u20091111", "4111 1111 1111 1111"),  # no-break spaces
        ("\uff14\uff11\uff11\uff11", "4111"),  # full-width digits
        ("\u0664\u0661\u0661\u0661 \u096a", "4111 4"),  # Arabic-Indic, Devanagari digits
        ("jane\uff20corp.io", "jane@corp.io"),  # full-width at sign
        ("ja\u200bne\u2060@co\u200drp.io\ufeff", "jane@corp.io"),  # format characters
        ("536\u201122\u20131234", "536-22-1234"),  # non-breaking hyphen, en dash
        ("mu\u0308ller", "muller"),  # a combining mark standing alone
        ("plain ascii", "plain ascii"),
    ],
)
def test_forms_fold_to_what_the_patterns_read(written: str, read: str) -> None:
    assert fold(written).text == read


def test_a_span_of_the_folded_text_maps_to_the_characters_written() -> None:
    written = "mail ja\u200bne@corp.io or \ufb01le"
    folded = fold(written)
    start = folded.text.index("jane")
    start, end = folded.original_span(start, start + len("jane@corp.io"))
    assert written[start:end] == "ja\u200bne@corp.io"
    fi = folded.text.index("fi")  # one character written, two read: both map to it
    assert folded.original_span(fi, fi + 1) == folded.original_span(fi + 1, fi + 2)


_CHARS = st.sampled_from([*"ab1 @.-", "\u00a0", "\u200b", "\ufb01", "\uff14", "\u0308"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_CHARS, min_size=1, max_size=200).map("".join), st.integers(1, 50))
def test_folding_in_slices_reads_as_folding_whole(text: str, size: int) -> None:
    """Large texts fold a slice at a time (no long C call): the same text, the same map."""
    whole = fold(text)
    saved, normalise.SLICE = normalise.SLICE, size
    try:
        sliced = fold(text)
    finally:
        normalise.SLICE = saved
    assert sliced.text == whole.text
    assert [sliced.original_start(i) for i in range(len(sliced.text))] == [
        whole.original_start(i) for i in range(len(whole.text))
    ]
