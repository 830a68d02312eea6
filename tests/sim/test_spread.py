"""The three-figure server model: a profile point's median, tail and saturation are what the simulator serves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from infadapter.profiles import Profile, ProfilePoint
from infadapter.sim.service import ServiceModel, ServiceTime, is_ceiling, queue_sojourns, serve
from infadapter.sim.spread import Spread, fit_server


def _profile(p50_ms: float | None, p99_ms: float, saturation: float) -> Profile:
    return Profile(750.0, {"m": (ProfilePoint(1.0, 4.0, 0, p99_ms, saturation, p50_ms=p50_ms), ProfilePoint(2.0, 9.0))})


def _model(profile: Profile, seed: int = 0) -> ServiceModel:
    return ServiceModel(profile, queue_factor=math.inf, seed=seed)  # Triton's queue: nothing dropped


def _latencies(size: ServiceTime, rate_rps: float, n: int = 60_000, seed: int = 7) -> np.ndarray:
    arrivals = np.cumsum(np.random.default_rng(seed).exponential(1.0 / rate_rps, n))
    latency, _ = serve(arrivals, size, None, np.random.default_rng(seed + 1))
    out: np.ndarray = latency[n // 10 :]
    return out


@pytest.mark.parametrize(("p50_ms", "p99_ms", "saturation"), [(250.0, 700.0, 8.0), (180.0, 640.0, 12.0), (250.0, 700.0, 4.0)])
def test_at_the_capacity_the_measured_median_and_tail_come_back(p50_ms: float, p99_ms: float, saturation: float) -> None:
    size = _model(_profile(p50_ms, p99_ms, saturation)).size("m", 1.0)
    assert size.spread is not None and size.capacity_rps == 4.0
    if saturation > 4.0:  # measured past the capacity: the server's ceiling, served exactly
        assert size.saturation_rps == pytest.approx(saturation)
    else:  # reached at the capacity only: a lower bound, which the tail's fit may raise
        assert size.saturation_rps >= saturation - 1e-9
    latency = _latencies(size, 4.0)
    assert np.median(latency) * 1000 == pytest.approx(p50_ms, rel=0.05)
    assert np.percentile(latency, 99) * 1000 == pytest.approx(p99_ms, rel=0.08)


def test_the_saturation_measured_is_the_throughput_served() -> None:
    size = _model(_profile(250.0, 700.0, 8.0)).size("m", 1.0)
    assert size.spread is not None and size.spread.sigma > 0  # the case where the saturation fixes the service time
    arrivals = np.sort(np.random.default_rng(1).random(1200) * 100.0)  # 12 rps for 100 s
    latency, _ = serve(arrivals, size, None, np.random.default_rng(2))
    queue_end = arrivals + latency - size.spread.draw(np.random.default_rng(2), arrivals.size)  # leave the delay out
    assert (queue_end < 100.0).sum() / 100.0 == pytest.approx(8.0, rel=0.02)


def test_a_ceiling_whose_queue_overshoots_the_measured_tail_is_kept() -> None:
    # 5 rps at most and 4 rps offered: a settled queue is longer than a profile's short step measured
    size = _model(_profile(250.0, 700.0, 5.0)).size("m", 1.0)
    assert size.saturation_rps == pytest.approx(5.0) and size.spread is None  # its queue alone passes the median
    latency = _latencies(size, 4.0)
    assert np.percentile(latency, 99) > 0.7
    overload = np.sort(np.random.default_rng(1).random(1200) * 100.0)  # 12 rps for 100 s
    served, _ = serve(overload, size, None, np.random.default_rng(2))
    assert ((overload + served) < 100.0).sum() / 100.0 == pytest.approx(5.0, rel=0.02)


def test_a_saturation_answered_under_a_larger_offered_load_is_a_ceiling_even_near_the_capacity() -> None:
    # ResNet-50 at 1.5 cores as measured: 91.68 rps within the SLO, 93.5 answered of 183.4 offered
    near = ProfilePoint(1.5, 91.68, 0, 154.1, 93.5, p50_ms=56.8)
    measured = ProfilePoint(1.5, 91.68, 0, 154.1, 93.5, p50_ms=56.8, max_offered_rps=183.4)
    kept_up = ProfilePoint(1.5, 91.68, 0, 154.1, 93.5, p50_ms=56.8, max_offered_rps=93.0)  # answered as sent
    assert not is_ceiling(near) and is_ceiling(measured) and not is_ceiling(kept_up)
    assert is_ceiling(ProfilePoint(1.0, 4.0, 0, 700.0, 8.0, p50_ms=250.0))  # offered unknown, past the capacity
    sizes = [_model(Profile(200.0, {"m": (p,)})).size("m", 1.5) for p in (near, measured)]
    assert sizes[1].saturation_rps == pytest.approx(93.5)
    assert sizes[0].saturation_rps > 100.0  # the tail's fit, faster than anything the server answered
    burst = np.sort(np.random.default_rng(3).random(2000) * 20.0)  # 100 rps for 20 s, past the ceiling
    late = [float(np.mean(serve(burst, size, None, np.random.default_rng(4))[0] > 0.2)) for size in sizes]
    assert late[1] > 0.5 and late[0] < 0.1  # the ceiling's backlog makes most of the burst late


def test_light_load_is_faster_than_capacity_and_overload_is_late() -> None:
    size = _model(_profile(250.0, 700.0, 8.0)).size("m", 1.0)
    light, heavy = _latencies(size, 1.0), _latencies(size, 10.0, n=6000)
    assert np.median(light) < 0.25 and np.percentile(light, 99) < 0.7
    assert np.percentile(heavy, 99) > 2.0  # past the saturation the queue grows without end


def test_a_point_without_its_median_keeps_the_one_figure_model() -> None:
    with_p50 = _model(_profile(250.0, 700.0, 8.0))
    without = _model(_profile(None, 700.0, 8.0))
    assert with_p50.size("m", 1.0).spread is not None
    assert without.size("m", 1.0).spread is None
    assert with_p50.size("m", 2.0).spread is None  # a size measured with its capacity only
    assert without.size("m", 1.0) == _model(Profile(750.0, {"m": (ProfilePoint(1.0, 4.0), ProfilePoint(2.0, 9.0))})).size("m", 1.0)


def test_a_queue_that_alone_reaches_the_median_gets_no_spread() -> None:
    assert fit_server(lambda d: queue_sojourns(4.0, 1, d), 0.2, 0.15, 0.6, 99.0) is None


def test_draws_are_seeded_per_instance_and_slow_down_with_the_cpu() -> None:
    model = _model(_profile(250.0, 700.0, 8.0), seed=3)
    assert np.array_equal(model.rng_for(5).random(4), _model(_profile(250.0, 700.0, 8.0), seed=3).rng_for(5).random(4))
    assert not np.array_equal(model.rng_for(5).random(4), model.rng_for(6).random(4))
    size = model.size("m", 1.0)
    half = size.at_speed(0.5)
    assert half.spread == Spread(size.spread.mu + np.log(2.0), size.spread.sigma) if size.spread else False
    assert half.service_s == pytest.approx(2 * size.service_s)
    fast = size.at_speed(1.25)  # a host faster than its average (Machine.jitter): each request takes less
    assert fast.service_s == pytest.approx(size.service_s / 1.25)
    assert fast.spread == Spread(size.spread.mu - np.log(1.25), size.spread.sigma) if size.spread else False
    assert size.at_speed(1.0) is size
