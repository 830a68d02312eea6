"""A machine shared with other processes: the servers' speed, and what it does to the requests."""

from __future__ import annotations

import numpy as np
import pytest

from infadapter.profiles import Profile, ProfilePoint
from infadapter.sim.machine import Machine, busy_cores, speeds
from infadapter.sim.run import simulate
from infadapter.spec import parse_spec

SPEC = parse_spec(
    {
        "modelName": "m",
        "variants": [{"name": "fast", "accuracy": 0.70, "loadTimeSeconds": 2.0}],
        "slo": {"latencyMs": 200},
        "budget": {"cpu": 2},
        "resources": {"minCpu": 0.5, "maxCpu": 2, "cpuStep": 0.5},
    }
)
PROFILE = Profile(200.0, {"fast": tuple(ProfilePoint(c, 20.0 * c) for c in (0.5, 1.0, 1.5, 2.0))})


def _static(trace: np.ndarray, machine: Machine | None, seed: int = 0) -> dict[str, float]:
    return simulate(SPEC, PROFILE, trace, ["static:fast@2"], seed=seed, machine=machine)["static:fast@2"].summary


def test_busy_cores_follow_the_routed_load_and_speed_what_the_others_leave() -> None:
    trace = np.full(60, 30.0)  # 30 of the 40 rps two cores serve: 1.5 cores busy
    run = simulate(SPEC, PROFILE, trace, ["static:fast@2"], seed=0)["static:fast@2"]
    assert busy_cores(run.timeline, PROFILE, trace) == pytest.approx(np.full(60, 1.5))
    assert speeds(run.timeline, PROFILE, trace, Machine(cores=2.0, base_cpu=0.5)) == [(0.0, 1.0)]  # 1.5 left: enough
    slow = speeds(run.timeline, PROFILE, trace, Machine(cores=2.0, base_cpu=0.1, cpu_per_rps=0.03))  # 1.0 left
    assert slow == [(0.0, 0.66)]  # floor(1.0 / 1.5, 0.01)


def test_a_machine_with_room_changes_nothing_and_a_crowded_one_costs_violations() -> None:
    trace = np.full(120, 36.0)  # 90 % of the two cores' capacity
    alone = _static(trace, None)
    assert _static(trace, Machine(cores=16.0, base_cpu=1.0, cpu_per_rps=0.01)) == alone
    crowded = _static(trace, Machine(cores=2.0, base_cpu=0.1, cpu_per_rps=0.02))  # 0.82 taken, 1.8 busy: speed 0.65
    assert crowded["avg_cpu"] == alone["avg_cpu"]  # the cost is the quota, not what the servers got
    assert crowded["slo_violation_ratio"] > alone["slo_violation_ratio"] + 0.05
    assert crowded["p99_latency_ms"] > alone["p99_latency_ms"]
