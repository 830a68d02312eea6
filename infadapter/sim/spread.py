"""A server's latency beyond its queue, fitted to a measured point's median, tail and saturation.

The M/D/c instance of :mod:`infadapter.sim.service` has one parameter fitted to one figure (the tail at the
capacity equals the SLO), so all of that tail is queueing: its service time comes out too long — it
saturates early and drains a backlog slowly — and below the capacity no request is ever late. Real servers
are the other way round (measured on this machine: fewer late requests in a burst's backlog, more at
moderate load). A point measured with its median and tail at the capacity and its saturation (what
``infadapter profile`` records) fixes three figures instead:

* the service time, ``c / saturation`` where the saturation is the server's real ceiling (a step offered
  more than it answered: :func:`~infadapter.sim.service.is_ceiling`; a faster simulated queue hides a burst's
  backlog); otherwise the saturation is a lower bound,
  and the service time is never longer than the one-figure fit, which already gives the tail;
* a delay per request that holds no worker (request handling outside the model's execution, the scheduler,
  the CPU quota's periods) — lognormal, its median and spread fitted so that queue + delay has the measured
  median and tail at the capacity. Where even a constant delay overshoots the tail, the queue's own spread
  is too wide: the saturation measured was a lower bound, and the service time is shortened until queue +
  constant delay has both (only where the saturation is a lower bound; a ceiling stays, and the tail the
  queue reaches beyond the measured one is kept: a profile's short steps end before such a queue settles).

Both fits are deterministic (fixed seed, common random numbers) and monotone, so bisection finds them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

SPREAD_SAMPLES = 40_000
SPREAD_SEED = 20230508
MAX_SIGMA = 3.0
ITERATIONS = 40


@dataclass(frozen=True)
class Spread:
    """The extra delay: ``exp(mu + sigma * N(0, 1))`` seconds per request."""

    mu: float
    sigma: float

    def slower(self, speed: float) -> Spread:
        """The delay when the server gets ``speed`` of its CPU (it is CPU work too; above 1: a host faster than on average)."""
        return self if speed == 1.0 else Spread(self.mu - math.log(speed), self.sigma)

    def draw(self, rng: np.random.Generator, n: int) -> FloatArray:
        out: FloatArray = np.exp(self.mu + self.sigma * rng.standard_normal(n))
        return out


def fit_spread(sojourns: FloatArray, p50_s: float, tail_s: float, percentile: float, seed: int = SPREAD_SEED) -> Spread | None:
    """The delay whose sum with ``sojourns`` has median ``p50_s`` and ``percentile`` ``tail_s``; None when the
    queue alone already reaches the median (nothing is left to add)."""
    if not 0.0 < p50_s <= tail_s or float(np.median(sojourns)) >= p50_s:
        return None
    z = np.random.default_rng(seed + 1).standard_normal(sojourns.size)

    def mu_for(sigma: float) -> float:
        low, high = math.log(p50_s) - 30.0, math.log(p50_s)  # the median of the sum rises with mu
        for _ in range(ITERATIONS):
            mid = (low + high) / 2.0
            if float(np.median(sojourns + np.exp(mid + sigma * z))) > p50_s:
                high = mid
            else:
                low = mid
        return (low + high) / 2.0

    def tail(sigma: float) -> float:
        return float(np.percentile(sojourns + np.exp(mu_for(sigma) + sigma * z), percentile))

    if tail(0.0) >= tail_s:
        return Spread(mu_for(0.0), 0.0)
    if tail(MAX_SIGMA) <= tail_s:
        return Spread(mu_for(MAX_SIGMA), MAX_SIGMA)
    low, high = 0.0, MAX_SIGMA  # with the median held, the tail rises with sigma
    for _ in range(ITERATIONS // 2):
        mid = (low + high) / 2.0
        if tail(mid) > tail_s:
            high = mid
        else:
            low = mid
    sigma = (low + high) / 2.0
    return Spread(mu_for(sigma), sigma)


def fit_server(
    sojourns_for: Callable[[float], FloatArray], service_s: float, p50_s: float, tail_s: float, percentile: float, *, shorten: bool = True
) -> tuple[float, Spread] | None:
    """(service time, spread) so that queue + delay at the capacity has median ``p50_s`` and tail ``tail_s``;
    ``sojourns_for(d)``: the queue's sojourns with service time ``d`` there. None: the queue alone reaches the
    median. ``shorten=False``: ``service_s`` is the server's measured ceiling and stays; a tail the queue
    alone overshoots is then kept (a profile's short steps end before a queue that busy settles)."""
    sojourns = sojourns_for(service_s)
    spread = fit_spread(sojourns, p50_s, tail_s, percentile)
    if spread is None or spread.sigma > 0.0 or not shorten:
        return None if spread is None else (service_s, spread)

    def gap(d: float) -> tuple[float, float]:  # (tail - target with the constant delay that holds the median, median)
        q = sojourns_for(d)
        median = float(np.median(q))
        return float(np.percentile(q, percentile)) - median + p50_s - tail_s, median

    if gap(service_s)[0] <= 0.0:
        return service_s, spread
    low, high = 0.0, service_s  # the queue's spread shrinks with the service time
    for _ in range(ITERATIONS // 2):
        mid = (low + high) / 2.0
        if gap(mid)[0] > 0.0:
            high = mid
        else:
            low = mid
    median = gap(low)[1] if low > 0.0 else 0.0
    if low <= 0.0 or median >= p50_s:
        return None
    return low, Spread(math.log(p50_s - median), 0.0)
