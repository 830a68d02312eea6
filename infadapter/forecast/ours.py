"""``ours``: a calibrated peak forecaster (log-linear base + rolling conformal + adaptive level).

1. **Base point forecast** of the peak over the next minute: a linear model in log space of
   robust features of the last 10 minutes (the last 5 minute peaks, the last 3 minute means,
   the 10-minute max and median, and the mean rate of the last 10 s and 30 s) and of the
   service's **level** (its mean rate over the last day, or over all it has seen when younger).
   The feature weights sum to 1 (``scale_free``): a service k times busier gets a forecast k times
   higher, so a model fitted on one trace serves every scale, and the pull towards a long-run level
   that an unconstrained fit learns (towards the training trace's ~300 rps) becomes a pull towards
   the service's own level. It is fitted by least squares on ``fit``'s history; without ``fit`` the
   coefficients fitted on the first 14 days of the Twitter trace are used.
2. **Conformal calibration**: at each tick the model replays its own base forecast on every
   minute of the last ``calibration_min`` minutes it holds (anchored at now, for the requested
   horizon) and takes the residuals ``log(real peak) - log(base)``. The ``q``-quantile forecast
   is ``base * exp(Q)`` with ``Q`` the split-conformal quantile of those residuals, where the
   minutes at the same phase of a ``phase_period_s`` cycle as now weigh ``phase_weight`` times more
   (the Twitter trace has bursts that start at :02/:32 of many hours: a Mondrian-style conditional
   calibration learns when the tail is heavy without knowing the time of day). From its second
   minute a young service calibrates on its own minutes (the oldest minute standing in for the
   10-minute history it does not have yet), joined by the residual distribution of the training
   data as a prior whose weight fades as its own residuals accumulate (``conformal.with_prior``).
3. **Adaptive conformal inference** (Gibbs & Candès 2021): bursts make residuals non-exchangeable,
   so the level is steered online: a resolved forecast at the target quantile moves the level by
   ``aci_rate * w * (miss - (1 - quantile))``, ``w`` the time since the previous forecast over a minute
   (at most 1), so that the level moves alike whatever the planner's cadence.
   The long-run share of under-predicted windows then converges to ``1 - quantile`` whatever the drift.

Everything is pure numpy; one tick costs about a millisecond with a day of history.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from infadapter.errors import FieldError, InvalidInput
from infadapter.forecast.base import BufferedForecaster, FloatArray, ForecastResult
from infadapter.forecast.conformal import (
    PRIOR_LEVELS,
    prior_samples,
    quantile_of_sorted,
    recentred,
    sort_calibration,
    with_prior,
)

BoolArray = npt.NDArray[np.bool_]
BLOCK_S = 60
HISTORY_BLOCKS = 10
#: forecasts awaiting their outcome (ticks within one horizon; a bound against misuse)
MAX_PENDING = 10_000
#: the window of the level feature: the mean rate of the last day (all that is held, for a younger service)
LEVEL_S = 86400
# fmt: off
FEATURE_NAMES = ("intercept", "peak1", "peak2", "peak3", "peak4", "peak5", "mean1", "mean2", "mean3",
                 "peak_max10", "peak_median10", "mean_last10s", "mean_last30s", "level")

#: coefficients fitted on the first 14 days of the Twitter trace (``OursForecaster().fit``, scale-free):
#: residual s.d. 0.1422 against 0.1421 unconstrained. The previous default, unconstrained and without
#: the level (feature weights summing to 0.85, intercept 0.88), fitted as well but forecast
#: exp(0.88)·L^0.85: a steady 5 rps at 9.4 (12 at q = 0.95), a steady 500 rps at 450.
DEFAULT_WEIGHTS: tuple[float, ...] = (
    0.23331, 0.33663, -0.06897, -0.0177, 0.00216, -0.0234, 0.37451, -0.04257, 0.02168, 0.00896, -0.03494, 0.26109,
    0.03404, 0.14851,
)
#: quantiles at ``PRIOR_LEVELS`` (0.005, 0.025 .. 0.975, 0.995) of the log residuals of those weights on
#: those 14 days: the prior while few own residuals exist (see ``conformal.with_prior``)
DEFAULT_PRIOR: tuple[float, ...] = (
    -0.2806, -0.1746, -0.1432, -0.1261, -0.1136, -0.1033, -0.095, -0.0869, -0.08, -0.0732, -0.067, -0.0614,
    -0.0561, -0.0511, -0.0458, -0.0407, -0.0358, -0.0311, -0.0262, -0.0215, -0.0167, -0.0118, -0.0068, -0.0016,
    0.0038, 0.0091, 0.0147, 0.0204, 0.0265, 0.033, 0.0397, 0.0473, 0.055, 0.0643, 0.0759, 0.0889, 0.1049, 0.1293,
    0.1703, 0.2687, 1.0494,
)
# fmt: on
#: a feature below this share of the window's highest minute peak counts as that share: an idle second
#: must not weigh log(0) = -inf, and a floor in rps (it was 1 rps) would tie the model to one scale
FLOOR_RATIO = 0.05
#: the floor (rps) of a window that saw no request at all
MIN_RPS = 1e-3


def _log(values: FloatArray, log_floor: FloatArray | float = math.log(MIN_RPS)) -> FloatArray:
    logs: FloatArray = np.maximum(np.log(np.maximum(values, MIN_RPS)), log_floor)
    return logs


def block_table(series: FloatArray, offset: int) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per whole 60-s block from ``offset``: (peak, mean, mean of the last 10 s, of the last 30 s)."""
    count = (series.size - offset) // BLOCK_S
    blocks = series[offset : offset + count * BLOCK_S].reshape(count, BLOCK_S)
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


def log_floor(log_highest: FloatArray) -> FloatArray:
    """The log of the floor of a window whose highest minute peak has log ``log_highest``."""
    floor: FloatArray = np.maximum(math.log(MIN_RPS), log_highest + math.log(FLOOR_RATIO))
    return floor


def levels(series: FloatArray, ends: npt.NDArray[np.int64], window_s: int = LEVEL_S) -> FloatArray:
    """The mean of the observed seconds of ``series[end - window_s : end]`` for each of ``ends`` (NaN: none)."""
    if ends.size == 0:
        return np.empty(0)
    lo = max(0, int(ends.min()) - window_s)
    part = series[lo : int(ends.max())]
    observed = ~np.isnan(part)
    sums = np.concatenate(([0.0], np.cumsum(np.where(observed, part, 0.0))))
    counts = np.concatenate(([0], np.cumsum(observed)))
    stop, start = ends - lo, np.maximum(ends - window_s, lo) - lo
    seen = counts[stop] - counts[start]
    with np.errstate(invalid="ignore", divide="ignore"):
        means: FloatArray = np.where(seen > 0, (sums[stop] - sums[start]) / np.maximum(seen, 1), np.nan)
    return means


def features(peak: FloatArray, mean: FloatArray, tail10: FloatArray, tail30: FloatArray, level: FloatArray) -> FloatArray:
    """Feature rows for every block index ``i >= 9``: the window is blocks ``i-9 .. i`` (newest last);
    ``level``: the level feature of each row (see :func:`levels`)."""
    n = peak.size - HISTORY_BLOCKS + 1
    if n <= 0:
        return np.empty((0, len(FEATURE_NAMES)))
    window = np.lib.stride_tricks.sliding_window_view(peak, HISTORY_BLOCKS)
    last = HISTORY_BLOCKS - 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        highest = _log(np.max(window, axis=1))
        floor = log_floor(highest)
        median = _log(np.median(window, axis=1), floor)
    columns = [np.ones(n)]
    columns += [_log(window[:, last - j], floor) for j in range(5)]
    columns += [_log(mean[last - j : last - j + n], floor) for j in range(3)]
    columns += [highest, median, _log(tail10[last:], floor), _log(tail30[last:], floor), _log(level, floor)]
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


class OursForecaster(BufferedForecaster):
    """Calibrated peak forecaster; ``quantile(q)`` targets an under-prediction rate of ``1 - q``."""

    name = "ours"

    def __init__(
        self,
        *,
        quantile: float = 0.95,
        calibration_min: int = 10080,
        min_calibration: int = 120,
        aci_rate: float = 0.005,
        phase_period_s: int | None = 1800,
        phase_weight: float = 5.0,
        surge_weight: float = 1.0,
        surge_ratio: float = 1.35,
        weights: tuple[float, ...] | None = None,
        scale_free: bool = True,
        prior_weight: float = 60.0,
    ) -> None:
        if not 0.5 <= quantile < 1.0:
            raise InvalidInput([FieldError("quantile", f"{quantile!r} is not in [0.5, 1)", "e.g. 0.95")], source="forecast options")
        if weights is not None and len(weights) != len(FEATURE_NAMES):
            raise InvalidInput(
                [FieldError("weights", f"{len(weights)} values for {len(FEATURE_NAMES)} features", f"one per feature: {', '.join(FEATURE_NAMES)}")],
                source="forecast options",
            )
        self.buffer_s = calibration_min * BLOCK_S + (HISTORY_BLOCKS + 2) * BLOCK_S + 3600 + LEVEL_S
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
        self.prior_weight = float(prior_weight)
        self.prior_residuals = np.asarray(DEFAULT_PRIOR, dtype=np.float64)
        self._prior = prior_samples(self.prior_residuals)
        self.level_shift = 0.0  # the adaptive part of the level (ACI)
        self._pending: dict[float, tuple[float, float, float]] = {}  # issued end_s -> (horizon_s, forecast, weight)
        self._issued_s: float | None = None  # when the newest forecast was issued
        self._residual_cache: tuple[float | None, int, FloatArray, FloatArray | None] | None = None
        #: (horizon_s, end_s mod 60) -> (end_s, anchor times, log residuals): the calibration set
        self._calibration: dict[tuple[int, int], tuple[float, FloatArray, FloatArray, BoolArray]] = {}
        self._surging = False  # whether the newest minute peak stands above the 10-minute median

    # training ---------------------------------------------------------------------------
    def design(
        self, series: FloatArray, horizon_s: int = BLOCK_S, *, with_ages: bool = False, min_blocks: int = HISTORY_BLOCKS, context: FloatArray | None = None
    ) -> Any:
        """(features, log of the real peak over the next ``horizon_s``[, age_s]) at every whole minute of
        ``series`` whose history and target are fully observed; the anchors end at the series' end
        and ``age_s`` is how long before the end of ``series`` each anchor lies. Anchors with only
        ``min_blocks`` minutes before them count too, the oldest minute standing in for the missing
        ones (as at a young service's own ticks). ``context``: the longer history ``series`` is the
        end of, for the level feature (default: ``series`` alone)."""
        span = series.size - horizon_s
        if span < min_blocks * BLOCK_S:
            empty = (np.empty((0, len(FEATURE_NAMES))), np.empty(0))
            return (*empty, np.empty(0, dtype=np.int64)) if with_ages else empty
        offset = span % BLOCK_S
        tables = block_table(series[:span], offset)
        pad = HISTORY_BLOCKS - min_blocks
        if pad > 0:
            tables = tuple(np.concatenate((np.full(pad, table[0]), table)) for table in tables)
        peak = tables[0]
        anchors = offset + BLOCK_S * np.arange(min_blocks, peak.size - pad + 1)
        whole = series if context is None else context
        rows = features(*tables, levels(whole, anchors + (whole.size - series.size)))
        future = np.lib.stride_tricks.sliding_window_view(series, horizon_s)[anchors]
        history_ok = ~np.isnan(np.lib.stride_tricks.sliding_window_view(peak, HISTORY_BLOCKS)).any(axis=1)
        ok = history_ok & ~np.isnan(future).any(axis=1) & ~np.isnan(rows[:, -1])
        target = _log(future[ok].max(axis=1), log_floor(rows[ok, 9]))
        if with_ages:
            return rows[ok], target, (series.size - anchors)[ok]
        return rows[ok], target

    def _train(self, series: FloatArray, start_s: float) -> None:
        rows, log_target = self.design(series)
        if log_target.size < 2 * len(FEATURE_NAMES):
            raise InvalidInput(
                [FieldError("history_rps", f"only {log_target.size} usable minutes, ours needs >= {2 * len(FEATURE_NAMES)}", "fit on a longer history")],
                source="forecast input",
            )
        self.weights = fit_weights(rows, log_target, scale_free=self.scale_free)
        self.prior_residuals = np.quantile(log_target - rows @ self.weights, PRIOR_LEVELS)
        self._prior = prior_samples(self.prior_residuals)
        self.level_shift = 0.0
        self._pending.clear()
        self._issued_s = None
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
            horizon_s, forecast, weight = self._pending[issued]
            if issued + horizon_s > end_s:
                break
            del self._pending[issued]
            lo = round(issued - start_s)
            window = held[max(lo, 0) : lo + int(horizon_s)]
            if lo < 0 or window.size == 0 or np.isnan(window).any():
                continue  # not observed (gap or too old): no evidence either way
            miss = float(window.max() > forecast)
            self.level_shift += self.aci_rate * weight * (miss - miss_target)
        self.level_shift = min(max(self.level_shift, -0.45), 0.999 - self.target_quantile)

    def base_forecast(self) -> float:
        """The uncalibrated point forecast (log-linear model) at now; 0 without any observation."""
        held = self._buffer.values
        if held.size < BLOCK_S:  # a service younger than a minute: what it saw is its first minute
            held = np.concatenate((np.full(BLOCK_S - held.size, np.nan), held))
        peak, mean, tail10, tail30 = block_table(held[-2 * 3600 :], min(held.size, 2 * 3600) % BLOCK_S)
        valid = ~np.isnan(peak)
        if not valid.any():  # a long gap: look further back
            peak, mean, tail10, tail30 = block_table(held, held.size % BLOCK_S)
            valid = ~np.isnan(peak)
        if not valid.any():
            return 0.0
        # after a gap, the newest observed minutes stand in for the missing ones
        index = np.flatnonzero(valid)[-HISTORY_BLOCKS:]
        index = np.concatenate((np.full(HISTORY_BLOCKS - index.size, index[0]), index))
        level = levels(held, np.array([held.size]))
        row = features(peak[index], mean[index], tail10[index], tail30[index], level)[-1]
        self._surging = bool(self._surge(row[None, :])[0])
        return float(np.exp(row @ self.weights))

    def _surge(self, rows: FloatArray) -> BoolArray:
        """Per feature row: is the last minute's peak ``surge_ratio`` above the 10-minute median?"""
        flags: BoolArray = (rows[:, 1] - rows[:, 10]) > math.log(self.surge_ratio)
        return flags

    def _anchor_residuals(self, series: FloatArray, horizon_s: int, end_s: float) -> tuple[FloatArray, FloatArray, BoolArray]:
        """(anchor times, log residuals, surge flags) of every scorable minute of ``series`` (ending at ``end_s``)."""
        # a young service calibrates on its own minutes from its second one on (see ``design``)
        rows, log_target, ages = self.design(series, horizon_s, with_ages=True, min_blocks=1, context=self._buffer.values)
        return end_s - ages, log_target - rows @ self.weights, self._surge(rows)

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
        self._residual_cache = (end_s, horizon_s, values, weights)
        return values, weights

    def calibration(self, horizon_s: int) -> tuple[FloatArray, FloatArray, float, float]:
        """(residuals in ascending order, their cumulative weights, the test point's weight, the median
        residual). With fewer than ``min_calibration`` own residuals the prior joins them, centred on
        their median (``conformal.recentred``), its weight fading from ``prior_weight`` (in own
        residuals) to 0 as they accumulate, and the phase and
        surge weights wait (a test point weighing 5 against a handful of residuals of weight 1 would
        ask for the largest of them)."""
        values, weights = self.residuals(horizon_s)
        fade = max(0.0, 1.0 - values.size / self.min_calibration) if self.min_calibration > 0 else 0.0
        if fade > 0.0 and self.prior_weight > 0.0:
            prior = recentred(self._prior, values)
            joined, joined_weights, test_weight = with_prior(values, None, prior, self.prior_weight * fade, 1.0)
            ordered, cumulative = sort_calibration(joined, joined_weights)
            return ordered, cumulative, test_weight, quantile_of_sorted(ordered, cumulative, 0.5, 0.0)
        test_weight = (self.phase_weight if self.phase_period_s else 1.0) * self.surge_weight if weights is not None else 1.0
        ordered, cumulative = sort_calibration(values, weights)
        middle = ordered.size // 2
        median = ordered[middle] if ordered.size % 2 else 0.5 * (ordered[middle - 1] + ordered[middle])
        return ordered, cumulative, test_weight, float(median)

    def _predict(self, horizon_s: float) -> ForecastResult:
        base = self.base_forecast()
        ordered, cumulative, test_weight, median = self.calibration(max(1, round(horizon_s)))
        shift = self.level_shift
        point = base * math.exp(median)

        def quantile(q: float) -> float:
            level = min(max(q + shift, 0.001), 0.999)
            return base * math.exp(quantile_of_sorted(ordered, cumulative, level, test_weight))

        self._issue(base, horizon_s, quantile)
        return ForecastResult(point, horizon_s, self.name, quantile)

    def _issue(self, base: float, horizon_s: float, quantile: Callable[[float], float]) -> None:
        """Keep the forecast at the target quantile for the adaptive level, weighing a minute's worth of them as one.

        Ticks every few seconds (or every second during a burst) issue overlapping forecasts whose misses
        are one event; counting each fully let one burst push the level to its ceiling (the 99.9 %
        residual: ~2.8x) for half an hour. A forecast weighs the time since the previous one over a minute
        (at most 1): the level moves as in the minute-step backtest whatever the planner's cadence, and
        every phase of the minute is scored.
        """
        end_s = self._buffer.end_s
        if end_s is None or base <= 0:
            return
        if self._issued_s is not None and self._issued_s > end_s:  # the clock went back: a new timeline
            self._pending.clear()
            self._issued_s = None
        weight = 1.0 if self._issued_s is None else min(1.0, (end_s - self._issued_s) / BLOCK_S)
        if weight > 0 and len(self._pending) < MAX_PENDING:
            self._pending[end_s] = (horizon_s, quantile(self.target_quantile), weight)
            self._issued_s = end_s
