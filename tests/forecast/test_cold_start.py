"""``ours`` on a new service: its own scale from the first ticks, no over-forecast after two minutes."""

from __future__ import annotations

from typing import Self

import numpy as np
import numpy.typing as npt
import pytest

from infadapter.errors import InvalidInput
from infadapter.forecast import ForecastResult, make_forecaster
from infadapter.forecast.backtest import cold_start
from infadapter.forecast.conformal import PRIOR_LEVELS, conformal_quantile, prior_samples, recentred
from infadapter.forecast.ours import DEFAULT_PRIOR, FEATURE_NAMES

from .synthetic import poisson_series


def burst_then_calm(seed: int = 0) -> np.ndarray:
    """A new service: 40 s calm at 50 rps, a 4x burst for 90 s, calm again for 15 minutes (Poisson)."""
    rate = np.r_[np.full(40, 50.0), np.full(90, 200.0), np.full(900, 50.0)]
    return np.random.default_rng(seed).poisson(rate).astype(np.float64)


def ticks(series: np.ndarray, q: float, *, step_s: int = 10, horizon_s: float = 20.0) -> np.ndarray:
    """The ``q`` forecasts of a new ``ours`` ticking every ``step_s`` from the first second of ``series``."""
    model = make_forecaster("ours", quantile=q)
    out = []
    for t in range(step_s, series.size, step_s):
        model.update(series[max(0, t - 600) : t], now_s=float(t))
        out.append(model.predict(horizon_s).quantile(q))
    return np.array(out)


@pytest.mark.parametrize("q", [0.5, 0.95])
def test_a_new_service_is_forecast_at_its_own_scale(q: float) -> None:
    series = burst_then_calm(seed=1)
    reference = ticks(series, q)
    for scale in (0.01, 100.0):
        assert np.allclose(ticks(series * scale, q), scale * reference, rtol=1e-6)


@pytest.mark.parametrize("q", [0.5, 0.95])
@pytest.mark.parametrize("rate_rps", [5.0, 500.0])
def test_a_steady_load_is_not_over_forecast_from_its_second_decision(q: float, rate_rps: float) -> None:
    forecasts = ticks(np.full(1200, rate_rps), q)
    assert forecasts[1] <= 1.5 * rate_rps  # the second decision (it was 12 for 5 rps at q = 0.95)
    assert np.all(forecasts[11:] <= 1.5 * rate_rps)  # from 2 minutes on
    assert forecasts[-1] < forecasts[11]  # its own residuals take over from the training trace's


@pytest.mark.parametrize("q", [0.5, 0.95])
def test_after_a_burst_a_new_service_stays_within_one_and_a_half_times_the_observed_peak(q: float) -> None:
    measures = cold_start(burst_then_calm(), lambda: make_forecaster("ours", quantile=q), quantile=q)
    assert measures["over_peak_max"] <= 1.5, measures
    assert measures["under_ratio"] <= (0.6 if q == 0.5 else 0.15)


def test_the_adaptive_level_moves_a_minutes_worth_a_minute_whatever_the_cadence() -> None:
    model = make_forecaster("ours", quantile=0.95)
    series = np.r_[np.full(600, 50.0), np.linspace(50.0, 500.0, 300)]  # a ramp: every forecast misses
    for t in range(600, 900):  # a tick every second
        model.update(series[:t], now_s=float(t))
        model.predict(20.0)
    step = model.aci_rate * model.target_quantile  # type: ignore[attr-defined]
    assert model.level_shift <= 5 * step + 1e-12  # type: ignore[attr-defined]


def test_a_high_level_reads_the_prior_between_its_points() -> None:
    prior = np.asarray(DEFAULT_PRIOR)
    samples = prior_samples(prior)
    # as 41 samples, any level above 40/42 would answer the prior's largest value (x2.9 here)
    assert conformal_quantile(prior, 0.96) == prior.max()
    assert conformal_quantile(samples, 0.96) < prior[PRIOR_LEVELS.index(0.975)]


def test_the_prior_moves_to_the_median_of_a_few_own_residuals() -> None:
    prior = prior_samples(np.asarray(DEFAULT_PRIOR))
    own = np.full(9, -0.2)
    moved = recentred(prior, own)
    assert np.median(moved) == pytest.approx(np.median(prior) + (-0.2 - np.median(prior)) * 9 / 12)
    assert np.allclose(np.diff(moved), np.diff(prior))  # the shape (the tail) is the prior's
    assert recentred(prior, np.empty(0)) is prior


def test_weights_of_the_wrong_length_are_refused() -> None:
    with pytest.raises(InvalidInput, match=f"{len(FEATURE_NAMES)} features"):
        make_forecaster("ours", weights=(0.0,) * 13)


class _TwiceTheRecentPeak:
    """A stub forecaster: twice the peak of the last 60 s."""

    name = "twice"

    def __init__(self) -> None:
        self.window = np.empty(0)

    def fit(self, history_rps: npt.ArrayLike, *, start_s: float = 0.0) -> Self:
        return self

    def update(self, history_rps: npt.ArrayLike, *, now_s: float | None = None) -> None:
        self.window = np.asarray(history_rps, dtype=np.float64)

    def predict(self, horizon_s: float = 60.0) -> ForecastResult:
        return ForecastResult(2.0 * float(self.window[-60:].max()), horizon_s)


def test_cold_start_scores_against_the_observed_peak_from_the_warm_up_on() -> None:
    series = poisson_series(600, 20.0, seed=3)
    measures = cold_start(series, _TwiceTheRecentPeak, horizon_s=20, step_s=10, warmup_s=120)
    assert measures["ticks"] == len(range(120, 600 - 20 + 1, 10))
    assert 1.5 < measures["over_peak_max"] <= 2.0 and measures["over_peak_share"] > 0.9
    assert measures["under_ratio"] == 0.0 and measures["over_provision_ratio"] > 0.5
