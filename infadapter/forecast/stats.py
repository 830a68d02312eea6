"""statsmodels forecasters of the minute-peak series: Holt-Winters (ETS) and SARIMAX.

Both are fitted offline by statsmodels on the minute peaks of ``fit``'s history and then kept
current online at a bounded cost per tick:

* ``ets``: additive damped-trend Holt-Winters with a daily season (1440 minutes). statsmodels
  estimates the smoothing weights and initial states; online, each newly completed minute runs
  one step of the same recursion (checked against statsmodels' fitted values in the tests), so a
  tick costs O(1). Quantiles: Gaussian, with the in-sample residual standard deviation.
* ``sarimax``: ARIMA(2,0,1) with a constant on the last ``fit_window_min`` minutes. Each new
  minute is filtered with ``results.extend`` (the Kalman state carries over, fixed parameters);
  the parameters are re-estimated every ``refit_every_min`` minutes on the last window, warm-started.
  Quantiles: Gaussian, from the state-space forecast's standard error.

Minutes are absolute: minute ``k`` covers ``[60k, 60k + 60)`` on the ``fit``/``now_s`` timeline,
which is what gives the season its phase.
"""

from __future__ import annotations

import math
import warnings
from abc import abstractmethod
from collections.abc import Callable
from statistics import NormalDist
from typing import Any

import numpy as np

from infadapter.errors import FieldError, InvalidInput
from infadapter.forecast.base import BufferedForecaster, FloatArray, ForecastResult
from infadapter.forecast.blocks import block_peaks

BLOCK_S = 60


def minute_peaks(series: FloatArray, start_s: float) -> tuple[int, FloatArray]:
    """(index of the first whole absolute minute, peaks of the whole minutes of ``series``)."""
    first_k = math.ceil(start_s / BLOCK_S)
    offset = round(first_k * BLOCK_S - start_s)
    return first_k, block_peaks(series[offset:], BLOCK_S)


def fill_gaps(values: FloatArray) -> FloatArray:
    """Linear interpolation over NaN (for estimators that cannot skip missing values)."""
    valid = ~np.isnan(values)
    if valid.all():
        return values
    if not valid.any():
        raise InvalidInput([FieldError("history_rps", "no observed value to fit on", "give history outside collection gaps")], source="forecast input")
    index = np.arange(values.size)
    return np.interp(index, index[valid], values[valid])


def gaussian_quantile(point: float, sigma: float) -> Callable[[float], float]:
    normal = NormalDist()
    return lambda q: point + normal.inv_cdf(q) * sigma


class MinuteStream(BufferedForecaster):
    """Feeds each newly completed absolute minute's peak to ``_observe``, in order."""

    buffer_s = 2 * 3600
    #: at most this many missing minutes are replayed after a jump; beyond it the state is kept
    max_replay_min = 1440

    def __init__(self) -> None:
        super().__init__()
        self._next_k = 0  # first minute not yet observed

    def _ingested(self, added_s: int) -> None:
        end_s = self._buffer.end_s
        if end_s is None:
            return
        held = self._buffer.values
        start_s = end_s - held.size
        done_k = math.floor(end_s / BLOCK_S)  # minutes < done_k are complete
        if done_k - self._next_k > self.max_replay_min:
            self._next_k = done_k - self.max_replay_min
        peaks: list[float] = []
        for k in range(self._next_k, done_k):
            lo = round(k * BLOCK_S - start_s)
            block = held[max(0, lo) : max(0, lo + BLOCK_S)]
            peaks.append(float(np.nanmax(block)) if block.size and not np.isnan(block).all() else math.nan)
        if peaks:
            self._observe(np.asarray(peaks, dtype=np.float64))
        self._next_k = max(self._next_k, done_k)

    @abstractmethod
    def _observe(self, peaks: FloatArray) -> None:
        """Take the newly completed minute peaks into the model's state (each model's own)."""

    def _unfitted(self, horizon_s: float) -> ForecastResult:
        """Before ``fit``: the last observed minute's peak (the naive forecast), no uncertainty."""
        peaks = block_peaks(self._buffer.values[-3600:], BLOCK_S, align="end")
        valid = peaks[~np.isnan(peaks)]
        return ForecastResult(float(valid[-1]) if valid.size else 0.0, horizon_s, self.name)

    def _steps(self, horizon_s: float) -> range:
        """Steps ahead (1 = minute ``_next_k``) of the minutes overlapping ``[now, now + horizon)``."""
        end_s = self._buffer.end_s or 0.0
        first = math.floor(end_s / BLOCK_S)
        last = math.ceil((end_s + horizon_s) / BLOCK_S) - 1
        return range(first - self._next_k + 1, max(first, last) - self._next_k + 2)


class Ets(MinuteStream):
    """Holt-Winters (additive, damped trend, daily season) on minute peaks."""

    name = "ets"

    def __init__(self, *, seasonal_periods: int = 1440, damped: bool = True) -> None:
        super().__init__()
        self.seasonal_periods = int(seasonal_periods)
        self.damped = damped
        self._level = 0.0
        self._trend = 0.0
        self._season = np.zeros(max(1, self.seasonal_periods))
        self._alpha = self._beta = self._gamma = 0.0
        self._phi = 1.0
        self._sigma = 0.0
        self._fitted = False

    def _train(self, series: FloatArray, start_s: float) -> None:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing

        first_k, peaks = minute_peaks(series, start_s)
        if peaks.size < 10:
            raise InvalidInput([FieldError("history_rps", f"{peaks.size} whole minutes, ets needs >= 10", "fit on a longer history")], source="forecast input")
        filled = fill_gaps(peaks)
        seasonal = self.seasonal_periods if filled.size >= 2 * self.seasonal_periods + 2 else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter; the fit is checked by its residuals
            model = ExponentialSmoothing(
                filled,
                trend="add",
                damped_trend=self.damped,
                seasonal="add" if seasonal else None,
                seasonal_periods=seasonal,
                initialization_method="heuristic" if seasonal else "estimated",
            )
            result = model.fit()
        params: dict[str, Any] = result.params
        self._alpha = float(params["smoothing_level"])
        self._beta = float(params.get("smoothing_trend") or 0.0)
        self._gamma = float(params.get("smoothing_seasonal") or 0.0) if seasonal else 0.0
        self._phi = float(params.get("damping_trend") or 1.0) if self.damped else 1.0
        self._level = float(params["initial_level"])
        self._trend = float(params.get("initial_trend") or 0.0)
        self._season = np.zeros(max(1, self.seasonal_periods))
        if seasonal:
            initial = np.asarray(params["initial_seasons"], dtype=np.float64)
            self._season[(first_k + np.arange(seasonal)) % seasonal] = initial
        else:
            self.seasonal_periods = 1
            self._season = np.zeros(1)
        self._fitted = True
        self._next_k = first_k
        residuals = self._run(filled, track=True)
        valid = ~np.isnan(peaks)
        self._sigma = float(np.std(residuals[valid])) if valid.any() else 0.0
        self._next_k = first_k + peaks.size

    def _run(self, peaks: FloatArray, track: bool = False) -> FloatArray:
        """One Holt-Winters step per minute from ``_next_k`` (NaN = missing: the state coasts)."""
        level, trend, season = self._level, self._trend, self._season
        alpha, beta, gamma, phi, period = self._alpha, self._beta, self._gamma, self._phi, season.size
        residuals = np.empty(peaks.size if track else 0)
        for i, observed in enumerate(peaks):
            slot = (self._next_k + i) % period
            old_season = season[slot]
            damped_trend = phi * trend
            expected = level + damped_trend + old_season
            if track:
                residuals[i] = observed - expected
            y = expected if math.isnan(observed) else observed
            new_level = alpha * (y - old_season) + (1 - alpha) * (level + damped_trend)
            trend = beta * (new_level - level) + (1 - beta) * damped_trend
            season[slot] = gamma * (y - level - damped_trend) + (1 - gamma) * old_season
            level = new_level
        self._level, self._trend = level, trend
        return residuals

    def _observe(self, peaks: FloatArray) -> None:
        if self._fitted:
            self._run(peaks)

    def _predict(self, horizon_s: float) -> ForecastResult:
        if not self._fitted:
            return self._unfitted(horizon_s)
        values = []
        for step in self._steps(horizon_s):
            damp = sum(self._phi**j for j in range(1, step + 1))
            slot = (self._next_k + step - 1) % self._season.size
            values.append(self._level + damp * self._trend + self._season[slot])
        point = max(0.0, *values)
        return ForecastResult(point, horizon_s, self.name, gaussian_quantile(point, self._sigma))


class Sarimax(MinuteStream):
    """ARIMA(p,d,q) with a constant on minute peaks, filtered online, refitted on a sliding window."""

    name = "sarimax"

    def __init__(self, *, order: tuple[int, int, int] = (2, 0, 1), fit_window_min: int = 2880, refit_every_min: int | None = 1440) -> None:
        super().__init__()
        self.order = tuple(order)
        self.fit_window_min = int(fit_window_min)
        self.refit_every_min = refit_every_min
        self._result: Any = None
        self._recent: FloatArray = np.empty(0)
        self._since_refit = 0
        self._cache: tuple[int, int, float, float] | None = None  # (next_k, steps, mean, se)

    def _estimate(self, peaks: FloatArray, start_params: Any = None) -> Any:
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter on short or flat windows
            model = SARIMAX(peaks, order=self.order, trend="c")
            return model.fit(start_params=start_params, disp=False, maxiter=100)

    def _train(self, series: FloatArray, start_s: float) -> None:
        first_k, peaks = minute_peaks(series, start_s)
        peaks = peaks[-self.fit_window_min :]
        if np.count_nonzero(~np.isnan(peaks)) < 10:
            raise InvalidInput(
                [FieldError("history_rps", "fewer than 10 observed minutes, sarimax needs more", "fit on a longer history")], source="forecast input"
            )
        self._result = self._estimate(peaks)
        self._recent = peaks
        self._since_refit = 0
        self._cache = None
        self._next_k = first_k + minute_peaks(series, start_s)[1].size

    def _observe(self, peaks: FloatArray) -> None:
        self._recent = np.concatenate((self._recent, peaks))[-self.fit_window_min :]
        if self._result is None:
            return
        self._since_refit += peaks.size
        self._cache = None
        if self.refit_every_min and self._since_refit >= self.refit_every_min:
            self._result = self._estimate(self._recent, start_params=self._result.params)
            self._since_refit = 0
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._result = self._result.extend(peaks)

    def _predict(self, horizon_s: float) -> ForecastResult:
        if self._result is None:
            return self._unfitted(horizon_s)
        steps = self._steps(horizon_s)
        if self._cache is None or self._cache[:2] != (self._next_k, steps.stop):
            forecast = self._result.get_forecast(steps.stop - 1)
            means = np.asarray(forecast.predicted_mean)[steps.start - 1 :]
            errors = np.asarray(forecast.se_mean)[steps.start - 1 :]
            top = int(np.argmax(means))
            self._cache = (self._next_k, steps.stop, float(means[top]), float(errors[top]))
        _, _, mean, se = self._cache
        point = max(0.0, mean)
        return ForecastResult(point, horizon_s, self.name, gaussian_quantile(point, se))
