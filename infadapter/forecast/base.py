"""The forecaster protocol, the forecast value, and the history buffer every model shares.

A forecaster is fed per-second arrival counts (oldest first, NaN = unknown / masked gap):
``fit(history)`` once offline, then ``update(latest_window, now_s=...)`` at every tick and
``predict(horizon_s)`` for the peak rate over the next ``horizon_s`` seconds. Nothing here reads a
clock: time only enters as ``now_s`` (the time just after the newest sample of the window, on the
same clock as ``fit``'s history, which starts at ``start_s``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, Self, runtime_checkable

import numpy as np
import numpy.typing as npt

from infadapter.errors import FieldError, InvalidInput

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ForecastResult:
    """A forecast of the peak arrival rate over the next ``horizon_s`` seconds."""

    point_rps: float
    horizon_s: float
    model: str = ""
    quantile_fn: Callable[[float], float] | None = field(default=None, repr=False, compare=False)

    def quantile(self, q: float) -> float:
        """The ``q``-quantile of the peak (models without uncertainty return their point + margin)."""
        if not 0.0 < q < 1.0:
            raise InvalidInput([FieldError("quantile", f"{q!r} is not in (0, 1)", "e.g. 0.95")], source="forecast")
        value = self.point_rps if self.quantile_fn is None else self.quantile_fn(q)
        return max(0.0, float(value))


@runtime_checkable
class Forecaster(Protocol):
    """What the planner calls; see ``docs/INTERFACES.md``."""

    name: str

    def fit(self, history_rps: npt.ArrayLike, *, start_s: float = 0.0) -> Self: ...

    def update(self, history_rps: npt.ArrayLike, *, now_s: float | None = None) -> None: ...

    def predict(self, horizon_s: float = 60.0) -> ForecastResult: ...


def as_series(history_rps: npt.ArrayLike, what: str = "history_rps") -> FloatArray:
    """Validate a per-second series: 1-D, numbers, no infinities or negatives (NaN allowed)."""
    try:
        series = np.asarray(history_rps, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInput([FieldError(what, "not an array of numbers", "per-second request counts")], source="forecast input") from None
    if series.ndim != 1:
        raise InvalidInput(
            [FieldError(what, f"expected a 1-D series, got shape {series.shape}", "one value per second, oldest first")], source="forecast input"
        )
    if np.isinf(series).any() or (series < 0).any():
        raise InvalidInput(
            [FieldError(what, "contains infinite or negative values", "request counts are >= 0; use NaN for unknown seconds")], source="forecast input"
        )
    return series


def check_horizon(horizon_s: float) -> float:
    if not (horizon_s > 0 and math.isfinite(horizon_s)):
        raise InvalidInput([FieldError("horizon_s", f"{horizon_s!r} must be a positive number of seconds", "e.g. 60")], source="forecast")
    return float(horizon_s)


class HistoryBuffer:
    """The newest ``capacity_s`` seconds seen, on one timeline (``end_s`` = time after the newest sample).

    ``ingest(window, now_s)`` places the window so that it ends at ``now_s`` (newer values replace
    overlapping old ones; a jump forward leaves NaN). Without ``now_s`` the window is aligned on the
    overlap with what is already held (the shift seen last time is tried first), so callers that
    pass the same sliding window each tick need not track time.
    """

    def __init__(self, capacity_s: int) -> None:
        self.capacity_s = int(capacity_s)
        self._data: FloatArray = np.empty(0, dtype=np.float64)
        self.end_s: float | None = None
        self._last_shift = 0

    @property
    def values(self) -> FloatArray:
        return self._data

    def reset(self, series: FloatArray, end_s: float) -> None:
        self._data = series[-self.capacity_s :].copy()
        self.end_s = float(end_s)
        self._last_shift = 0

    def ingest(self, window: FloatArray, now_s: float | None = None) -> int:
        """Add a window; returns how many seconds the timeline advanced."""
        if self.end_s is None:
            self.reset(window, now_s if now_s is not None else float(window.size))
            return window.size
        if now_s is not None:
            shift = round(now_s - self.end_s)
            if shift < 0:  # the clock went back: start over from this window
                self.reset(window, now_s)
                return 0
        else:
            shift = self._find_shift(window)
        keep = max(0, self._data.size + shift - window.size)
        head = self._data[: min(keep, self._data.size)]
        gap = np.full(min(self.capacity_s, max(0, keep - self._data.size)), np.nan)
        data = np.concatenate((head, gap, window))
        self._data = data[-self.capacity_s :] if data.size > self.capacity_s else data
        self.end_s += shift
        self._last_shift = shift
        return shift

    def _find_shift(self, window: FloatArray) -> int:
        held = self._data

        def matches(shift: int) -> bool:
            overlap = window.size - shift
            if overlap <= 0 or overlap > held.size:
                return overlap <= 0
            a, b = window[:overlap], held[held.size - overlap :]
            return bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))

        if 0 < self._last_shift < window.size and matches(self._last_shift):
            return self._last_shift
        for shift in range(window.size):
            if matches(shift):
                return shift
        return window.size


class BufferedForecaster(ABC):
    """Shared plumbing: validation, the history buffer, and the protocol's three methods."""

    name = "base"
    #: how many seconds of history the model keeps between ticks
    buffer_s = 3600

    def __init__(self) -> None:
        self._buffer = HistoryBuffer(self.buffer_s)

    def fit(self, history_rps: npt.ArrayLike, *, start_s: float = 0.0) -> Self:
        series = as_series(history_rps)
        self._train(series, float(start_s))
        self._buffer.reset(series, float(start_s) + series.size)
        self._ingested(series.size)
        return self

    def update(self, history_rps: npt.ArrayLike, *, now_s: float | None = None) -> None:
        series = as_series(history_rps)
        if series.size == 0:
            return
        self._ingested(self._buffer.ingest(series, now_s))

    def predict(self, horizon_s: float = 60.0) -> ForecastResult:
        return self._predict(check_horizon(horizon_s))

    # hooks ------------------------------------------------------------------------------
    def _train(self, series: FloatArray, start_s: float) -> None:  # noqa: B027 (an optional hook: a no-op by default)
        """Offline training on the fit history (default: nothing to learn)."""

    def _ingested(self, added_s: int) -> None:  # noqa: B027 (an optional hook: a no-op by default)
        """Called after the buffer advanced by ``added_s`` seconds."""

    @abstractmethod
    def _predict(self, horizon_s: float) -> ForecastResult:
        """The forecast of the peak over the next ``horizon_s`` seconds (each model's own)."""


def margin_quantile(point_rps: float, margin_ratio: float) -> Callable[[float], float] | None:
    """Quantile function of a point model: the point times ``1 + margin_ratio`` whatever ``q``."""
    if margin_ratio == 0:
        return None
    value = point_rps * (1.0 + margin_ratio)
    return lambda _q: value
