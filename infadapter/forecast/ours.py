"""``ours``: a calibrated peak forecaster (log-linear base + rolling conformal + adaptive level).

1. **Base point forecast** of the peak over the next minute: a linear model in log space of
   robust features of the last 10 minutes (the last 5 minute peaks, the last 3 minute means,
   the 10-minute max and median, and the mean rate of the last 10 s and 30 s). It is fitted by
   least squares on ``fit``'s history; without ``fit`` the coefficients fitted on the first
   14 days of the Twitter trace are used.
2. **Conformal calibration**: at each tick the model replays its own base forecast on every
   minute of the last ``calibration_min`` minutes it holds (anchored at now, for the requested
   horizon) and takes the residuals ``log(real peak) - log(base)``. The ``q``-quantile forecast
   is ``base * exp(Q)`` with ``Q`` the split-conformal quantile of those residuals, where the
   minutes at the same phase of a ``phase_period_s`` cycle as now weigh ``phase_weight`` times more
   (the Twitter trace has bursts that start at :02/:32 of many hours: a Mondrian-style conditional
   calibration learns when the tail is heavy without knowing the time of day). Until enough
   minutes exist, the residual distribution of the training data is used.
3. **Adaptive conformal inference** (Gibbs & Candès 2021): bursts make residuals non-exchangeable,
   so the level is steered online: every resolved forecast at the target quantile moves the
   level by ``aci_rate * (miss - (1 - quantile))``. The long-run share of under-predicted windows
   then converges to ``1 - quantile`` whatever the drift.

Everything is pure numpy; one tick costs about a millisecond with a day of history.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from infadapter.errors import FieldError, InvalidInput
from infadapter.forecast.base import BufferedForecaster, FloatArray, ForecastResult

BoolArray = npt.NDArray[np.bool_]
BLOCK_S = 60
HISTORY_BLOCKS = 10
#: forecasts awaiting their outcome (ticks within one horizon; a bound against misuse)
MAX_PENDING = 10_000
FEATURE_NAMES = ("intercept", "peak1", "peak2", "peak3", "peak4", "peak5", "mean1", "mean2", "mean3",
                 "peak_max10", "peak_median10", "mean_last10s", "mean_last30s")

#: coefficients fitted on the first 14 days of the Twitter trace (``OursForecaster.fit``)
DEFAULT_WEIGHTS: tuple[float, ...] = (
    0.87828, 0.34465, -0.0796, -0.02496, 0.00052, -0.02372, 0.491, -0.05831, 0.03293, 0.01369, -0.04022,
    0.08167, 0.10809,
)
#: quantiles 0.005, 0.025 .. 0.975, 0.995 of the log residuals on those 14 days (the prior until
#: enough minutes have been seen to calibrate on)
DEFAULT_PRIOR: tuple[float, ...] = (
    -0.3006, -0.1802, -0.1448, -0.1265, -0.1134, -0.1037, -0.0951, -0.0874, -0.0802, -0.0737, -0.0672,
    -0.0619, -0.0564, -0.0508, -0.0456, -0.0406, -0.0359, -0.031, -0.0265, -0.0214, -0.0166, -0.0114,
    -0.0066, -0.0014, 0.004, 0.0093, 0.015, 0.0207, 0.0272, 0.0338, 0.0407, 0.048, 0.0564, 0.0659, 0.0767,
    0.0901, 0.1071, 0.1305, 0.1721, 0.2709, 1.0476,
)


def _log(values: FloatArray) -> FloatArray:
    logs: FloatArray = np.log(np.maximum(values, 1.0))
    return logs


def block_table(series: FloatArray, offset: int) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per whole 60-s block from ``offset``: (peak, mean, mean of the last 10 s, of the last 30 s)."""
    count = (series.size - offset) // BLOCK_S
    blocks = series[offset:offset + count * BLOCK_S].reshape(count, BLOCK_S)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks are gaps
        peak = np.nanmax(blocks, axis=1) if count else np.empty(0)
        mean = np.nanmean(blocks, axis=1) if count else np.empty(0)
        tail10 = np.nanmean(blocks[:, -10:], axis=1) if count else np.empty(0)
        tail30 = np.nanmean(blocks[:, -30:], axis=1) if count else np.empty(0)
    tail10 = np.where(np.isnan(tail10), tail30, tail10)
    tail30 = np.where(np.isnan(tail30), mean, tail30)
    tail10 = np.where(np.isnan(tail10), mean, tail10)
    return peak, mean, tail10, tail30


def features(peak: FloatArray, mean: FloatArray, tail10: FloatArray, tail30: FloatArray) -> FloatArray:
    """Feature rows for every block index ``i >= 9``: the window is blocks ``i-9 .. i`` (newest last)."""
    n = peak.size - HISTORY_BLOCKS + 1
    if n <= 0:
        return np.empty((0, len(FEATURE_NAMES)))
    window = np.lib.stride_tricks.sliding_window_view(peak, HISTORY_BLOCKS)
    last = HISTORY_BLOCKS - 1
    columns = [np.ones(n)]
    columns += [_log(window[:, last - j]) for j in range(5)]
    columns += [_log(mean[last - j:last - j + n]) for j in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        columns.append(_log(np.max(window, axis=1)))
        columns.append(_log(np.median(window, axis=1)))
    columns.append(_log(tail10[last:]))
    columns.append(_log(tail30[last:]))
    return np.column_stack(columns)


def fit_weights(rows: FloatArray, log_target: FloatArray, *, scale_free: bool = True) -> FloatArray:
    """Least squares in log space. ``scale_free``: the feature weights sum to 1, so scaling the
    load by k scales the forecast by k (the intercept is then the typical log peak/level ratio)."""
    if not scale_free:
        weights: FloatArray = np.linalg.lstsq(rows, log_target, rcond=None)[0]
        return weights
    reference = rows[:, 1]  # log of the last minute's peak carries the remaining weight
    relative = rows[:, 2:] - reference[:, None]
    design = np.column_stack((rows[:, 0], relative))
    solved = np.linalg.lstsq(design, log_target - reference, rcond=None)[0]
    return np.concatenate(([solved[0], 1.0 - solved[1:].sum()], solved[1:]))


def conformal_quantile(residuals: FloatArray, q: float, weights: FloatArray | None = None,
                       test_weight: float = 1.0) -> float:
    """Weighted split-conformal quantile: the smallest residual whose cumulative weight reaches
    ``q * (total + test_weight)`` (unweighted: the ``ceil((n+1) q)``-th smallest), clamped to the sample."""
    return quantile_of_sorted(*sort_calibration(residuals, weights), q, test_weight)


def sort_calibration(residuals: FloatArray, weights: FloatArray | None) -> tuple[FloatArray, FloatArray]:
    """(residuals in ascending order, their cumulative weights): sorted once per tick."""
    order = np.argsort(residuals, kind="stable")
    cumulative = np.cumsum(weights[order] if weights is not None else np.ones(order.size))
    return residuals[order], cumulative


def quantile_of_sorted(ordered: FloatArray, cumulative: FloatArray, q: float, test_weight: float) -> float:
    rank = int(np.searchsorted(cumulative, q * (cumulative[-1] + test_weight) - 1e-9))
    return float(ordered[min(rank, ordered.size - 1)])


class OursForecaster(BufferedForecaster):
    """Calibrated peak forecaster; ``quantile(q)`` targets an under-prediction rate of ``1 - q``."""

    name = "ours"

    def __init__(self, *, quantile: float = 0.95, calibration_min: int = 10080, min_calibration: int = 120,
                 aci_rate: float = 0.005, phase_period_s: int | None = 1800, phase_weight: float = 5.0,
                 surge_weight: float = 1.0, surge_ratio: float = 1.35, weights: tuple[float, ...] | None = None,
                 scale_free: bool = False) -> None:
        if not 0.5 <= quantile < 1.0:
            raise InvalidInput([FieldError("quantile", f"{quantile!r} is not in [0.5, 1)", "e.g. 0.95")],
                               source="forecast options")
        self.buffer_s = calibration_min * BLOCK_S + (HISTORY_BLOCKS + 2) * BLOCK_S + 3600
        super().__init__()
        self.target_quantile = float(quantile)
        self.calibration_min = int(calibration_min)
        self.min_calibration = int(min_calibration)
        self.aci_rate = float(aci_rate)
        self.phase_period_s = phase_period_s
        self.phase_weight = float(phase_weight)
        self.scale_free = scale_free
        self.surge_weight = float(surge_weight)
        self.surge_ratio = float(surge_ratio)
        self.weights = np.asarray(weights if weights is not None else DEFAULT_WEIGHTS, dtype=np.float64)
        self.prior_residuals = np.asarray(DEFAULT_PRIOR, dtype=np.float64)
        self.level_shift = 0.0  # the adaptive part of the level (ACI)
        self._pending: dict[float, tuple[float, float]] = {}  # issued end_s -> (horizon_s, forecast)
        self._residual_cache: tuple[float | None, int, FloatArray, FloatArray | None] | None = None
        #: (horizon_s, end_s mod 60) -> (end_s, anchor times, log residuals): the calibration set
        self._calibration: dict[tuple[int, int], tuple[float, FloatArray, FloatArray, BoolArray]] = {}
        self._surging = False  # whether the newest minute peak stands above the 10-minute median

    # training ---------------------------------------------------------------------------
    def design(self, series: FloatArray, horizon_s: int = BLOCK_S, *, with_ages: bool = False) -> Any:
        """(features, real peak over the next ``horizon_s``[, age_s]) at every whole minute of
        ``series`` whose history and target are fully observed; the anchors end at the series' end
        and ``age_s`` is how long before the end of ``series`` each anchor lies."""
        span = series.size - horizon_s
        if span < HISTORY_BLOCKS * BLOCK_S:
            empty = (np.empty((0, len(FEATURE_NAMES))), np.empty(0))
            return (*empty, np.empty(0, dtype=np.int64)) if with_ages else empty
        offset = span % BLOCK_S
        peak, mean, tail10, tail30 = block_table(series[:span], offset)
        rows = features(peak, mean, tail10, tail30)
        anchors = offset + BLOCK_S * np.arange(HISTORY_BLOCKS, peak.size + 1)
        future = np.lib.stride_tricks.sliding_window_view(series, horizon_s)[anchors]
        history_ok = ~np.isnan(np.lib.stride_tricks.sliding_window_view(peak, HISTORY_BLOCKS)).any(axis=1)
        ok = history_ok & ~np.isnan(future).any(axis=1)
        if with_ages:
            return rows[ok], future[ok].max(axis=1), (series.size - anchors)[ok]
        return rows[ok], future[ok].max(axis=1)

    def _train(self, series: FloatArray, start_s: float) -> None:
        rows, target = self.design(series)
        if target.size < 2 * len(FEATURE_NAMES):
            raise InvalidInput([FieldError("history_rps", f"only {target.size} usable minutes, ours needs "
                                           f">= {2 * len(FEATURE_NAMES)}", "fit on a longer history")],
                               source="forecast input")
        self.weights = fit_weights(rows, _log(target), scale_free=self.scale_free)
        residuals = _log(target) - rows @ self.weights
        self.prior_residuals = np.quantile(residuals, np.linspace(0.005, 0.995, 199))
        self.level_shift = 0.0
        self._pending.clear()
        self._residual_cache = None
        self._calibration.clear()

    # online -----------------------------------------------------------------------------
    def _ingested(self, added_s: int) -> None:
        """Resolve the forecasts whose window has passed and steer the level (ACI)."""
        end_s = self._buffer.end_s
        if end_s is None or not self._pending:
            return
        held = self._buffer.values
        start_s = end_s - held.size
        miss_target = 1.0 - self.target_quantile
        for issued in sorted(self._pending):
            horizon_s, forecast = self._pending[issued]
            if issued + horizon_s > end_s:
                break
            del self._pending[issued]
            lo = round(issued - start_s)
            window = held[max(lo, 0):lo + int(horizon_s)]
            if lo < 0 or window.size == 0 or np.isnan(window).any():
                continue  # not observed (gap or too old): no evidence either way
            miss = float(window.max() > forecast)
            self.level_shift += self.aci_rate * (miss - miss_target)
        self.level_shift = min(max(self.level_shift, -0.45), 0.999 - self.target_quantile)

    def base_forecast(self) -> float:
        """The uncalibrated point forecast (log-linear model) at now; 0 without any observation."""
        held = self._buffer.values
        peak, mean, tail10, tail30 = block_table(held[-2 * 3600:], min(held.size, 2 * 3600) % BLOCK_S)
        valid = ~np.isnan(peak)
        if not valid.any():  # a long gap: look further back
            peak, mean, tail10, tail30 = block_table(held, held.size % BLOCK_S)
            valid = ~np.isnan(peak)
        if not valid.any():
            return 0.0
        # after a gap, the newest observed minutes stand in for the missing ones
        index = np.flatnonzero(valid)[-HISTORY_BLOCKS:]
        index = np.concatenate((np.full(HISTORY_BLOCKS - index.size, index[0]), index))
        row = features(peak[index], mean[index], tail10[index], tail30[index])[-1]
        self._surging = bool(self._surge(row[None, :])[0])
        return float(np.exp(row @ self.weights))

    def _surge(self, rows: FloatArray) -> BoolArray:
        """Per feature row: is the last minute's peak ``surge_ratio`` above the 10-minute median?"""
        flags: BoolArray = (rows[:, 1] - rows[:, 10]) > math.log(self.surge_ratio)
        return flags

    def _anchor_residuals(self, series: FloatArray, horizon_s: int,
                          end_s: float) -> tuple[FloatArray, FloatArray, BoolArray]:
        """(anchor times, log residuals, surge flags) of every scorable minute of ``series`` (ending at ``end_s``)."""
        rows, target, ages = self.design(series, horizon_s, with_ages=True)
        return end_s - ages, _log(target) - rows @ self.weights, self._surge(rows)

    def residuals(self, horizon_s: int) -> tuple[FloatArray, FloatArray | None]:
        """Log residuals of the base forecast over the last ``calibration_min`` minutes and their
        calibration weights. Incremental: each tick scores only the minutes resolved since the
        last tick on the same 60-s grid (a full replay after a jump or a reset)."""
        end_s = self._buffer.end_s
        if self._residual_cache is not None and self._residual_cache[:2] == (end_s, horizon_s):
            return self._residual_cache[2], self._residual_cache[3]
        held = self._buffer.values
        times, values, surge = np.empty(0), np.empty(0), np.empty(0, dtype=bool)
        if end_s is not None:
            grid = (horizon_s, round(end_s) % BLOCK_S)
            entry = self._calibration.get(grid)
            span_s = (self.calibration_min + HISTORY_BLOCKS) * BLOCK_S + horizon_s
            if entry is None or entry[0] > end_s or end_s - entry[0] > span_s // 2:
                times, values, surge = self._anchor_residuals(held[-span_s:], horizon_s, end_s)
            else:
                last_end, times, values, surge = entry
                need = round(end_s - last_end) + HISTORY_BLOCKS * BLOCK_S + horizon_s + BLOCK_S
                new_times, new_values, new_surge = self._anchor_residuals(held[-need:], horizon_s, end_s)
                fresh = new_times > last_end - horizon_s + 1e-6  # resolved since the last tick
                times = np.concatenate((times, new_times[fresh]))
                values = np.concatenate((values, new_values[fresh]))
                surge = np.concatenate((surge, new_surge[fresh]))
            keep = times >= end_s - horizon_s - self.calibration_min * BLOCK_S - 1e-6
            times, values, surge = times[keep], values[keep], surge[keep]
            self._calibration[grid] = (end_s, times, values, surge)
        weights: FloatArray | None = None
        if self.phase_period_s and self.phase_weight != 1.0 and end_s is not None:
            ages = np.rint(end_s - times).astype(np.int64)
            weights = np.where(ages % self.phase_period_s == 0, self.phase_weight, 1.0)
        if self.surge_weight != 1.0 and end_s is not None:
            same = np.where(surge == self._surging, self.surge_weight, 1.0)
            weights = same if weights is None else weights * same
        if values.size < self.min_calibration:
            values = np.concatenate((values, self.prior_residuals))
            weights = None
        self._residual_cache = (end_s, horizon_s, values, weights)
        return values, weights

    def _predict(self, horizon_s: float) -> ForecastResult:
        base = self.base_forecast()
        horizon = max(1, round(horizon_s))
        residuals, weights = self.residuals(horizon)
        shift = self.level_shift
        test_weight = ((self.phase_weight if self.phase_period_s else 1.0) * self.surge_weight
                       if weights is not None else 1.0)
        ordered, cumulative = sort_calibration(residuals, weights)
        middle = ordered.size // 2
        median = ordered[middle] if ordered.size % 2 else 0.5 * (ordered[middle - 1] + ordered[middle])
        point = base * math.exp(float(median))

        def quantile(q: float) -> float:
            level = min(max(q + shift, 0.001), 0.999)
            return base * math.exp(quantile_of_sorted(ordered, cumulative, level, test_weight))

        end_s = self._buffer.end_s
        if end_s is not None and base > 0:
            if self._pending and max(self._pending) > end_s:  # the clock went back: a new timeline
                self._pending.clear()
            if len(self._pending) < MAX_PENDING:
                self._pending[end_s] = (horizon_s, quantile(self.target_quantile))
        return ForecastResult(point, horizon_s, self.name, quantile)
