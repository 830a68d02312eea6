"""Traces in the formats people have: counts, per-second CSV, request timestamps, access-log CSV, intervals.

Every file is generated here (small, in tmp_path); the expected per-second counts are computed
independently with ``np.bincount``.
"""

from __future__ import annotations

import io
import tarfile
import tracemalloc
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from infadapter.errors import InvalidInput
from infadapter.traces import MAX_TRACE_S, TraceOptions, load_trace, read_trace

EPOCH_S = 1_630_454_400  # 2021-09-01T00:00:00Z


def request_times(rate_rps: float = 5.0, duration_s: int = 120, seed: int = 1) -> np.ndarray:
    """Sorted request times (seconds from 0) and, below, the per-second counts they must give."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.uniform(0, duration_s, int(rate_rps * duration_s)))


def per_second(times_s: np.ndarray) -> list[float]:
    seconds = np.floor(times_s).astype(np.int64)
    return np.bincount(seconds - seconds.min()).astype(float).tolist()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def read(path: Path, **options: object) -> np.ndarray:
    return read_trace(path, TraceOptions(**options), cache_dir=False).counts  # type: ignore[arg-type]


def refusal(path: Path, **options: object) -> str:
    with pytest.raises(InvalidInput) as info:
        read_trace(path, TraceOptions(**options), cache_dir=False)  # type: ignore[arg-type]
    for error in info.value.errors:
        assert error.hint, f"no hint: {error}"
    return str(info.value)


# --------------------------------------------------------------------------- counts


@pytest.mark.parametrize("text", ["5\n7\n0\n3\n", "5 7 0 3", "5,7,0,3\n", "5;7;0;3", "5\t7\t0\t3\n", "# a trace\n5\n7 # the burst\n# more\n0\n3\n"])
def test_counts_take_any_separator_and_comments(tmp_path: Path, text: str) -> None:
    assert read(write(tmp_path / "c.txt", text)).tolist() == [5, 7, 0, 3]


def test_counts_per_minute_are_spread_evenly_with_a_note(tmp_path: Path) -> None:
    trace = read_trace(write(tmp_path / "m.txt", "600 120 0 60\n"), TraceOptions(interval_s=60), cache_dir=False)
    assert trace.counts.size == 240 and trace.counts.sum() == 780
    assert trace.counts[:60].tolist() == [10.0] * 60 and trace.counts[60:120].tolist() == [2.0] * 60
    assert any("spread evenly" in note for note in trace.notes)


def test_the_paper_archive_still_reads_and_takes_an_interval(tmp_path: Path) -> None:
    path = tmp_path / "w.tbz2"
    data = b"4 8 12"
    with tarfile.open(path, "w:bz2") as archive:
        info = tarfile.TarInfo("workload.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    assert read(path).tolist() == [4, 8, 12]
    assert read(path, interval_s=2).tolist() == [2, 2, 4, 4, 6, 6]


# --------------------------------------------------------------------------- per-second CSV


def test_csv_places_rows_by_t_sec_and_fills_missing_seconds_with_zeros(tmp_path: Path) -> None:
    rows = [(0, 10), (1, 11), (2, 12), (6, 16), (7, 17)]  # seconds 3-5 missing
    path = write(tmp_path / "g.csv", "t_sec,trace_index,rps\n" + "".join(f"{t},{900 + t},{c}\n" for t, c in rows))
    trace = read_trace(path, cache_dir=False)
    assert trace.counts.tolist() == [10, 11, 12, 0, 0, 0, 16, 17]  # before: [10, 11, 12, 16, 17], shifted
    assert any("3 seconds without a row" in note for note in trace.notes)


def test_csv_rows_out_of_order_are_placed_by_time(tmp_path: Path) -> None:
    assert read(write(tmp_path / "o.csv", "t_sec,rps\n2,7\n0,5\n1,6\n")).tolist() == [5, 6, 7]


@pytest.mark.parametrize(
    ("text", "options"),
    [
        ("t_sec;rps\n0;5\n1;6\n2;7\n", {}),
        ("t_sec\trps\n0\t5\n1\t6\n2\t7\n", {}),
        ("# exported by hand\n\n# t_sec is relative\nt_sec,rps\n0,5\n# a comment row\n1,6\n2,7\n", {}),
        ("second,requests,errors\n0,5,0\n1,6,1\n2,7,0\n", {"column": "requests"}),
        ("time,rps\n2021-09-01T00:00:00Z,5\n2021-09-01T00:00:01Z,6\n2021-09-01T00:00:02Z,7\n", {}),
        (f"t,rps\n{EPOCH_S * 1000},5\n{EPOCH_S * 1000 + 1000},6\n{EPOCH_S * 1000 + 2000},7\n", {}),  # epoch ms by size
    ],
)
def test_csv_delimiters_comments_columns_and_time_forms(tmp_path: Path, text: str, options: dict[str, object]) -> None:
    assert read(write(tmp_path / "t.csv", text), **options).tolist() == [5, 6, 7]


def test_per_minute_csv_needs_interval_and_is_then_spread(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "t_sec,rps\n0,600\n60,120\n120,60\n")
    message = refusal(path)
    assert "every row is 60 s after the previous one" in message and "--interval 60" in message
    counts = read(path, interval_s=60)
    assert counts.size == 180 and counts.sum() == 780 and counts[0] == 10 and counts[179] == 1
    assert read(path, interval_s=1).tolist()[:3] == [600, 0, 0]  # explicitly per second: zeros between rows


def test_csv_refuses_two_rows_for_one_second_naming_both_lines(tmp_path: Path) -> None:
    message = refusal(write(tmp_path / "d.csv", "t_sec,rps\n0,1\n1,2\n1,3\n"))
    assert "lines 3 and 4" in message


# --------------------------------------------------------------------------- request timestamps


@pytest.mark.parametrize(("unit", "scale"), [("s", 1), ("ms", 1_000), ("us", 1_000_000), ("ns", 1_000_000_000)])
def test_epoch_timestamps_are_counted_per_second_in_any_unit(tmp_path: Path, unit: str, scale: int) -> None:
    times = request_times()
    ticks = [EPOCH_S * scale + int(t * scale) for t in times]  # integers, one per line
    path = write(tmp_path / f"epoch_{unit}.txt", "".join(f"{v}\n" for v in ticks))
    trace = read_trace(path, cache_dir=False)
    assert trace.fmt == "timestamps" and trace.origin_epoch_s == EPOCH_S
    assert trace.counts.tolist() == per_second(times)  # before: 600 "seconds" of 1.6e9 requests each
    assert read(path, fmt="timestamps", time_unit=unit).tolist() == per_second(times)


def test_an_epoch_seconds_file_through_simulate_allocates_little(tmp_path: Path) -> None:
    """The 7.57 TiB MemoryError case: the trace is 120 s, not 600 s of 1.6e9 requests."""
    times = request_times()
    path = write(tmp_path / "epoch.txt", "".join(f"{EPOCH_S + int(t)}\n" for t in times))
    tracemalloc.start()
    try:
        series = load_trace(path, cache_dir=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert series.size == 120 and np.nansum(series) == times.size
    assert peak < 50e6


def test_decimal_and_iso_timestamps(tmp_path: Path) -> None:
    times = request_times(seed=2)
    decimals = write(tmp_path / "rel.txt", "".join(f"{t + 10:.3f}\n" for t in times))
    assert read(decimals).tolist() == per_second(times + 10)
    start = datetime(2021, 9, 1, tzinfo=UTC)
    iso = write(tmp_path / "iso.txt", "".join(f"{(start + timedelta(seconds=float(t))).isoformat()}\n" for t in times))
    trace = read_trace(iso, cache_dir=False)
    assert trace.fmt == "timestamps" and trace.counts.tolist() == per_second(times)
    zone = timezone(timedelta(hours=2))  # the same instants written with an offset
    shifted = write(tmp_path / "tz.txt", "".join(f"{(start + timedelta(seconds=float(t))).astimezone(zone).isoformat()}\n" for t in times))
    assert read(shifted).tolist() == per_second(times)


def test_access_log_times_in_brackets(tmp_path: Path) -> None:
    path = write(tmp_path / "clf.txt", "[01/Sep/2021:00:00:00 +0000]\n[01/Sep/2021:00:00:00 +0000]\n[01/Sep/2021:00:00:02 +0000]\n")
    assert read(path).tolist() == [2, 0, 1]


def test_relative_integer_timestamps_are_ambiguous_in_auto_and_right_when_named(tmp_path: Path) -> None:
    times = request_times(seed=3)
    path = write(tmp_path / "rel.txt", "".join(f"{int(t)}\n" for t in times))
    message = refusal(path)
    assert "--format timestamps" in message and "--format counts" in message  # before: read as 600 counts, silently
    assert read(path, fmt="timestamps").tolist() == per_second(np.floor(times))
    assert read(path, time_unit="s").tolist() == per_second(np.floor(times))  # a unit implies request times


def test_unsorted_timestamps_are_counted_when_named(tmp_path: Path) -> None:
    path = write(tmp_path / "u.txt", "3.5\n1.2\n3.9\n1.0\n")
    assert "not in order" in refusal(path)
    assert read(path, fmt="timestamps").tolist() == [2, 0, 2]


# --------------------------------------------------------------------------- access-log CSV


def test_access_log_csv_is_detected_by_its_timestamp_column(tmp_path: Path) -> None:
    times = request_times(seed=4)
    start = datetime(2021, 9, 1, tzinfo=UTC)
    rows = "".join(f"{(start + timedelta(seconds=float(t))).isoformat()},GET,/v2/models/x/infer,200\n" for t in times)
    trace = read_trace(write(tmp_path / "access.csv", "timestamp,method,path,status\n" + rows), cache_dir=False)
    assert trace.fmt == "csv-timestamps" and trace.counts.tolist() == per_second(times)
    assert any("one request per row" in note for note in trace.notes)


def test_csv_timestamps_column_and_unit_options(tmp_path: Path) -> None:
    times = request_times(seed=5)
    rows = "".join(f"{i};{EPOCH_S * 1000 + int(t * 1000)};0.2\n" for i, t in enumerate(times))
    path = write(tmp_path / "log.txt", "id;sent_ms;latency\n" + rows)
    assert "could hold counts or request times" in refusal(path, column="sent_ms")
    counts = read(path, fmt="csv-timestamps", column="sent_ms", time_unit="ms")
    assert counts.tolist() == per_second(times)


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("name", "text", "options", "expect"),
    [
        ("a.txt", "5\n7\nseven\n3\n", {}, "line 3: not a number: 'seven'"),
        ("b.txt", "# header comment\n5 7\n3 -1\n", {}, "line 3: negative count -1"),
        ("c.txt", "5\n7\nnan\n", {}, "line 3: non-finite"),
        ("d.txt", "1,5;2,5\n", {}, "line 1: both ';' and ','"),
        ("e.csv", "t_sec,rps\n0,1\n1,x\n", {}, "line 3: rps is not a number"),
        ("f.csv", "t_sec,rps\n0,1\n,2\n", {}, "line 3: t_sec is empty"),
        ("g.txt", "1.5\n2.5\nlater\n", {"fmt": "timestamps"}, "line 3: not a number: 'later'"),
        ("h.txt", "2021-09-01T00:00:00\n2021-09-01T00:00:01\nyesterday\n", {}, "line 3: timestamp is not a date"),
        ("i.csv", "timestamp,x\n2021-09-01T00:00:00,1\nsoon,2\n", {}, "line 3: column 'timestamp' is not a date"),
    ],
)
def test_parse_errors_name_their_line(tmp_path: Path, name: str, text: str, options: dict[str, object], expect: str) -> None:
    path = write(tmp_path / name, text)
    message = refusal(path, **options)
    assert expect in message and str(path) in message


def test_a_headerless_time_count_table_is_refused_in_auto(tmp_path: Path) -> None:
    path = write(tmp_path / "pairs.txt", "".join(f"{t} {c}\n" for t, c in enumerate([5, 6, 7, 8, 9])))
    assert "without a header" in refusal(path)
    assert read(path, fmt="counts").size == 10  # asked for: every number a count


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"fmt": "parquet"}, "--format"),
        ({"interval_s": 0}, "--interval"),
        ({"fmt": "timestamps", "interval_s": 60}, "--interval"),
        ({"fmt": "counts", "column": "rps"}, "--column"),
        ({"time_unit": "minutes"}, "--time-unit"),
        ({"fmt": "tbz2", "time_unit": "ms"}, "--time-unit"),
    ],
)
def test_option_errors_name_the_option(tmp_path: Path, options: dict[str, object], option: str) -> None:
    assert option in refusal(write(tmp_path / "c.txt", "1 2 3"), **options)


def test_an_interval_on_a_detected_timestamps_file_is_refused(tmp_path: Path) -> None:
    message = refusal(write(tmp_path / "iso.txt", "2021-09-01T00:00:00\n2021-09-01T00:00:01\n"), interval_s=60)
    assert "--interval" in message and "detected format timestamps" in message


# --------------------------------------------------------------------------- sizes, checked before allocating


def test_epoch_milliseconds_read_as_seconds_are_refused_before_allocating(tmp_path: Path) -> None:
    path = write(tmp_path / "ms.txt", f"{EPOCH_S * 1000}\n{EPOCH_S * 1000 + 5}\n{(EPOCH_S + 86400 * 500) * 1000}\n")
    tracemalloc.start()
    try:
        message = refusal(path, time_unit="s")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "more than 400 days" in message and "--time-unit" in message and "line 3" in message
    assert peak < 50e6  # refused, not allocated (400 days of float64 would be 276 MB)


def test_a_csv_time_column_spanning_centuries_is_refused(tmp_path: Path) -> None:
    message = refusal(write(tmp_path / "far.csv", "t_sec,rps\n0,1\n1e12,1\n"))
    assert "spans" in message and "--time-unit" in message


def test_too_many_counts_for_the_interval_are_refused_while_streaming(tmp_path: Path) -> None:
    limit = MAX_TRACE_S // 86400  # at one day per count, 400 counts
    path = write(tmp_path / "days.txt", "\n".join(["1"] * (limit + 1)))
    assert "more than 400 counts" in refusal(path, interval_s=86400)
    assert read(write(tmp_path / "ok.txt", "\n".join(["1"] * 3)), interval_s=86400).size == 3 * 86400


# --------------------------------------------------------------------------- the decode cache


def test_the_cache_keys_on_the_options_and_keeps_the_notes(tmp_path: Path) -> None:
    path = write(tmp_path / "m.txt", "60 120\n")
    cache = tmp_path / "cache"
    first = read_trace(path, TraceOptions(interval_s=60), cache_dir=cache)
    again = read_trace(path, TraceOptions(interval_s=60), cache_dir=cache)
    assert again.counts.tolist() == first.counts.tolist() and again.notes == first.notes and again.notes
    assert read_trace(path, TraceOptions(), cache_dir=cache).counts.tolist() == [60, 120]
    assert len(list(cache.glob("*.npy"))) == 2
