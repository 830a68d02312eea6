"""Synthetic per-second series for the forecasting tests (no ../shared/data needed)."""

from __future__ import annotations

import numpy as np

DAY_S = 86400


def poisson_series(seconds: int, rate_rps: float, seed: int = 0) -> np.ndarray:
    """Stationary Poisson arrivals: the noisy series with a constant rate."""
    return np.random.default_rng(seed).poisson(rate_rps, seconds).astype(np.float64)


def seasonal_series(seconds: int, period_s: int = 3600, base_rps: float = 60.0, amplitude_rps: float = 30.0, seed: int = 0) -> np.ndarray:
    """A smooth cycle of period ``period_s`` plus Poisson noise."""
    t = np.arange(seconds)
    rate = base_rps + amplitude_rps * np.sin(2 * np.pi * t / period_s)
    return np.random.default_rng(seed).poisson(rate).astype(np.float64)


def bursty_series(seconds: int, seed: int = 0) -> np.ndarray:
    """Poisson at 50 rps with a 4x burst of 5 minutes every 30 minutes (the Twitter trace's shape)."""
    t = np.arange(seconds)
    rate = np.where((t % 1800) < 300, 200.0, 50.0)
    return np.random.default_rng(seed).poisson(rate).astype(np.float64)


def with_gaps(series: np.ndarray, every_s: int = DAY_S // 4, gap_s: int = 1740) -> np.ndarray:
    """Zero blocks (collection gaps) of ``gap_s`` every ``every_s`` seconds, like the Twitter trace."""
    out = series.copy()
    for start in range(every_s - gap_s, out.size, every_s):
        out[start : start + gap_s] = 0
    return out
