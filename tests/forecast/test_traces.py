"""Trace loading: every format, gap masking, cuts, resampling, the decode cache, and clear refusals."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

from infadapter.errors import InvalidInput
from infadapter.traces import load_trace, mask_gaps, read_counts, resample_mean, resample_peak

COUNTS = [5, 7, 0, 3, 9, 12, 4]


def write_tbz2(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:bz2") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_tbz2_with_workload_txt_is_read_as_counts(tmp_path: Path) -> None:
    path = write_tbz2(tmp_path / "w.tbz2", {"workload.txt": " ".join(map(str, COUNTS)).encode()})
    assert load_trace(path, cache_dir=False).tolist() == COUNTS


def test_tbz2_streaming_keeps_numbers_that_straddle_chunks(tmp_path: Path) -> None:
    values = np.arange(300_000) % 997  # > 1 MiB of text: several chunks
    path = write_tbz2(tmp_path / "big.tbz2", {"workload.txt": " ".join(map(str, values)).encode()})
    assert np.array_equal(load_trace(path, gap_s=None, cache_dir=False), values)


def test_plain_space_separated_text_is_read(tmp_path: Path) -> None:
    path = tmp_path / "w.txt"
    path.write_text("5 7 0\n3 9 12 4\n")
    assert load_trace(path, cache_dir=False).tolist() == COUNTS


def test_csv_reads_the_rps_column(tmp_path: Path) -> None:
    path = tmp_path / "seg.csv"
    path.write_text("t_sec,trace_index,rps\n" + "".join(f"{i},{100 + i},{c}\n" for i, c in enumerate(COUNTS)))
    assert load_trace(path, cache_dir=False).tolist() == COUNTS


def test_timestamps_are_counted_per_second(tmp_path: Path) -> None:
    path = tmp_path / "stamps.txt"
    path.write_text("10.1\n10.5\n10.9\n11.2\n13.0\n13.7\n")
    assert load_trace(path, cache_dir=False).tolist() == [3, 1, 0, 2]


def test_zero_runs_of_a_minute_or_more_are_masked_as_gaps() -> None:
    series = np.r_[np.full(10, 5.0), np.zeros(60), np.full(10, 5.0), np.zeros(59), [5.0]]
    masked = mask_gaps(series, 60)
    assert np.isnan(masked[10:70]).all()
    assert not np.isnan(masked[70:]).any()  # 59 zeros are idle seconds, not a gap
    assert masked[80:139].sum() == 0


def test_load_trace_masks_gaps_before_cutting(tmp_path: Path) -> None:
    path = tmp_path / "w.txt"
    path.write_text(" ".join(["4"] * 30 + ["0"] * 100 + ["4"] * 30))
    cut = load_trace(path, start_s=100, duration_s=40, cache_dir=False)
    assert cut.size == 40
    assert np.isnan(cut[:30]).all() and (cut[30:] == 4).all()  # the gap is seen across the cut
    assert not np.isnan(load_trace(path, gap_s=None, cache_dir=False)).any()


def test_resampling_takes_nan_aware_peaks_and_means() -> None:
    series = np.array([1, 5, 3, np.nan, np.nan, np.nan, 2, 2, 8, 9])
    assert resample_peak(series, 3).tolist()[0] == 5
    assert np.isnan(resample_peak(series, 3)[1])
    assert resample_mean(series, 3).tolist()[2] == 4
    assert resample_peak(series, 3).size == 3  # the partial last window is dropped


def test_repeated_loads_come_from_the_cache_and_a_changed_file_is_reread(tmp_path: Path) -> None:
    path = tmp_path / "w.txt"
    path.write_text("1 2 3")
    cache = tmp_path / "cache"
    assert read_counts(path, cache_dir=cache).tolist() == [1, 2, 3]
    cached = list(cache.glob("*.npy"))
    assert len(cached) == 1
    np.save(cached[0], np.array([7.0, 7.0]))  # proves the second read uses the cache
    assert read_counts(path, cache_dir=cache).tolist() == [7, 7]
    path.write_text("1 2 3 4")
    os.utime(path, ns=(1, 10**18))
    assert read_counts(path, cache_dir=cache).tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("name", "content", "expect"),
    [
        ("missing.txt", None, "no such file"),
        ("empty.txt", b"", "no samples"),
        ("words.txt", b"1 2 three 4", "not a number"),
        ("neg.txt", b"1 -2 3", "negative count"),
        ("nocol.csv", b"t_sec,x\n0,1\n", "no 'rps' column"),
        ("badcell.csv", b"t_sec,rps\n0,1\n1,x\n", "line 3"),
        ("broken.tbz2", b"BZh91AY&SY garbage", "bzip2 tar"),
    ],
)
def test_bad_files_are_refused_with_path_problem_and_hint(tmp_path: Path, name: str, content: bytes | None, expect: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InvalidInput) as info:
        load_trace(path, cache_dir=False)
    message = str(info.value)
    assert expect in message and str(path) in message and "hint:" in message


def test_an_archive_without_a_single_workload_member_is_refused(tmp_path: Path) -> None:
    path = write_tbz2(tmp_path / "two.tbz2", {"a.txt": b"1", "b.txt": b"2"})
    with pytest.raises(InvalidInput, match=r"workload\.txt"):
        load_trace(path, cache_dir=False)


@pytest.mark.parametrize(("start_s", "duration_s"), [(-1, None), (99, None), (None, 0), (float("nan"), None)])
def test_cuts_outside_the_trace_are_refused(tmp_path: Path, start_s: float | None, duration_s: float | None) -> None:
    path = tmp_path / "w.txt"
    path.write_text("1 2 3")
    with pytest.raises(InvalidInput):
        load_trace(path, start_s, duration_s, cache_dir=False)
