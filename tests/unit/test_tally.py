"""The stream tally counts the same tokens however the stream is cut and batched."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spillgate.server import tally as tally_module
from spillgate.server.tally import StreamTally, text_tokens


def _stream(pieces: list[str]) -> bytes:
    events = [
        b"data: " + orjson.dumps({"choices": [{"delta": {"content": p}}]}) + b"\n\n" for p in pieces
    ]
    return b"".join(events) + b"data: [DONE]\n\n"


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=60),
    cuts=st.lists(st.integers(min_value=1, max_value=97), min_size=1, max_size=20),
    batch=st.sampled_from([1, 64, 500, 1 << 14]),
)
def test_any_cut_and_batch_counts_what_the_whole_stream_holds(
    pieces: list[str], cuts: list[int], batch: int
) -> None:
    stream = _stream(pieces)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tally_module, "BATCH_BYTES", batch)
        tally = StreamTally()
        pos, i = 0, 0
        while pos < len(stream):
            step = cuts[i % len(cuts)]
            tally.feed(stream[pos : pos + step])
            pos, i = pos + step, i + 1
        assert tally.completion_tokens == text_tokens(stream) >= len(pieces)


def test_a_line_without_its_end_is_not_counted() -> None:
    tally = StreamTally()
    tally.feed(_stream(["one", "two"])[:-20])  # the last event cut before its newline
    assert tally.completion_tokens == text_tokens(_stream(["one"]))
