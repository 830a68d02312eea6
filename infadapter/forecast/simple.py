"""The paper's warm-up forecaster (EWMA of minute peaks) and the naive last-minute-peak baseline."""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from infadapter.forecast.base import BufferedForecaster, FloatArray, ForecastResult, margin_quantile
from infadapter.forecast.blocks import block_peaks, last_valid


def ewma_last(values: FloatArray, span: float) -> float:
    """``pandas.Series(values).ewm(span=span).mean().iloc[-1]`` (adjust=True), without pandas."""
    decay = 1.0 - 2.0 / (span + 1.0)
    weights = decay ** np.arange(values.size - 1, -1, -1, dtype=np.float64)
    return float(np.dot(weights, values) / weights.sum())


class MinutePeakModel(BufferedForecaster):
    """Base for models that look at the minute peaks of the last ``window_s`` seconds."""

    buffer_s = 3 * 3600

    def __init__(self, *, window_s: int = 600, block_s: int = 60, margin_ratio: float = 0.0) -> None:
        super().__init__()
        self.window_s = int(window_s)
        self.block_s = int(block_s)
        self.margin_ratio = float(margin_ratio)

    def recent_peaks(self) -> FloatArray:
        """Valid peaks of the window's blocks (anchored at now); older valid ones if the window is a gap."""
        held = self._buffer.values
        blocks = block_peaks(held[-self.window_s :], self.block_s, align="end")
        peaks = last_valid(blocks, blocks.size)
        if peaks.size == 0:  # inside a collection gap: fall back on the last peak seen before it
            peaks = last_valid(block_peaks(held, self.block_s, align="end"), 1)
        return peaks

    @abstractmethod
    def _point(self, peaks: FloatArray) -> float:
        """The point forecast from the recent minute peaks (each model's own)."""

    def _predict(self, horizon_s: float) -> ForecastResult:
        peaks = self.recent_peaks()
        point = self._point(peaks) if peaks.size else 0.0
        return ForecastResult(point, horizon_s, self.name, margin_quantile(point, self.margin_ratio))


class Ewma(MinutePeakModel):
    """EWMA (span 10) of the minute peaks of the last 10 minutes: the paper's warm-up forecaster."""

    name = "ewma"

    def __init__(self, *, span: float = 10.0, window_s: int = 600, block_s: int = 60, margin_ratio: float = 0.0) -> None:
        super().__init__(window_s=window_s, block_s=block_s, margin_ratio=margin_ratio)
        self.span = float(span)

    def _point(self, peaks: FloatArray) -> float:
        return ewma_last(peaks, self.span)


class Last(MinutePeakModel):
    """The last minute's peak (the naive baseline)."""

    name = "last"

    def _point(self, peaks: FloatArray) -> float:
        return float(peaks[-1])
