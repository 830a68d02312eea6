"""Backtest: train on the first days of a trace, then forecast every window of the rest online.

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

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from infadapter.forecast import Forecaster, make_forecaster
from infadapter.forecast.base import FloatArray, as_series


def score(point: FloatArray, forecast: FloatArray, real: FloatArray, quantile: float) -> dict[str, float]:
    """The forecast measures of the module docstring for aligned arrays of windows."""
    positive = real > 0
    covered = forecast >= real
    error = real - forecast
    return {
        "mape": float(np.mean(np.abs(point[positive] - real[positive]) / real[positive])) if positive.any() else 0.0,
        "under_ratio": float(np.mean(~covered)) if real.size else 0.0,
        "over_provision_ratio": float(np.mean((forecast[covered & positive] - real[covered & positive])
                                              / real[covered & positive])) if (covered & positive).any() else 0.0,
        "pinball": float(np.mean(np.maximum(quantile * error, (quantile - 1) * error))) if real.size else 0.0,
    }


def backtest(series_rps: FloatArray, models: Mapping[str, Forecaster] | list[str], *, train_s: int,
             timer: Callable[[], float], horizon_s: int = 60, quantile: float = 0.95, step_s: int = 60,
             window_s: int = 600, options: Mapping[str, dict[str, Any]] | None = None,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Score each model; returns ``{"models": {name: measures}, "windows": n, ...}``."""
    series = as_series(series_rps, "trace")
    if not 0 < train_s < series.size - horizon_s - window_s:
        raise ValueError(f"train_s={train_s} leaves no test window in a {series.size}-s trace")
    built: dict[str, Forecaster] = (
        dict(models) if isinstance(models, Mapping)
        else {name: make_forecaster(name, **(options or {}).get(name, {})) for name in models}
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
            model.update(series[t - window_s:t], now_s=float(t))
            result = model.predict(float(horizon_s))
            forecasts[i] = result.quantile(quantile)
            tick_ms[i] = (timer() - started) * 1000.0
            points[i] = result.point_rps
        measures = score(points[scored], forecasts[scored], real[scored], quantile)
        measures.update(fit_s=round(fit_s, 3), predict_ms=float(np.mean(tick_ms)),
                        predict_ms_p99=float(np.quantile(tick_ms, 0.99)))
        results[name] = {key: round(value, 4) for key, value in measures.items()}
        if progress:
            progress(f"{name}: {results[name]}")
    return {"models": results, "windows": int(scored.sum()), "train_s": int(train_s),
            "horizon_s": int(horizon_s), "quantile": quantile, "step_s": int(step_s)}
