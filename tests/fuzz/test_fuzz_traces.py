"""Fuzzing ``infadapter.traces.load_trace``: any file is a per-second series or a clear refusal."""

from __future__ import annotations

import io
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from infadapter.errors import InvalidInput
from infadapter.traces import load_trace
from tests.fuzz.strategies import assert_clear, fuzz

SUFFIXES = [".tbz2", ".tar.bz2", ".txt", ".csv", ""]


def tbz2(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:bz2") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


GOOD_ARCHIVE = tbz2([("workload.txt", " ".join(str(i % 7) for i in range(400)).encode())])


def load_or_refuse(file: Path, data: bytes, start_s: float | None = None, duration_s: float | None = None) -> np.ndarray | InvalidInput:
    file.write_bytes(data)
    try:
        series = load_trace(file, start_s, duration_s, cache_dir=False)
    except InvalidInput as exc:
        assert_clear(exc)
        assert str(file) in str(exc), "a trace error names the file"
        return exc
    finally:
        assert file.read_bytes() == data, "loading a trace changed the file"
    assert isinstance(series, np.ndarray) and series.dtype == np.float64 and series.ndim == 1
    assert series.size > 0
    known = series[~np.isnan(series)]
    assert np.all(np.isfinite(known)) and np.all(known >= 0), "a trace is NaN (gap) or a finite count >= 0"
    return series


@fuzz(120)
@given(data=st.binary(max_size=400), suffix=st.sampled_from(SUFFIXES))
def test_any_bytes_are_a_trace_or_refused(tmp_path: Path, data: bytes, suffix: str) -> None:
    load_or_refuse(tmp_path / f"trace{suffix}", data)


_TOKENS = st.sampled_from(["0", "1", "2", "17", "1.5", "-1", "nan", "inf", "-inf", "1e20", "x", "", " ", ",", "rps", "t_sec", "é", "\t", "\r"])


@fuzz(150)
@given(
    lines=st.lists(st.lists(_TOKENS, max_size=4).map(" ".join), max_size=12),
    suffix=st.sampled_from([".txt", ".csv", ""]),
)
def test_number_like_text_is_a_trace_or_refused(tmp_path: Path, lines: list[str], suffix: str) -> None:
    load_or_refuse(tmp_path / f"trace{suffix}", "\n".join(lines).encode())


@fuzz(100)
@given(
    header=st.lists(st.sampled_from(["t_sec", "trace_index", "rps", "RPS ", "count", ""]), min_size=1, max_size=4),
    rows=st.lists(st.lists(st.one_of(_TOKENS, st.integers(0, 10**6).map(str)), max_size=4), max_size=12),
)
def test_csv_with_any_columns_and_cells_is_a_trace_or_refused(tmp_path: Path, header: list[str], rows: list[list[str]]) -> None:
    text = "\n".join([",".join(header), *(",".join(r) for r in rows)])
    result = load_or_refuse(tmp_path / "trace.csv", text.encode())
    if "rps" not in [h.strip().lower() for h in header]:
        assert isinstance(result, InvalidInput) and "rps" in str(result)


@fuzz(60)
@given(cut=st.integers(0, len(GOOD_ARCHIVE) - 1), suffix=st.sampled_from([".tbz2", ""]))
def test_a_truncated_archive_is_refused_or_read_whole(tmp_path: Path, cut: int, suffix: str) -> None:
    result = load_or_refuse(tmp_path / f"trace{suffix}", GOOD_ARCHIVE[:cut])
    if isinstance(result, np.ndarray):
        # Losing only the bzip2 trailer or tar padding can still leave every sample: then all 400 must be there.
        assert result.size == 400


@fuzz(60)
@given(
    members=st.lists(st.tuples(st.sampled_from(["workload.txt", "a/workload.txt", "other.txt", "x"]), st.binary(max_size=60)), max_size=3),
)
def test_archives_with_any_members_are_a_trace_or_refused(tmp_path: Path, members: list[tuple[str, bytes]]) -> None:
    load_or_refuse(tmp_path / "trace.tbz2", tbz2(members))


@fuzz(80)
@given(stamps=st.lists(st.floats(min_value=-1e4, max_value=1e4, allow_nan=False), min_size=2, max_size=30))
def test_timestamp_files_count_every_request(tmp_path: Path, stamps: list[float]) -> None:
    text = "\n".join(f"{s:.3f}" for s in stamps) + "\n"
    result = load_or_refuse(tmp_path / "stamps.txt", text.encode())
    if isinstance(result, np.ndarray) and all("." in f"{s:.3f}" for s in stamps):
        parsed = [float(f"{s:.3f}") for s in stamps]
        assert np.nansum(result) <= len(parsed)  # gaps (runs of empty seconds) may be masked, never invented


@fuzz(80)
@given(
    start_s=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    duration_s=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
)
def test_any_cut_is_a_segment_or_refused(tmp_path: Path, start_s: float | None, duration_s: float | None) -> None:
    load_or_refuse(tmp_path / "trace.txt", b" ".join(b"%d" % (i % 5 + 1) for i in range(50)), start_s, duration_s)


# --------------------------------------------------------------------------- found by fuzzing, fixed in traces.py


@pytest.mark.parametrize(("start_s", "duration_s"), [(math.nan, None), (None, math.nan), (None, math.inf), (math.nan, math.nan)])
def test_a_non_finite_cut_is_refused(tmp_path: Path, start_s: float | None, duration_s: float | None) -> None:
    result = load_or_refuse(tmp_path / "trace.txt", b"1 2 3 4", start_s, duration_s)
    assert isinstance(result, InvalidInput)


@pytest.mark.parametrize("text", [b"0.5\n1e12\n", b"1.5\n1e300\n", b"-1e300\n1.5\n"])
def test_a_timestamp_span_too_long_to_count_is_refused(tmp_path: Path, text: bytes) -> None:
    result = load_or_refuse(tmp_path / "stamps.txt", text)
    assert isinstance(result, InvalidInput)


def test_a_huge_csv_cell_is_refused(tmp_path: Path) -> None:
    result = load_or_refuse(tmp_path / "trace.csv", b'rps\n"' + b"1" * 200_000 + b'"\n')
    assert isinstance(result, InvalidInput)


@pytest.mark.parametrize(
    ("name", "data", "expect"),
    [
        ("t.txt", b"", "no samples"),
        ("t.txt", b"1 -2 3", "negative count"),
        ("t.txt", b"1 nan 3", "non-finite"),
        ("t.csv", b"t_sec,x\n1,2\n", "no 'rps' column"),
        ("t.csv", b"t_sec,rps\n1\n", "line 2"),
        ("t.csv", b"rps\n\xff\n", "UTF-8"),
        ("t.tbz2", GOOD_ARCHIVE[:40], "bzip2"),
        ("t.tbz2", tbz2([("a.txt", b"1"), ("b.txt", b"2")]), "workload.txt"),
        ("t.txt", b"1\x002", "binary"),
    ],
)
def test_bad_traces_get_a_clear_error(tmp_path: Path, name: str, data: bytes, expect: str) -> None:
    result = load_or_refuse(tmp_path / name, data)
    assert isinstance(result, InvalidInput)
    assert expect in str(result)


def test_a_missing_path_or_a_directory_is_refused(tmp_path: Path) -> None:
    for path in (tmp_path / "nope.tbz2", tmp_path):
        with pytest.raises(InvalidInput) as info:
            load_trace(path, cache_dir=False)
        assert_clear(info.value)
