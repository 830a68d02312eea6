"""Each forecaster's known behaviour on synthetic series (seasonal, bursty, with gaps)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from infadapter.errors import InvalidInput
from infadapter.forecast import Forecaster, HistoryBuffer, make_forecaster
from infadapter.forecast.backtest import backtest
from infadapter.forecast.conformal import conformal_quantile
from infadapter.forecast.simple import ewma_last
from infadapter.forecast.stats import Ets

from .synthetic import DAY_S, bursty_series, poisson_series, seasonal_series, with_gaps


def drive(model: Forecaster, series: np.ndarray, start: int, stop: int, step_s: int = 60, q: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tick like the planner; returns (points, q-forecasts, real peaks of the next minute)."""
    points, forecasts, real = [], [], []
    for t in range(start, stop - 60, step_s):
        model.update(series[t - 600 : t], now_s=float(t))
        result = model.predict(60.0)
        points.append(result.point_rps)
        forecasts.append(result.quantile(q))
        real.append(np.nanmax(series[t : t + 60]))
    return np.array(points), np.array(forecasts), np.array(real)


@pytest.mark.parametrize("name", ["ewma", "last", "ets", "sarimax", "ours"])
def test_every_model_follows_the_protocol_and_survives_a_gap(name: str) -> None:
    series = with_gaps(seasonal_series(DAY_S // 2, period_s=3600), every_s=DAY_S // 4)
    series[series == 0] = np.nan
    options = {"seasonal_periods": 60} if name == "ets" else {}
    model = make_forecaster(name, **options)
    assert isinstance(model, Forecaster)
    model.fit(series[: DAY_S // 4 - 1800])
    for t in range(DAY_S // 4 - 1800, DAY_S // 4 + 1200, 30):  # through the masked gap and out of it
        model.update(series[t - 600 : t], now_s=float(t))
        result = model.predict(60.0)
        assert np.isfinite(result.point_rps) and result.point_rps >= 0
        assert result.quantile(0.95) >= result.quantile(0.5) - 1e-9
    assert 20 < model.predict(60.0).quantile(0.95) < 300


@pytest.mark.parametrize("name", ["ets", "sarimax"])
def test_an_unfitted_statistical_model_answers_the_last_minute_peak(name: str) -> None:
    model = make_forecaster(name)
    model.update(np.r_[np.full(60, 30.0), np.full(60, 45.0)], now_s=120.0)
    assert model.predict(60).point_rps == 45.0


def test_unknown_model_and_bad_options_are_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="one of"):
        make_forecaster("prophet")
    with pytest.raises(InvalidInput, match="bad option"):
        make_forecaster("ewma", colour="red")
    with pytest.raises(InvalidInput):
        make_forecaster("ours").predict(60.0).quantile(1.5)


def test_ewma_matches_pandas_span_10_of_minute_peaks() -> None:
    peaks = np.array([50.0, 80, 60, 70, 90, 65, 55, 75, 85, 95])
    assert ewma_last(peaks, 10) == pytest.approx(pd.Series(peaks).ewm(span=10).mean().iloc[-1])
    series = np.repeat(peaks, 60) - np.tile(np.r_[np.zeros(1), np.full(59, 10.0)], 10)
    model = make_forecaster("ewma")
    model.update(series, now_s=600.0)
    assert model.predict(60).point_rps == pytest.approx(ewma_last(peaks, 10))


def test_last_returns_the_last_minute_peak_and_margin_scales_it() -> None:
    series = np.r_[np.full(60, 10.0), np.full(60, 40.0)]
    series[100] = 55
    model = make_forecaster("last", margin_ratio=0.1)
    model.update(series, now_s=120.0)
    result = model.predict(60)
    assert result.point_rps == 55 and result.quantile(0.9) == pytest.approx(60.5)


def test_ets_online_recursion_reproduces_statsmodels_fitted_values() -> None:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    series = seasonal_series(3 * 3600 * 3, period_s=3 * 3600, seed=3)
    model = Ets(seasonal_periods=180)
    model.fit(series[:-3600])
    peaks = series[: series.size // 60 * 60].reshape(-1, 60).max(axis=1)
    reference = ExponentialSmoothing(peaks[:-60], trend="add", damped_trend=True, seasonal="add", seasonal_periods=180, initialization_method="heuristic").fit()
    assert model._alpha == pytest.approx(reference.params["smoothing_level"], rel=1e-6)
    model.update(series[-3600:], now_s=float(series.size))  # 60 new minutes through our recursion
    ours_next = model.predict(60).point_rps
    reference_next = reference.append(peaks[-60:]).forecast(1)[0] if hasattr(reference, "append") else None
    expected = ExponentialSmoothing(peaks, trend="add", damped_trend=True, seasonal="add", seasonal_periods=180, initialization_method="heuristic").fit(
        smoothing_level=reference.params["smoothing_level"],
        smoothing_trend=reference.params["smoothing_trend"],
        smoothing_seasonal=reference.params["smoothing_seasonal"],
        damping_trend=reference.params["damping_trend"],
        optimized=False,
    )
    del reference_next
    # same parameters, same data: the one-step forecasts agree up to the heuristic initial states
    assert ours_next == pytest.approx(float(expected.forecast(1)[0]), rel=0.05)


def test_ets_tracks_a_seasonal_series_better_than_the_last_value() -> None:
    series = seasonal_series(4 * 3 * 3600, period_s=3 * 3600, base_rps=80, amplitude_rps=60, seed=1)
    train = 3 * 3 * 3600
    ets = make_forecaster("ets", seasonal_periods=180).fit(series[:train])
    points, _, real = drive(ets, series, train, series.size)
    last_points, _, _ = drive(make_forecaster("last").fit(series[:train]), series, train, series.size)
    ets_mape = np.mean(np.abs(points - real) / real)
    assert ets_mape < 0.08
    assert ets_mape < np.mean(np.abs(last_points - real) / real)


def test_sarimax_forecast_follows_the_level_with_a_calibrated_interval() -> None:
    series = seasonal_series(DAY_S // 2, period_s=6 * 3600, seed=2)
    train = DAY_S // 4
    model = make_forecaster("sarimax", refit_every_min=120, fit_window_min=600).fit(series[:train])
    points, upper, real = drive(model, series, train, series.size, step_s=120)
    assert np.mean(np.abs(points - real) / real) < 0.15
    assert 0.8 < np.mean(upper >= real) <= 1.0


@pytest.mark.parametrize("target", [0.9, 0.95])
def test_ours_hits_its_target_under_prediction_rate_on_a_stationary_noisy_series(target: float) -> None:
    series = poisson_series(DAY_S + DAY_S // 2, 60.0, seed=11)
    model = make_forecaster("ours", quantile=target, calibration_min=720).fit(series[: DAY_S // 2])
    _, forecasts, real = drive(model, series, DAY_S // 2, series.size, q=target)
    under = np.mean(real > forecasts)
    assert abs(under - (1 - target)) <= 0.02, under


def test_ours_learns_a_recurring_burst_from_its_phase() -> None:
    series = bursty_series(2 * DAY_S // 3, seed=5)
    model = make_forecaster("ours", calibration_min=720).fit(series[: DAY_S // 3])
    _, forecasts, real = drive(model, series, DAY_S // 3, series.size)
    onsets = np.flatnonzero((np.arange(DAY_S // 3, series.size - 60, 60) % 1800) == 0)
    assert np.mean(forecasts[onsets] >= 0.9 * real[onsets]) >= 0.8  # the burst onsets are foreseen
    assert np.mean(real > forecasts) < 0.08


def test_ours_incremental_calibration_equals_a_full_replay() -> None:
    series = with_gaps(bursty_series(DAY_S // 2, seed=9), every_s=DAY_S // 8, gap_s=600)
    series[series == 0] = np.nan
    ticked = make_forecaster("ours", calibration_min=600).fit(series[: DAY_S // 8])
    for t in range(DAY_S // 8, DAY_S // 2, 30):
        ticked.update(series[t - 600 : t], now_s=float(t))
        ticked.predict(60)
    replayed = make_forecaster("ours", calibration_min=600).fit(series[: DAY_S // 8])
    replayed.update(series[:t], now_s=float(t))
    for horizon in (60, 30):
        incremental, weights = ticked.residuals(horizon)  # type: ignore[attr-defined]
        full, full_weights = replayed.residuals(horizon)  # type: ignore[attr-defined]
        assert np.allclose(incremental, full) and np.array_equal(weights, full_weights)


def test_scale_free_weights_scale_the_forecast_with_the_load() -> None:
    series = bursty_series(DAY_S // 4, seed=3)
    model = make_forecaster("ours").fit(series)  # scale-free by default
    weights = tuple(model.weights)  # type: ignore[attr-defined]
    assert sum(weights[1:]) == pytest.approx(1.0)
    once, doubled = make_forecaster("ours", weights=weights), make_forecaster("ours", weights=weights)
    once.update(series[-1200:], now_s=float(series.size))
    doubled.update(2 * series[-1200:], now_s=float(series.size))
    assert doubled.base_forecast() == pytest.approx(2 * once.base_forecast(), rel=1e-9)  # type: ignore[attr-defined]


@pytest.mark.parametrize("options", [{}, {"surge_weight": 5.0}, {"phase_period_s": None}])
def test_ours_quantiles_are_monotone_and_the_point_is_inside(options: dict[str, float]) -> None:
    series = bursty_series(DAY_S // 6, seed=2)
    model = make_forecaster("ours", **options)
    model.update(series, now_s=float(series.size))
    result = model.predict(60)
    levels = [result.quantile(q) for q in (0.1, 0.5, 0.9, 0.95, 0.99)]
    assert levels == sorted(levels) and levels[0] <= result.point_rps <= levels[-1]


def test_weighted_conformal_quantile_reduces_to_the_rank_rule() -> None:
    values = np.arange(1.0, 20.0)  # n = 19: (n+1) q = 19 for q = 0.95
    assert conformal_quantile(values, 0.95) == 19.0
    assert conformal_quantile(values, 0.5) == 10.0
    weights = np.where(values > 15, 10.0, 1.0)
    assert conformal_quantile(values, 0.5, weights, 10.0) > 15  # heavy samples pull the quantile up


def test_history_buffer_aligns_sliding_windows_without_a_clock() -> None:
    series = poisson_series(5000, 30.0, seed=4)
    timed, untimed = HistoryBuffer(3000), HistoryBuffer(3000)
    for end in range(600, 5000, 30):
        timed.ingest(series[end - 600 : end], now_s=float(end))
        untimed.ingest(series[end - 600 : end])
    assert np.array_equal(timed.values, series[4980 - 3000 : 4980])
    assert np.array_equal(untimed.values, timed.values)


def test_backtest_reports_every_measure_for_each_model() -> None:
    series = bursty_series(DAY_S // 4, seed=8)
    report = backtest(series, ["last", "ours"], train_s=DAY_S // 8, timer=lambda: 0.0)
    assert set(report["models"]) == {"last", "ours"}
    for measures in report["models"].values():
        assert {"mape", "under_ratio", "over_provision_ratio", "pinball", "fit_s", "predict_ms"} <= set(measures)
    assert report["models"]["ours"]["under_ratio"] < report["models"]["last"]["under_ratio"]
