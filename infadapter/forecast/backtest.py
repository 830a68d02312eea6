"""Backtests: train on the first days of a trace and forecast every window of the rest online
(:func:`backtest`); or start cold, as a new service does (:func:`cold_start`).

Each model is driven exactly as the planner drives it: at each tick ``t`` (every ``step_s``) it
gets ``update(series[t - window_s : t], now_s=t)`` then ``predict(horizon_s)``; the forecast is
scored against the real peak of ``series[t : t + horizon_s]``. Windows that touch a masked gap
are not scored (the model still sees the tick). Measures, per model:

* ``mape``: mean |point - real| / real;
* ``under_ratio``: share of windows whose real peak exceeded the ``quantile`` forecast;
* ``over_provision_ratio``: mean (forecast - real) / real over the windows with forecast >= real;
* ``pinball``: mean pinball loss of the ``quantile`` forecast at level ``quantile`` (in rps);
* ``fit_s``: training time; ``predict_ms`` (mean) and ``predict_ms_p99``: one tick (update + predict).

The clock is read only to time the models, through the ``timer`` parameter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from infadapter.forecast import Forecaster, make_forecaster
from infadapter.forecast.base import FloatArray, as_series


def forecast_measures(point: FloatArray, forecast: FloatArray, real: FloatArray, quantile: float) -> dict[str, float]:
    """The forecast measures of the module docstring for aligned arrays of windows."""
    positive = real > 0
    covered = forecast >= real
    error = real - forecast
    return {
        "mape": float(np.mean(np.abs(point[positive] - real[positive]) / real[positive])) if positive.any() else 0.0,
        "under_ratio": float(np.mean(~covered)) if real.size else 0.0,
        "over_provision_ratio": float(np.mean((forecast[covered & positive] - real[covered & positive]) / real[covered & positive]))
        if (covered & positive).any()
        else 0.0,
        "pinball": float(np.mean(np.maximum(quantile * error, (quantile - 1) * error))) if real.size else 0.0,
    }


def backtest(
    series_rps: FloatArray,
    models: Mapping[str, Forecaster] | list[str],
    *,
    train_s: int,
    timer: Callable[[], float],
    horizon_s: int = 60,
    quantile: float = 0.95,
    step_s: int = 60,
    window_s: int = 600,
    options: Mapping[str, dict[str, Any]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score each model; returns ``{"models": {name: measures}, "windows": n, ...}``."""
    series = as_series(series_rps, "trace")
    if not 0 < train_s < series.size - horizon_s - window_s:
        raise ValueError(f"train_s={train_s} leaves no test window in a {series.size}-s trace")
    built: dict[str, Forecaster] = (
        dict(models) if isinstance(models, Mapping) else {name: make_forecaster(name, **(options or {}).get(name, {})) for name in models}
    )
    ticks = np.arange(max(train_s, window_s), series.size - horizon_s + 1, step_s)
    futures = np.lib.stride_tricks.sliding_window_view(series, horizon_s)[ticks]
    scored = ~np.isnan(futures).any(axis=1)
    real = futures.max(axis=1, initial=0.0, where=~np.isnan(futures))
    results: dict[str, dict[str, float]] = {}
    for name, model in built.items():
        if progress:
            progress(f"{name}: fit on {train_s} s")
        started = timer()
        model.fit(series[:train_s])
        fit_s = timer() - started
        points = np.zeros(ticks.size)
        forecasts = np.zeros(ticks.size)
        tick_ms = np.zeros(ticks.size)
        for i, t in enumerate(ticks):
            started = timer()
            model.update(series[t - window_s : t], now_s=float(t))
            result = model.predict(float(horizon_s))
            forecasts[i] = result.quantile(quantile)
            tick_ms[i] = (timer() - started) * 1000.0
            points[i] = result.point_rps
        measures = forecast_measures(points[scored], forecasts[scored], real[scored], quantile)
        measures.update(fit_s=round(fit_s, 3), predict_ms=float(np.mean(tick_ms)), predict_ms_p99=float(np.quantile(tick_ms, 0.99)))
        results[name] = {key: round(value, 4) for key, value in measures.items()}
        if progress:
            progress(f"{name}: {results[name]}")
    return {"models": results, "windows": int(scored.sum()), "train_s": int(train_s), "horizon_s": int(horizon_s), "quantile": quantile, "step_s": int(step_s)}


def cold_start(
    series_rps: FloatArray,
    make: Callable[[], Forecaster],
    *,
    horizon_s: int = 20,
    step_s: int = 10,
    quantile: float = 0.95,
    warmup_s: int = 120,
    window_s: int = 600,
    lookback_s: int = 60,
    limit_ratio: float = 1.5,
) -> dict[str, float]:
    """A new service: a model that has seen nothing is driven from second 0 as the planner drives it.

    At each tick ``t`` (every ``step_s``) it gets ``update(series[t - window_s : t], now_s=t)`` and
    ``predict(horizon_s)``; ticks from ``warmup_s`` on are scored. The **over-forecast ratio** of a tick is
    the ``quantile`` forecast over the *observed peak*: the higher of the peak of the last ``lookback_s``
    and the real peak of the next ``horizon_s`` (a forecast above what was just seen is only excused by
    what comes). Measures: ``over_peak_max`` / ``over_peak_p99`` of that ratio, ``over_peak_share`` (ticks
    above ``limit_ratio``), ``first_ratio`` (at the first scored tick), and ``under_ratio`` and
    ``over_provision_ratio`` against the real peak as in :func:`forecast_measures`.
    """
    series = as_series(series_rps, "trace")
    if series.size < warmup_s + horizon_s + step_s:
        raise ValueError(f"a {series.size}-s trace leaves no tick after warmup_s={warmup_s}")
    model = make()
    ratios, forecasts, real = [], [], []
    for t in range(step_s, series.size - horizon_s + 1, step_s):
        model.update(series[max(0, t - window_s) : t], now_s=float(t))
        forecast = model.predict(float(horizon_s)).quantile(quantile)
        future, past = series[t : t + horizon_s], series[max(0, t - lookback_s) : t]
        if t < warmup_s or np.isnan(future).any():
            continue
        peak = max(float(np.nanmax(past, initial=0.0)), float(future.max()))
        ratios.append(forecast / peak if peak > 0 else (1.0 if forecast <= 0 else math.inf))
        forecasts.append(forecast)
        real.append(float(future.max()))
    ratio, high, peaks = np.array(ratios), np.array(forecasts), np.array(real)
    covered = (high >= peaks) & (peaks > 0)
    return {
        "ticks": int(ratio.size),
        "over_peak_max": float(ratio.max()),
        "over_peak_p99": float(np.quantile(ratio, 0.99)),
        "over_peak_share": float(np.mean(ratio > limit_ratio)),
        "first_ratio": float(ratio[0]),
        "under_ratio": float(np.mean(high < peaks)),
        "over_provision_ratio": float(np.mean((high[covered] - peaks[covered]) / peaks[covered])) if covered.any() else 0.0,
    }
