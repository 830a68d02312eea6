"""A machine shared with other processes: the servers' speed, and what it does to the requests."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from infadapter.control import Latencies
from infadapter.profiles import Profile, ProfilePoint
from infadapter.sim.engine import SimInstance, Timeline, serve_requests
from infadapter.sim.machine import JITTER_BLOCK, SAMPLES_PER_S, Machine, busy_cores, busy_serving, serve_on, speeds
from infadapter.sim.run import simulate
from infadapter.sim.service import ServiceModel
from infadapter.sim.traffic import arrival_times
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


def _draining() -> tuple[Timeline, np.ndarray, np.ndarray]:
    """``fast`` at 0.5 cores (10 rps) takes 30 rps for 10 s and leaves with ~200 queued; 2 cores serve on."""
    timeline = Timeline(
        instances={
            0: SimInstance(0, "fast", 0.7, [(0.0, 0.5)], 0.0, 0.0, 10.0),
            1: SimInstance(1, "fast", 0.7, [(0.0, 2.0)], 10.0, 10.0),
        },
        splits=[(0.0, {"fast": 1.0})],
    )
    trace = np.full(50, 30.0)
    return timeline, trace, arrival_times(trace, np.random.default_rng(0))


def test_what_the_servers_were_busy_with_includes_a_backlog_drained_after_leaving() -> None:
    timeline, trace, times = _draining()
    served = serve_requests(timeline, times, ServiceModel(PROFILE, queue_factor=math.inf))
    leaver = served.instance == 0
    drained_at = float(np.max(times[leaver] + served.queue_s[leaver]))
    assert drained_at > 12.0  # it left at 10 s with a queue
    busy = busy_serving(timeline, times, served, trace.size)
    t = (np.arange(busy.size) + 0.5) / SAMPLES_PER_S
    assert busy[t < 10].mean() == pytest.approx(0.5, abs=0.02)  # the small server, saturated
    draining, after = busy[(t > 10.5) & (t < drained_at - 0.5)].mean(), busy[t > drained_at + 1].mean()
    assert draining - after == pytest.approx(0.5, abs=0.15)  # it still works through its queue after t = 10
    assert busy_cores(timeline, PROFILE, trace)[11:] == pytest.approx(np.full(39, 1.5))  # the estimate sees only the routed load
    assert after == pytest.approx(30.0 * ServiceModel(PROFILE, queue_factor=math.inf).size("fast", 2.0).service_s, rel=0.15)  # utilisation x 2


def test_serving_on_a_machine_slows_the_servers_while_a_leaver_drains() -> None:
    timeline, trace, times = _draining()
    model, machine = ServiceModel(PROFILE, queue_factor=math.inf), Machine(cores=1.8)
    estimated = serve_requests(timeline, times, model, speeds(timeline, PROFILE, trace, machine))  # one pass
    measured = serve_on(machine, timeline, times, model, PROFILE, trace)
    leaver = measured.instance == 0
    drained_at = float(np.max(times[leaver] + measured.queue_s[leaver]))
    window = (times >= 10.5) & (times < drained_at) & ~leaver
    assert np.nanmean(measured.latency_s[window]) > 1.2 * np.nanmean(estimated.latency_s[window])
    roomy = serve_on(Machine(cores=16.0), timeline, times, model, PROFILE, trace)
    assert np.array_equal(roomy.latency_s, serve_requests(timeline, times, model).latency_s, equal_nan=True)


#: a host that runs 30 % slow for 5 s, then 30 % fast for 5 s (mean 1), in 0.25-s windows
SWINGING = (0.7,) * 20 + (1.3,) * 20


def test_a_host_that_swings_is_replayed_in_seeded_blocks_of_consecutive_windows() -> None:
    machine = Machine(cores=16.0, jitter=tuple(float(k) + 1.0 for k in range(100)), seed=4)
    drawn = machine.host_speeds(130)
    assert drawn.size == 130 and np.array_equal(drawn, machine.host_speeds(130))  # one host for every pass
    blocks = drawn[: (130 // JITTER_BLOCK) * JITTER_BLOCK].reshape(-1, JITTER_BLOCK)
    assert (np.diff(blocks, axis=1) == 1.0).all()  # each block: consecutive windows as measured
    assert not np.array_equal(drawn, Machine(cores=16.0, jitter=machine.jitter, seed=5).host_speeds(130))
    assert np.array_equal(Machine(cores=16.0).host_speeds(3), np.ones(3))
    with pytest.raises(ValueError, match=r"Machine\.jitter"):
        Machine(cores=2.0, jitter=(1.0, 0.0))


def test_speeds_follow_the_host_at_four_steps_a_second_faster_than_its_average_too() -> None:
    trace = np.full(60, 30.0)
    run = simulate(SPEC, PROFILE, trace, ["static:fast@2"], seed=0)["static:fast@2"]
    steady = speeds(run.timeline, PROFILE, trace, Machine(cores=16.0))
    swinging = speeds(run.timeline, PROFILE, trace, Machine(cores=16.0, jitter=SWINGING))
    assert steady == [(0.0, 1.0)]
    assert {s for _, s in swinging} == {0.7, 1.3}
    assert all(t * SAMPLES_PER_S == pytest.approx(round(t * SAMPLES_PER_S)) for t, _ in swinging)
    assert min(b - a for (a, _), (b, _) in itertools.pairwise(swinging)) == pytest.approx(5.0)  # whole stretches


def test_a_swinging_host_makes_late_requests_below_capacity_and_none_far_below() -> None:
    near = np.full(180, 34.0)  # 85 % of the two cores' 40 rps: a 30 % slow stretch overloads them
    steady = _static(near, Machine(cores=16.0))
    swinging = _static(near, Machine(cores=16.0, jitter=SWINGING))
    assert steady["slo_violation_ratio"] < 0.002
    assert swinging["slo_violation_ratio"] > steady["slo_violation_ratio"] + 0.02
    assert swinging["p99_latency_ms"] > 2 * steady["p99_latency_ms"]
    far = np.full(180, 16.0)  # 40 %: even 30 % slow, the servers keep up
    far_swinging = _static(far, Machine(cores=16.0, jitter=SWINGING))
    assert far_swinging["avg_cpu"] == _static(far, Machine(cores=16.0))["avg_cpu"] > 0  # the servers ran
    assert far_swinging["slo_violation_ratio"] < 0.002


def test_a_host_slower_than_when_profiled_scales_every_speed_and_makes_a_near_load_late() -> None:
    trace = np.full(120, 34.0)  # 85 % of the two cores' 40 rps as profiled
    run = simulate(SPEC, PROFILE, trace, ["static:fast@2"], seed=0)["static:fast@2"]
    assert speeds(run.timeline, PROFILE, trace, Machine(cores=16.0, speed=0.8)) == [(0.0, 0.8)]
    crowded = speeds(run.timeline, PROFILE, trace, Machine(cores=2.0, base_cpu=0.1, cpu_per_rps=0.03, speed=1.1))
    assert crowded == [(0.0, 0.56)]  # the others leave 0.88 cores to 1.7 busy (0.518), then the host: x 1.1, floored
    as_profiled = _static(trace, Machine(cores=16.0))
    slower = _static(trace, Machine(cores=16.0, speed=0.7))  # 30 % slower: the 34 rps now past the SLO's capacity
    assert as_profiled["slo_violation_ratio"] < 0.002 and as_profiled["avg_cpu"] == slower["avg_cpu"] > 0
    assert slower["slo_violation_ratio"] > 0.05 and slower["p99_latency_ms"] > 2 * as_profiled["p99_latency_ms"]
    past = np.full(120, 46.0)  # 115 % of the profiled capacity: late as profiled, in time on a host 25 % faster
    assert _static(past, Machine(cores=16.0))["slo_violation_ratio"] > 0.01
    assert _static(past, Machine(cores=16.0, speed=1.25))["slo_violation_ratio"] < 0.001
    with pytest.raises(ValueError, match=r"Machine\.speed"):
        Machine(cores=2.0, speed=0.0)


def test_a_host_slow_for_some_seconds_slows_only_those_seconds_and_late_requests_follow_them() -> None:
    """``Machine.speed_by_second``: the host's speed as measured each second of the window, then ``speed``."""
    trace = np.full(120, 34.0)  # 85 % of the two cores' 40 rps as profiled
    run = simulate(SPEC, PROFILE, trace, ["static:fast@2"], seed=0)["static:fast@2"]
    slow_stretch = (1.0,) * 40 + (0.7,) * 20 + (1.0,) * 20  # 30 % slow from 40 s to 60 s; 80 s measured
    machine = Machine(cores=16.0, speed=1.1, speed_by_second=slow_stretch)
    assert speeds(run.timeline, PROFILE, trace, machine) == [(0.0, 1.0), (40.0, 0.7), (60.0, 1.0), (80.0, 1.1)]
    assert list(machine.speeds_by_second(82)[[0, 39, 40, 59, 60, 79, 80, 81]]) == [1.0, 1.0, 0.7, 0.7, 1.0, 1.0, 1.1, 1.1]
    steady = _static(trace, Machine(cores=16.0))
    stretched = _static(trace, Machine(cores=16.0, speed_by_second=slow_stretch))
    assert steady["slo_violation_ratio"] < 0.002 and stretched["avg_cpu"] == steady["avg_cpu"] > 0
    slow_throughout = _static(trace, Machine(cores=16.0, speed=0.7))
    # late requests in the 20 slow seconds and their backlog's drain, not in the 100 others
    assert steady["slo_violation_ratio"] + 0.01 < stretched["slo_violation_ratio"] < slow_throughout["slo_violation_ratio"] / 3
    with pytest.raises(ValueError, match=r"Machine\.speed_by_second"):
        Machine(cores=2.0, speed_by_second=(1.0, math.nan))


def test_a_server_starting_with_a_whole_core_slows_the_ones_serving_meanwhile() -> None:
    """The embedded runtime lets a starting server use a core while it loads its model (its start-up boost)."""
    timeline = Timeline(
        instances={
            0: SimInstance(0, "fast", 0.7, [(0.0, 1.5)], 0.0, 0.0),  # serving 27 of its 30 rps
            1: SimInstance(1, "fast", 0.7, [(10.0, 0.5)], 10.0, 13.0),  # asked for at 10 s, ready at 13 s
        },
        splits=[(0.0, {"fast": 1.0})],
    )
    trace = np.full(30, 27.0)
    times = arrival_times(trace, np.random.default_rng(1))
    model = ServiceModel(PROFILE, queue_factor=math.inf)
    plain, boosted = Machine(cores=2.0, base_cpu=0.5), Machine(cores=2.0, base_cpu=0.5, startup_cores=1.0)
    measured = Machine(cores=2.0, base_cpu=0.5, startup_cores=1.0, startup_cpu_s={"fast": 0.9})  # 0.9 s over 3 s
    machines = {"plain": plain, "boosted": boosted, "measured": measured}
    served = {name: serve_on(m, timeline, times, model, PROFILE, trace) for name, m in machines.items()}
    busy = {name: busy_serving(timeline, times, served[name], trace.size, m) for name, m in machines.items()}
    t = (np.arange(busy["plain"].size) + 0.5) / SAMPLES_PER_S
    starting = (t > 10.0) & (t < 13.0)
    assert np.all(busy["boosted"][starting] >= busy["plain"][starting] + 0.5 - 1e-9)  # 1 core, not 0.5 (and a slower server)
    assert np.array_equal(busy["boosted"][t < 10.0], busy["plain"][t < 10.0])  # nothing differs before the start
    window = (times >= 10.0) & (times < 14.0)
    late = {name: float(np.mean(s.latency_s[window] > 0.2)) for name, s in served.items()}
    assert late["plain"] < 0.02 and late["boosted"] > late["plain"] + 0.1  # 1.5 left: enough for both, then not
    # a start measured to take 0.9 CPU seconds takes them at its boost's whole core in the 0.9 s before it is ready
    # (12.1-13 s), none before: the seconds 11-12 and 12-13, then a quarter second inside that stretch
    start = timeline.instances[1]
    assert measured.starting(start, np.full(2, 0.5), np.array([11.5, 12.5]), 1.0) == pytest.approx([0.0, 0.9])
    assert measured.starting(start, np.array([0.5]), np.array([12.625]), 0.25) == pytest.approx([1.0])
    assert late["plain"] < late["measured"] < late["boosted"]  # a shorter squeeze than a core held the whole start
    with pytest.raises(ValueError, match="startup_cores"):
        Machine(cores=2.0, startup_cores=3.0)
    with pytest.raises(ValueError, match=r"startup_cpu_s\['fast'\]"):
        Machine(cores=2.0, startup_cpu_s={"fast": -1.0})


@pytest.mark.parametrize(("before", "after"), [(0.5, 2.0), (2.0, 0.5)])
def test_a_resized_server_serves_the_backlog_it_queued_before_at_its_new_size(before: float, after: float) -> None:
    """An in-place resize changes the cgroup's quota at once: the 200 requests queued when it comes are served at
    the new size's pace, not at the one they arrived at (which would take 200 / its throughput instead)."""
    model = ServiceModel(PROFILE, queue_factor=math.inf)
    old, new = model.size("fast", before).saturation_rps, model.size("fast", after).saturation_rps  # 20.7 and 51.5 rps
    timeline = Timeline(instances={0: SimInstance(0, "fast", 0.7, [(0.0, before), (10.0, after)], 0.0, 0.0)}, splits=[(0.0, {"fast": 1.0})])
    times = arrival_times(np.concatenate((np.full(10, old + 20.0), np.zeros(40))), np.random.default_rng(3))  # 20 rps too many
    served = serve_requests(timeline, times, model)
    done = times + served.latency_s
    assert np.all(np.isfinite(served.latency_s))
    backlog = int((done > 10.0).sum())
    assert 150 < backlog < 250
    assert done.max() - 10.0 == pytest.approx(backlog / new, rel=0.15)
    assert abs(done.max() - 10.0 - backlog / old) > 2.0  # the other reading differs by seconds


def test_a_new_server_serves_when_its_variant_was_measured_to_start_not_when_the_controller_planned() -> None:
    """The embedded runtime's servers answered 1.8-3.0 s after launch where the spec's load time plus the mode's
    start-up said 3.5 s: the controller still plans with its own figure, the simulated server is ready when a real one was."""
    spec = parse_spec({**SPEC.to_dict(), "variants": [{"name": "fast", "accuracy": 0.70, "loadTimeSeconds": 2.5}]})
    trace = np.concatenate((np.full(20, 5.0), np.zeros(40)))  # nothing runs at first; the controller starts a server
    latencies = Latencies(startup_s=1.0)
    planned = simulate(spec, PROFILE, trace, ["ours"], seed=0, start="cold", latencies=latencies, machine=Machine(cores=2.0))["ours"]
    measured = Machine(cores=2.0, ready_s={"fast": 2.1})
    run = simulate(spec, PROFILE, trace, ["ours"], seed=0, start="cold", latencies=latencies, machine=measured)["ours"]
    starts = [(i.cost_from_s, i.serve_from_s) for i in run.timeline.instances.values()]
    assert starts and all(ready - asked == pytest.approx(2.1) for asked, ready in starts)
    assert all(ready - asked == pytest.approx(3.5) for asked, ready in ((i.cost_from_s, i.serve_from_s) for i in planned.timeline.instances.values()))
    assert run.summary["slo_violation_ratio"] < planned.summary["slo_violation_ratio"]  # its first requests wait 1.4 s less
    with pytest.raises(ValueError, match=r"ready_s\['fast'\]"):
        Machine(cores=2.0, ready_s={"fast": 0.0})
