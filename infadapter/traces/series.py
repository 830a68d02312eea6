"""A trace once read (:class:`Trace`) and what is done to per-second series: gaps, cuts, spreading, resampling."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from infadapter.forecast.blocks import block_means, block_peaks
from infadapter.traces.options import DEFAULT_GAP_S, bad

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Trace:
    """Per-second request counts read from a file, with what the reader had to assume.

    ``counts``: raw counts from second 0 (no gap masking). ``fmt``: the format read (never ``auto``).
    ``notes``: assumptions a user should know of (spread intervals, zero-filled seconds, time units).
    ``origin_epoch_s``: the wall-clock time of second 0 when the file gave absolute times.
    """

    counts: FloatArray
    fmt: str
    notes: tuple[str, ...] = field(default=())
    origin_epoch_s: float | None = None

    def series(
        self, start_s: float | None = None, duration_s: float | None = None, *, gap_s: int | None = DEFAULT_GAP_S, path: str | os.PathLike[str] = "trace"
    ) -> FloatArray:
        """Float counts with collection gaps (runs of >= ``gap_s`` zeros) as NaN, cut to [start, start+duration).

        Gaps are masked before the cut, so a gap that crosses the cut is still recognised.
        """
        series = mask_gaps(self.counts, gap_s) if gap_s else self.counts.astype(np.float64)
        return cut(series, start_s, duration_s, path)


def cut(series: FloatArray, start_s: float | None, duration_s: float | None, path: str | os.PathLike[str]) -> FloatArray:
    """A copy of ``series[start_s : start_s + duration_s]``; a cut outside the trace is refused."""
    for label, value in (("start_s", start_s), ("duration_s", duration_s)):
        if value is not None and not np.isfinite(value):
            raise bad(path, f"{label}={value} is not a finite number of seconds", f"give a finite {label}")
    first = 0
    if start_s is not None:
        if start_s < 0 or start_s >= len(series):
            raise bad(path, f"start_s={start_s:g} is outside the trace (0 .. {len(series)} s)", "pick a start inside the trace")
        first = int(start_s)
    last = len(series)
    if duration_s is not None:
        if duration_s <= 0:
            raise bad(path, f"duration_s={duration_s:g} must be positive", "give a duration > 0")
        last = min(len(series), first + int(np.ceil(duration_s)))
    return series[first:last].copy()


def mask_gaps(counts: npt.ArrayLike, gap_s: int = DEFAULT_GAP_S) -> FloatArray:
    """Float copy of ``counts`` with every run of zeros of at least ``gap_s`` seconds set to NaN."""
    series = np.asarray(counts, dtype=np.float64).copy()
    if gap_s <= 0 or series.size == 0:
        return series
    zero = (series == 0).astype(np.int8)
    edges = np.diff(np.concatenate(([0], zero, [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    for begin, end in zip(starts, ends, strict=True):
        if end - begin >= gap_s:
            series[begin:end] = np.nan
    return series


def spread(counts: FloatArray, interval_s: int | None) -> FloatArray:
    """Per-second counts from per-interval counts, each spread evenly over its interval."""
    if not interval_s or interval_s == 1:
        return counts
    return np.repeat(counts / float(interval_s), interval_s)


def spread_note(interval_s: int | None) -> tuple[str, ...]:
    if not interval_s or interval_s == 1:
        return ()
    return (
        f"each count covers {interval_s} s (--interval) and was spread evenly over its {interval_s} seconds: "
        f"bursts shorter than {interval_s} s are not in the trace",
    )


def resample_peak(series_rps: npt.ArrayLike, window_s: int) -> FloatArray:
    """Peak of each ``window_s``-second window (from the start; the last partial window is dropped).

    NaN-aware: a window's peak ignores masked seconds; a fully masked window is NaN.
    """
    return block_peaks(np.asarray(series_rps, dtype=np.float64), window_s, align="start")


def resample_mean(series_rps: npt.ArrayLike, window_s: int) -> FloatArray:
    """Mean rate of each ``window_s``-second window (NaN-aware, like :func:`resample_peak`)."""
    return block_means(np.asarray(series_rps, dtype=np.float64), window_s, align="start")
