"""NaN-aware windowing of per-second series (peaks and means of fixed-length blocks)."""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Align = Literal["start", "end"]


def _blocks(series: FloatArray, window_s: int, align: Align) -> FloatArray:
    if window_s <= 0:
        raise ValueError(f"window_s must be positive, got {window_s}")
    count = series.size // window_s
    if count == 0:
        return np.empty((0, window_s), dtype=np.float64)
    used = series[: count * window_s] if align == "start" else series[series.size - count * window_s :]
    return used.reshape(count, window_s)


def block_peaks(series: FloatArray, window_s: int, align: Align = "start") -> FloatArray:
    """Peak of each whole ``window_s`` block; ``align="end"`` anchors the blocks at the newest sample.

    Masked seconds (NaN) are ignored; a block with no observed second is NaN.
    """
    blocks = _blocks(series, window_s, align)
    if blocks.size == 0:
        return np.empty(0, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks are expected (gaps)
        peaks: FloatArray = np.nanmax(blocks, axis=1)
        return peaks


def block_means(series: FloatArray, window_s: int, align: Align = "start") -> FloatArray:
    """Mean of each whole ``window_s`` block (NaN-aware like :func:`block_peaks`)."""
    blocks = _blocks(series, window_s, align)
    if blocks.size == 0:
        return np.empty(0, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        means: FloatArray = np.nanmean(blocks, axis=1)
        return means


def last_valid(values: FloatArray, count: int) -> FloatArray:
    """The ``count`` newest non-NaN values (fewer if there are not enough), oldest first."""
    valid = values[~np.isnan(values)]
    return valid[-count:] if count > 0 else valid[:0]
