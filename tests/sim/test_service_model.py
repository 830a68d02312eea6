"""The serving model reproduces the profile: at the capacity the SLO percentile holds, 20 % above it does not."""

from __future__ import annotations

import heapq

import numpy as np
import pytest

from infadapter.profiles import Profile, ProfilePoint
from infadapter.sim.service import ServiceModel, ServiceTime, fifo_starts, serve

PROFILE = Profile(
    750.0,
    {
        "small": (ProfilePoint(1.0, 20.0), ProfilePoint(2.0, 43.0), ProfilePoint(4.0, 90.0)),
        "big": (ProfilePoint(2.0, 5.0), ProfilePoint(4.0, 15.0), ProfilePoint(8.0, 27.0)),
    },
)


def _p99_ms(size: ServiceTime, rate_rps: float, seeds: range, n: int = 60_000) -> float:
    values = []
    for seed in seeds:
        arrivals = np.cumsum(np.random.default_rng(seed).exponential(1.0 / rate_rps, n))
        latency, _ = serve(arrivals, size)
        latency = np.where(np.isnan(latency), 1e9, latency)[n // 10 :]
        values.append(float(np.quantile(latency, 0.99)) * 1000.0)
    return float(np.median(values))


@pytest.mark.parametrize(("variant", "cores"), [("small", 2.0), ("small", 4.0), ("big", 4.0), ("big", 8.0)])
def test_at_capacity_the_slo_percentile_holds_and_above_it_does_not(variant: str, cores: float) -> None:
    model = ServiceModel(PROFILE)
    size = model.size(variant, cores)
    capacity = PROFILE.capacity_rps(variant, cores)
    assert size.capacity_rps == capacity
    assert size.servers == round(cores)
    at_capacity = _p99_ms(size, capacity, range(101, 106))
    assert 0.8 * 750 <= at_capacity <= 1.15 * 750
    assert _p99_ms(size, 1.2 * capacity, range(201, 204)) > 750


def test_vectorised_fifo_equals_a_heap_simulation_of_m_d_c() -> None:
    rng = np.random.default_rng(3)
    arrivals = np.sort(rng.random(3000) * 20.0)
    for servers, service_s in ((1, 0.005), (3, 0.02), (7, 0.05)):
        free = [0.0] * servers
        expected = []
        for t in arrivals:
            f = heapq.heappop(free)
            start = max(t, f)
            expected.append(start)
            heapq.heappush(free, start + service_s)
        assert np.allclose(fifo_starts(arrivals, servers, service_s, np.zeros(servers)), expected)


def test_queue_cap_drops_under_overload_and_bounds_the_wait() -> None:
    size = ServiceTime(servers=2, service_s=0.1, capacity_rps=18.0, queue_cap_s=0.5)
    arrivals = np.sort(np.random.default_rng(0).random(4000) * 100.0)  # 40 rps on a 20-rps server
    latency, free = serve(arrivals, size)
    dropped = np.isnan(latency)
    assert 0.4 < dropped.mean() < 0.6
    assert np.nanmax(latency) <= 0.5 + 0.1 + 1e-9
    assert free.shape == (2,)


def test_no_drops_below_capacity_and_the_backlog_carries_over() -> None:
    size = ServiceTime(servers=1, service_s=0.1, capacity_rps=8.0, queue_cap_s=10.0)
    latency, free = serve(np.array([0.0, 0.0, 0.0]), size)
    assert latency.tolist() == pytest.approx([0.1, 0.2, 0.3])
    latency, _ = serve(np.array([0.1]), size, free)
    assert latency.tolist() == pytest.approx([0.3])
