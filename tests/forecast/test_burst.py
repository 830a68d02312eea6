"""The between-ticks burst detector: fires on a burst or a steep rise, stays quiet on steady load."""

from __future__ import annotations

import numpy as np

from infadapter.forecast import detect_burst

from .synthetic import poisson_series


def test_steady_load_within_capacity_does_not_fire() -> None:
    for seed in range(20):
        signal = detect_burst(poisson_series(20, 60.0, seed=seed), capacity_rps=100.0)
        assert not signal.replan, signal.reason


def test_a_jump_to_the_capacity_fires_and_suggests_the_new_peak_plus_headroom() -> None:
    recent = np.r_[poisson_series(15, 50.0, seed=1), poisson_series(5, 200.0, seed=2)]
    signal = detect_burst(recent, capacity_rps=120.0)
    assert signal.replan
    assert signal.observed_rps > 150
    assert signal.suggested_rps >= recent[-5:].max() * 1.15 - 1e-9


def test_a_steep_rise_fires_before_the_capacity_is_reached() -> None:
    recent = np.linspace(40.0, 80.0, 20)  # +2 rps/s, now at ~78 rps
    signal = detect_burst(recent, capacity_rps=100.0)
    assert signal.observed_rps < 0.9 * 100
    assert signal.replan and "rising" in signal.reason


def test_too_few_observed_seconds_never_fire() -> None:
    recent = np.r_[np.full(17, np.nan), [500.0, 500.0, 500.0]]
    assert not detect_burst(recent, capacity_rps=10.0).replan


def test_a_falling_load_does_not_fire() -> None:
    assert not detect_burst(np.linspace(95.0, 40.0, 20), capacity_rps=100.0).replan
