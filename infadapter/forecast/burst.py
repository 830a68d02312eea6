"""Short-horizon burst detection: should the planner re-plan now, between two ticks?

A tick every 30 s plus a minute-peak forecast can lag a burst by up to a tick; this check runs on
every new second of arrivals and is cheap (a few numpy reductions over the last ~20 s). It fires
when the recent rate already uses most of the provisioned capacity, or when its trend would
cross the capacity within ``lead_s`` (the time a re-plan takes to add capacity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from infadapter.forecast.base import as_series


@dataclass(frozen=True)
class BurstSignal:
    """The verdict, with the figures behind it (``suggested_rps`` is the load to plan for)."""

    replan: bool
    observed_rps: float
    projected_rps: float
    suggested_rps: float
    reason: str


def detect_burst(
    recent_rps: npt.ArrayLike,
    capacity_rps: float,
    *,
    window_s: int = 5,
    trend_s: int = 20,
    lead_s: float = 10.0,
    utilisation_ratio: float = 0.9,
    headroom_ratio: float = 0.15,
    min_rps: float = 1.0,
) -> BurstSignal:
    """Burst check on the newest seconds of arrivals (oldest first, NaN = unknown).

    * ``observed_rps``: mean of the last ``window_s`` observed seconds;
    * ``projected_rps``: the least-squares trend over the last ``trend_s`` seconds, ``lead_s`` ahead
      (only upward trends count);
    * ``replan`` when ``observed >= utilisation_ratio * capacity`` or ``projected >= capacity``;
    * ``suggested_rps``: ``max(projected, peak of the window) * (1 + headroom_ratio)``.
    Nothing fires on fewer than ``window_s`` observed seconds or below ``min_rps``.
    """
    series = as_series(recent_rps, "recent_rps")
    observed = series[~np.isnan(series)]
    if observed.size < window_s:
        return BurstSignal(False, 0.0, 0.0, 0.0, f"fewer than {window_s} observed seconds")
    now_rps = float(observed[-window_s:].mean())
    recent = observed[-trend_s:]
    slope = 0.0
    if recent.size >= 2 * window_s:
        t = np.arange(recent.size, dtype=np.float64)
        slope = max(0.0, float(np.polyfit(t, recent, 1)[0]))
    projected = now_rps + slope * (lead_s + window_s / 2.0)
    peak = float(observed[-window_s:].max())
    suggested = max(projected, peak) * (1.0 + headroom_ratio)
    capacity = max(float(capacity_rps), 0.0)
    if now_rps < min_rps:
        return BurstSignal(False, now_rps, projected, suggested, "idle")
    if now_rps >= utilisation_ratio * capacity:
        reason = f"load {now_rps:.0f} rps >= {utilisation_ratio:.0%} of capacity {capacity:.0f} rps"
        return BurstSignal(True, now_rps, projected, suggested, reason)
    if projected >= capacity:
        reason = f"rising {slope:.1f} rps/s: {projected:.0f} rps in {lead_s:.0f} s >= capacity {capacity:.0f} rps"
        return BurstSignal(True, now_rps, projected, suggested, reason)
    return BurstSignal(False, now_rps, projected, suggested, "within capacity")
