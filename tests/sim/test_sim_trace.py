"""The Azure trace loader: times, token counts, scaling, request classes, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.sim.trace import (
    DEFAULT_TRACE,
    RequestClass,
    TraceError,
    assign_classes,
    load_trace,
    mean_rate,
    scale_to_rate,
)

HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "trace.csv"
    path.write_text(HEADER + body)
    return path


def test_rows_become_requests_timed_from_the_first_arrival(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,396,109\n"
        "2023-11-16 18:15:51.2224670,879,0\n",
    )
    requests = load_trace(path)
    assert [r.request_id for r in requests] == [0, 1, 2]
    assert [r.arrival_s for r in requests] == pytest.approx([0.0, 4.314579, 4.541876])
    assert [(r.prompt_tokens, r.output_tokens) for r in requests] == [
        (374, 44),
        (396, 109),
        (879, 1),  # nothing generated still costs the prefill and one sampled token
    ]


def test_limit_keeps_the_first_requests(tmp_path: Path) -> None:
    path = write(tmp_path, "".join(f"2023-11-16 18:00:0{i}.0,10,5\n" for i in range(5)))
    assert len(load_trace(path, limit=3)) == 3


def test_scaling_keeps_the_burst_shape_and_reaches_the_rate(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "2023-11-16 18:00:00.0,10,5\n2023-11-16 18:00:01.0,10,5\n2023-11-16 18:00:10.0,10,5\n",
    )
    requests = load_trace(path)
    assert mean_rate(requests) == pytest.approx(0.2)
    faster = scale_to_rate(requests, 2.0)
    assert mean_rate(faster) == pytest.approx(2.0)
    assert [r.arrival_s for r in faster] == pytest.approx([0.0, 0.1, 1.0])


def test_classes_take_their_shares_and_depend_only_on_the_seed(tmp_path: Path) -> None:
    path = write(tmp_path, "".join(f"2023-11-16 18:00:{i:02d}.0,10,5\n" for i in range(60)))
    requests = load_trace(path)
    classed = assign_classes(requests, 0.10, 0.05, seed=3)
    count = {k: sum(r.klass is k for r in classed) for k in RequestClass}
    assert count == {RequestClass.MARKED: 6, RequestClass.PERSONAL: 3, RequestClass.PLAIN: 51}
    assert sum(r.sensitive for r in classed) == 9
    assert classed == assign_classes(requests, 0.10, 0.05, seed=3)
    assert classed != assign_classes(requests, 0.10, 0.05, seed=4)


def test_a_file_without_the_trace_columns_says_which_are_missing(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("time,prompt\n1,2\n")
    with pytest.raises(TraceError, match=r"missing column.*ContextTokens"):
        load_trace(path)


def test_a_bad_number_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "2023-11-16 18:00:00.0,10,5\n2023-11-16 18:00:01.0,ten,5\n")
    with pytest.raises(TraceError, match=r"trace.csv:3"):
        load_trace(path)


def test_an_empty_trace_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="no requests"):
        load_trace(write(tmp_path, ""))


def test_the_shipped_azure_trace_loads_whole() -> None:
    if not DEFAULT_TRACE.exists():
        pytest.skip(f"the Azure trace is not at {DEFAULT_TRACE}")
    requests = load_trace()
    assert len(requests) == 19_366
    assert requests[-1].arrival_s == pytest.approx(3501.72, abs=0.01)
