"""A capacity near the server's ceiling is re-measured where a load step sees the queue settle."""

from __future__ import annotations

import math

import pytest

from infadapter.loadgen import LoadReport, RequestRecord, summarize
from infadapter.serving.search import (
    RateStep,
    ceiling_steps,
    most_answered_rps,
    saturation_of,
    search_capacity,
    steady_limit_rps,
    steady_step,
    throughput_ceiling,
)


def _server(slo_until_rps: float, ceiling_rps: float, seconds: int = 4):  # type: ignore[no-untyped-def]
    """Keeps the 200-ms SLO up to ``slo_until_rps`` (a short step's verdict, however near the ceiling) and answers at
    most ``ceiling_rps``: request ``i`` at rate ``r`` is answered at ``max(i / r, i / ceiling)`` + 120 ms (+ 300 past it)."""
    offered: list[float] = []

    def measure(rate_rps: float) -> LoadReport:
        offered.append(rate_rps)
        extra = 120.0 + (300.0 if rate_rps > slo_until_rps else 0.0)
        n = int(rate_rps * seconds)
        records = [RequestRecord(i / rate_rps, (max(i / rate_rps, i / ceiling_rps) - i / rate_rps) * 1000.0 + extra, True) for i in range(n)]
        return summarize(records, slo_ms=200.0, duration_s=float(seconds))

    return measure, offered


def test_the_steady_limit_follows_the_relaxation_time_of_the_queue() -> None:
    assert steady_limit_rps(146.0, 6.0) / 146.0 == pytest.approx(0.886, abs=0.001)
    assert steady_limit_rps(44.0, 6.0) / 44.0 == pytest.approx(0.798, abs=0.001)
    assert steady_limit_rps(4.8, 6.0) / 4.8 == pytest.approx(0.459, abs=0.001)
    assert steady_limit_rps(146.0, 60.0) / 146.0 > 0.96  # a longer step judges a rate nearer the ceiling
    assert steady_limit_rps(0.4, 6.0) == 0.0  # fewer requests a step than relaxation times: no rate is judged


def test_the_ceiling_is_what_the_heaviest_overloaded_step_answered_not_the_most_any_did() -> None:
    # a server answering a little less the harder it is pushed, as ResNet-50's did (63.5 rps at 1.3x, 62.3 at 2x)
    at_65, _ = _server(slo_until_rps=40.0, ceiling_rps=63.5)
    at_100, _ = _server(slo_until_rps=40.0, ceiling_rps=62.3)
    at_80, _ = _server(slo_until_rps=40.0, ceiling_rps=63.2)
    steps = [RateStep(40.0, True, at_65(40.0)), RateStep(65.0, False, at_65(65.0)), RateStep(100.0, False, at_100(100.0)), RateStep(80.0, False, at_80(80.0))]
    heaviest = steps[2].report.completed_rps
    assert throughput_ceiling(steps) == saturation_of(steps) == heaviest
    most = most_answered_rps(steps)
    assert most is not None and most > heaviest  # the maximum, the ceiling before, read 1.9 % high
    assert heaviest == pytest.approx(62.3 * (1 - 0.42 / 4), rel=0.02)  # less the answers pushed past the step's end


def test_without_an_overloaded_step_the_saturation_is_the_most_answered_a_lower_bound() -> None:
    measure, _ = _server(slo_until_rps=100.0, ceiling_rps=50.0)
    kept_up = [RateStep(20.0, True, measure(20.0)), RateStep(30.0, True, measure(30.0))]
    assert throughput_ceiling(kept_up) is None
    assert saturation_of(kept_up) == most_answered_rps(kept_up) == kept_up[1].report.completed_rps
    assert saturation_of([]) is None


def test_a_capacity_at_the_ceiling_is_measured_again_at_the_steady_limit() -> None:
    measure, offered = _server(slo_until_rps=100.0, ceiling_rps=50.0)
    capacity, _, steps = search_capacity(measure, 48.0, 99.0, max_steps=8, tolerance=0.05)
    (ceiling,) = ceiling_steps(measure, capacity, steps, 99.0)
    steps.append(ceiling)
    assert not ceiling.passed
    ceiling_rps = throughput_ceiling(steps)
    assert ceiling_rps is not None and capacity >= 0.97 * ceiling_rps  # a 4-s step passed a rate at the ceiling
    before = len(offered)
    result = steady_step(measure, capacity, steps, 4.0, 99.0)
    assert result is not None
    steady, best, added = result
    assert steady == pytest.approx(steady_limit_rps(ceiling_rps, 4.0), abs=0.01) and steady < 0.9 * ceiling_rps
    assert best is added[-1] and best.passed and offered[before:] == [steady]


def test_nothing_is_measured_within_the_limit_or_without_a_measured_ceiling() -> None:
    measure, offered = _server(slo_until_rps=10.0, ceiling_rps=15.0)
    within = [RateStep(7.0, True, measure(7.0)), RateStep(20.0, False, measure(20.0))]
    ceiling = throughput_ceiling(within)  # 20 rps sent, ~14 answered: the ceiling is known ...
    assert ceiling is not None and 7.0 < steady_limit_rps(ceiling, 4.0) < 10.0
    assert steady_step(measure, 7.0, within, 4.0, 99.0) is None  # ... and 7 rps is within its limit
    kept_up, _ = _server(slo_until_rps=100.0, ceiling_rps=50.0)
    answered = [RateStep(48.0, True, kept_up(48.0))]  # 3 % unanswered at its end: the last 120 ms' requests
    assert throughput_ceiling(answered) is None and steady_step(kept_up, 48.0, answered, 4.0, 99.0) is None
    assert offered == [7.0, 20.0]


def test_a_passing_step_already_near_the_limit_counts_without_a_new_one() -> None:
    measure, offered = _server(slo_until_rps=100.0, ceiling_rps=50.0)
    limit = steady_limit_rps(50.0, 4.0)
    near = RateStep(round(0.95 * limit, 2), True, measure(0.95 * limit))
    steps = [near, RateStep(49.0, True, measure(49.0)), RateStep(100.0, False, measure(100.0))]
    result = steady_step(measure, 49.0, steps, 4.0, 99.0)
    assert result is not None and result[0] == near.rate_rps and result[1] is near and result[2] == []
    assert len(offered) == 3


def test_when_no_rate_up_to_the_limit_passes_the_capacity_is_zero() -> None:
    calls: list[float] = []
    good = summarize([RequestRecord(i / 40, 10.0, True) for i in range(160)], slo_ms=200.0, duration_s=4.0)
    overloaded = summarize([RequestRecord(i / 100, 10.0 if i < 160 else math.inf, i < 160) for i in range(400)], slo_ms=200.0, duration_s=4.0)

    def failing(rate_rps: float) -> LoadReport:
        calls.append(rate_rps)
        return summarize([RequestRecord(i / rate_rps, 500.0, True) for i in range(int(4 * rate_rps))], slo_ms=200.0, duration_s=4.0)

    steps = [RateStep(40.0, True, good), RateStep(100.0, False, overloaded)]
    result = steady_step(failing, 40.0, steps, 4.0, 99.0)
    assert result is not None
    assert result[0] == 0.0 and result[1] is None and len(calls) == 2 and calls[1] == pytest.approx(0.9 * calls[0], abs=0.01)
