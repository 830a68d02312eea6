"""The simulator: utilisation of a static plan, make-before-break cost, in-place resizes, routing, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from infadapter.control import Controller, Latencies
from infadapter.planning import Plan
from infadapter.policies import Decision, Observation
from infadapter.policies.ours import OursState
from infadapter.profiles import Profile, ProfilePoint
from infadapter.sim.actuator import SimActuator
from infadapter.sim.engine import SimInstance, Timeline, average_cores, epochs, serve_requests
from infadapter.sim.run import run_controller, simulate
from infadapter.sim.service import ServiceModel
from infadapter.sim.traffic import arrival_times, observed_counts, quantise, route, swrr_cycle
from infadapter.spec import parse_spec

SPEC = parse_spec(
    {
        "modelName": "m",
        "variants": [
            {"name": "fast", "accuracy": 0.70, "loadTimeSeconds": 6.0},
            {"name": "slow", "accuracy": 0.78, "loadTimeSeconds": 8.0},
        ],
        "slo": {"latencyMs": 750},
        "budget": {"cpu": 8},
        "resources": {"minCpu": 1, "maxCpu": 8, "cpuStep": 1},
        "adaptation": {"intervalSeconds": 10},
    }
)
PROFILE = Profile(
    750.0,
    {
        "fast": tuple(ProfilePoint(float(c), 20.0 * c) for c in range(1, 9)),
        "slow": tuple(ProfilePoint(float(c), 5.0 * c) for c in range(1, 9)),
    },
)


def test_static_plan_over_a_constant_trace_gives_the_analytical_utilisation() -> None:
    trace = np.full(600, 30.0)
    runs = simulate(SPEC, PROFILE, trace, ["static:fast@4"], seed=1)
    run = runs["static:fast@4"]
    assert run.summary["avg_cpu"] == pytest.approx(4.0)
    assert run.summary["slo_violation_ratio"] == 0.0
    assert run.summary["avg_accuracy"] == pytest.approx(0.70)
    assert run.summary["reconfigurations"] == 0
    size = ServiceModel(PROFILE).size("fast", 4.0)
    served = 30.0 * 600
    busy_ratio = served * size.service_s / (size.servers * 600.0)
    assert busy_ratio == pytest.approx(30.0 * size.service_s / 4.0)  # lambda D / c
    assert 0.3 < busy_ratio < 0.45  # 30 rps on an ~80-rps instance
    # latency of a lightly loaded M/D/c: the service time plus little queueing
    assert run.summary["p99_latency_ms"] < 2.5 * size.service_s * 1000


class _Switch:
    """At ``at_s`` move from ``fast`` to ``slow`` (``resize`` given); hold otherwise."""

    name = "switch"
    interval_s = 1.0
    first_tick_s = 0.0

    def __init__(self, target: Plan, at_s: float, resize: str) -> None:
        self.target, self.at_s, self.resize = target, at_s, resize

    def initial_state(self) -> OursState:
        return OursState()

    def between_ticks(self, obs: Observation, state: OursState) -> bool:
        return False

    def decide(self, obs: Observation, state: OursState) -> tuple[Decision, OursState]:
        if obs.now_s == self.at_s:
            return Decision(self.target, resize=self.resize), state  # type: ignore[arg-type]
        return Decision(None), state


def _run(policy: _Switch, trace: np.ndarray, start: Plan, latencies: Latencies | None = None) -> Timeline:
    """The controller over ``trace`` against simulated servers that run ``start`` at t = 0."""
    latencies = latencies or Latencies()
    timeline = Timeline()
    actuator = SimActuator(SPEC, latencies, timeline)
    actuator.deploy(start)
    run_controller(Controller(SPEC, PROFILE, policy, latencies=latencies), actuator, trace, 0, trace.size)  # type: ignore[arg-type]
    return timeline


def _plan(*items: tuple[str, float, float]) -> Plan:
    from infadapter.planning import VariantPlan

    variants = tuple(VariantPlan(n, c, weight=w, capacity_rps=PROFILE.capacity_rps(n, c)) for n, c, w in items)
    return Plan(variants, cost_cpu=sum(c for _, c, _ in items))


def test_make_before_break_counts_both_instances_until_the_new_one_serves() -> None:
    policy = _Switch(_plan(("slow", 6.0, 1.0)), at_s=100.0, resize="recreate")
    timeline = _run(policy, np.full(300, 20.0), _plan(("fast", 2.0, 1.0)), Latencies(startup_s=4.0))
    cold = 8.0 + 4.0  # slow's load time + start-up
    expected = (2.0 * (100.0 + cold) + 6.0 * (300.0 - 100.0)) / 300.0
    assert average_cores(timeline, 300.0) == pytest.approx(expected)
    assert [e.start_s for e in epochs(timeline)] == [0.0, 100.0 + cold]
    assert timeline.reconfigurations == 1
    served = serve_requests(timeline, arrival_times(np.full(300, 20.0), np.random.default_rng(0)), ServiceModel(PROFILE))
    before = np.isclose(served.accuracy, 0.70)
    assert before.sum() == pytest.approx(20 * (100 + cold), abs=25)


def test_in_place_resize_has_no_cold_start() -> None:
    policy = _Switch(_plan(("fast", 6.0, 1.0)), at_s=100.0, resize="in_place")
    timeline = _run(policy, np.full(300, 20.0), _plan(("fast", 2.0, 1.0)), Latencies(in_place_s=1.0))
    assert len(timeline.instances) == 1
    assert average_cores(timeline, 300.0) == pytest.approx((2.0 * 101.0 + 6.0 * 199.0) / 300.0)


def test_swrr_is_exact_per_cycle_and_smooth() -> None:
    weights = quantise(np.array([0.2, 0.5, 0.3]))
    assert sum(weights) == 1000
    cycle = swrr_cycle(weights)
    assert np.bincount(cycle, minlength=3).tolist() == list(weights)
    targets = route(100, np.array([0.25, 0.75]))
    assert np.bincount(targets).tolist() == [25, 75]
    assert max(len(run) for run in "".join(map(str, targets)).split("1")) == 1  # never two 0s in a row


def test_arrivals_follow_the_trace_counts() -> None:
    trace = np.array([3.0, 0.0, math.nan, 5.0])
    times = arrival_times(trace, np.random.default_rng(0))
    assert np.bincount(times.astype(int), minlength=4).tolist() == [3, 0, 0, 5]
    packed = arrival_times(np.full(200, 100.0), np.random.default_rng(0), "paper")
    offsets = packed - np.floor(packed)
    assert np.median(offsets) < 0.45
    assert np.quantile(offsets, 0.9) < 0.75


def test_loadgen_arrivals_have_the_load_generators_poisson_counts() -> None:
    times = arrival_times(np.full(4000, 30.0), np.random.default_rng(1), "loadgen")
    counts = np.bincount(times.astype(int), minlength=4000)
    assert counts.mean() == pytest.approx(30.0, rel=0.01)
    assert counts.var() == pytest.approx(30.0, rel=0.1)  # Poisson: the variance is the mean (the trace's count has none)
    offsets = times - np.floor(times)
    assert np.median(offsets) == pytest.approx(0.5, abs=0.01)


def test_the_controllers_observe_the_requests_sent_not_the_trace() -> None:
    trace = np.array([4.5, 2.0, math.nan, 3.0])
    assert np.array_equal(observed_counts(np.array([0.1, 0.2, 1.5, 3.0, 3.9]), trace), [2.0, 1.0, math.nan, 2.0], equal_nan=True)
    rates = np.full(60, 20.0)
    sent = arrival_times(rates, np.random.default_rng(3), "loadgen")
    run = simulate(SPEC, PROFILE, rates, ["ours"], arrivals=sent, pre_history_rps=np.full(600, 20.0))["ours"]
    counts = np.bincount(sent.astype(int), minlength=60)
    steps = [r for r in run.timeline.records if r.now_s >= 1 and float(r.now_s).is_integer()]
    assert len(steps) >= 5
    assert [r.observed_rps for r in steps] == [float(counts[int(r.now_s) - 1]) for r in steps]  # the last second's count
    assert any(r.observed_rps != 20.0 for r in steps)
    served = simulate(SPEC, PROFILE, rates, ["static:fast@4"], arrivals=sent)["static:fast@4"]
    assert served.summary["slo_violation_ratio"] == 0.0 and served.summary["dropped_ratio"] == 0.0


def test_an_observation_replayed_is_what_the_controllers_see() -> None:
    rates = np.full(60, 20.0)
    sent = arrival_times(rates, np.random.default_rng(3), "loadgen")
    seen = np.where(np.arange(60) % 7 == 3, np.nan, 20.0 + np.arange(60) % 5)  # a gap in scraping every 7 s
    run = simulate(SPEC, PROFILE, rates, ["ours"], arrivals=sent, pre_history_rps=np.full(600, 20.0), observed_rps=seen)["ours"]
    steps = [r for r in run.timeline.records if r.now_s >= 1 and float(r.now_s).is_integer()]
    assert len(steps) >= 5
    assert all(r.observed_rps == seen[int(r.now_s) - 1] or math.isnan(seen[int(r.now_s) - 1]) for r in steps)
    assert any(r.observed_rps != float(np.bincount(sent.astype(int), minlength=60)[int(r.now_s) - 1]) for r in steps)
    with pytest.raises(ValueError, match="observed_rps: 59 seconds for a 60-second window"):
        simulate(SPEC, PROFILE, rates, ["ours"], observed_rps=seen[:59])


def test_same_seed_same_result_and_every_summary_field_present() -> None:
    trace = np.concatenate((np.full(200, 30.0), np.full(100, 90.0), np.full(200, 30.0)))
    a = simulate(SPEC, PROFILE, trace, ["ours", "infadapter-paper", "msplus", "vpa:fast", "oracle"], seed=7, pre_history_rps=np.full(3600, 30.0))
    b = simulate(SPEC, PROFILE, trace, ["ours", "infadapter-paper", "msplus", "vpa:fast", "oracle"], seed=7, pre_history_rps=np.full(3600, 30.0))
    for name in a:
        assert a[name].summary == b[name].summary
        assert set(a[name].summary) == {
            "slo_violation_ratio",
            "avg_cpu",
            "avg_gpu",
            "avg_cost",
            "avg_accuracy",
            "p99_latency_ms",
            "dropped_ratio",
            "reconfigurations",
        }
    c = simulate(SPEC, PROFILE, trace, ["static:fast@4"], seed=8)
    d = simulate(SPEC, PROFILE, trace, ["static:fast@4"], seed=7)
    assert c["static:fast@4"].summary["p99_latency_ms"] != d["static:fast@4"].summary["p99_latency_ms"]


def test_ours_follows_a_step_and_a_warm_variant_avoids_the_cold_start() -> None:
    trace = np.concatenate((np.full(300, 30.0), np.full(200, 70.0), np.full(300, 30.0)))
    history = np.full(7200, 30.0)
    runs = simulate(SPEC, PROFILE, trace, ["ours", "oracle", "static:fast@2"], seed=3, pre_history_rps=history)
    cold = runs["ours"].summary["slo_violation_ratio"]
    assert cold < 0.05  # the step needs `fast`, which is not running: one cold start (10 s)
    assert runs["static:fast@2"].summary["slo_violation_ratio"] > 0.2
    assert runs["oracle"].summary["avg_cpu"] <= runs["ours"].summary["avg_cpu"] + 0.5
    warm = simulate(SPEC, PROFILE, trace, ["ours"], seed=3, pre_history_rps=history, options={"ours": {"keep_warm": "fast"}})
    assert warm["ours"].summary["slo_violation_ratio"] < min(0.01, cold / 3)
    assert all("fast" in record.plan for record in warm["ours"].timeline.records)


def test_a_one_core_instance_matches_the_pollaczek_khinchine_mean_latency() -> None:
    """M/D/1: mean latency = D + λD² / (2(1 − λD)), utilisation λD (Poisson counts, uniform in each second)."""
    rate = 10.0
    trace = np.random.default_rng(5).poisson(rate, 3000).astype(np.float64)
    timeline = _run(_Switch(_plan(("fast", 1.0, 1.0)), at_s=-1.0, resize="in_place"), trace, _plan(("fast", 1.0, 1.0)))
    times = arrival_times(trace, np.random.default_rng(6))
    served = serve_requests(timeline, times, ServiceModel(PROFILE))
    d = ServiceModel(PROFILE).size("fast", 1.0).service_s
    utilisation = rate * d
    assert 0.3 < utilisation < 0.8
    expected = d + rate * d * d / (2.0 * (1.0 - utilisation))
    assert np.isnan(served.latency_s).sum() == 0
    assert float(served.latency_s.mean()) == pytest.approx(expected, rel=0.06)


def test_a_cold_window_starts_from_nothing_with_the_controllers_cold_start() -> None:
    trace = np.full(120, 30.0)
    run = simulate(SPEC, PROFILE, trace, ["ours"], seed=2, start="cold", pre_history_rps=np.full(3600, 30.0))["ours"]
    first = run.timeline.records[0]
    assert (first.now_s, first.reason) == (0.0, "scale_up") and first.previous_plan == {}
    ready_s = min(i.serve_from_s for i in run.timeline.instances.values())
    assert ready_s == pytest.approx(min(v.load_time_s for v in SPEC.variants if v.name in first.plan) + 4.0)
    assert run.summary["dropped_ratio"] == pytest.approx(ready_s / 120.0, abs=0.02), "nothing serves until then"


class _Seen:
    """Holds; records the newest second of history each step was given."""

    name = "seen"
    interval_s = 1.0
    first_tick_s = 0.0

    def __init__(self) -> None:
        self.newest: dict[float, float] = {}

    def initial_state(self) -> OursState:
        return OursState()

    def between_ticks(self, obs: Observation, state: OursState) -> bool:
        return False

    def decide(self, obs: Observation, state: OursState) -> tuple[Decision, OursState]:
        self.newest[obs.now_s] = float(obs.history_rps[-1]) if obs.history_rps.size else math.nan
        return Decision(None), state


@pytest.mark.parametrize("lag_s", [0.0, 0.5, 1.25, 5.0])
def test_the_controller_sees_the_load_as_late_as_the_mode_s_observer(lag_s: float) -> None:
    """``Latencies.observe_s``: the controller steps ``lag_s`` after a second ends and sees it as its newest."""
    policy = _Seen()
    trace = np.arange(100, dtype=np.float64)  # second k carries k rps: the newest value names its second
    _run(policy, trace, _plan(("fast", 2.0, 1.0)), Latencies(observe_s=lag_s))  # type: ignore[arg-type]
    assert len(policy.newest) >= 90  # it ran every second
    for now, newest in policy.newest.items():  # ``now``: the controller's clock, from its first step
        assert float(now).is_integer()
        if now > lag_s + 1:
            assert newest == now - math.floor(lag_s) - 1  # the newest second ended lag_s before this step


@pytest.mark.parametrize(("every_s", "lag_s"), [(5.0, 4.5), (2.5, 0.0), (1.0, 1.5)])
def test_the_loop_steps_as_often_as_the_mode_s_does_and_sees_nothing_between(every_s: float, lag_s: float) -> None:
    """``Latencies.step_s``: the operator steps once a scrape interval, so a change of load waits for its next step."""
    policy = _Seen()
    trace = np.arange(100, dtype=np.float64)
    _run(policy, trace, _plan(("fast", 2.0, 1.0)), Latencies(observe_s=lag_s, step_s=every_s))  # type: ignore[arg-type]
    times = sorted(policy.newest)
    assert len(times) == pytest.approx(100 / every_s, abs=3)  # it ran, once a step
    grid = {float(math.floor(k * every_s)) for k in range(200)}  # the controller's clock counts from its first step
    assert set(times) <= grid
    assert len(grid & set(range(20, 90))) == len(set(times) & set(range(20, 90)))  # and it missed no step
    for now, newest in policy.newest.items():
        if now > lag_s + 1:
            assert newest == math.floor(now) - math.floor(lag_s) - 1  # still the second that ended lag_s before


@pytest.mark.parametrize(("every_s", "lag_s"), [(5.0, 3.5), (1.0, 1.5), (3.0, 0.25)])
def test_a_second_waits_for_the_step_that_sees_it_as_benchmarks_observation_calibrates(every_s: float, lag_s: float) -> None:
    """How late, on average, a second is first seen: ``observe_s`` + (``step_s`` - 1) / 2, the relation
    ``benchmarks/observation.py`` inverts to turn the operator's measured lag into ``observe_s``."""
    policy = _Seen()
    _run(policy, np.arange(200, dtype=np.float64), _plan(("fast", 2.0, 1.0)), Latencies(observe_s=lag_s, step_s=every_s))  # type: ignore[arg-type]
    phase = lag_s % 1.0  # the controller's clock starts at its first step, ``phase`` into the trace
    first_seen = {}
    for now, newest in sorted(policy.newest.items()):
        for second in range(int(max(first_seen, default=-1)) + 1, int(newest) + 1):
            first_seen[second] = now + phase
    waits = [first_seen[c] - (c + 1) for c in range(30, 150)]
    assert np.mean(waits) == pytest.approx(lag_s + (every_s - 1.0) / 2.0, abs=0.05)
    assert min(waits) == pytest.approx(lag_s) and max(waits) == pytest.approx(lag_s + every_s - 1.0)


def test_a_loop_faster_than_the_seconds_it_reads_is_refused() -> None:
    with pytest.raises(ValueError, match="step_s"):
        Latencies(step_s=0.5)


@pytest.mark.parametrize("lag_s", [0.5, 1.25])
def test_a_fractional_observation_delay_steps_the_loop_that_long_after_each_second(lag_s: float) -> None:
    policy = _Switch(_plan(("fast", 6.0, 1.0)), at_s=100.0, resize="in_place")  # decided at the 101st step
    timeline = _run(policy, np.full(300, 20.0), _plan(("fast", 2.0, 1.0)), Latencies(in_place_s=0.0, observe_s=lag_s))
    (inst,) = timeline.instances.values()
    at = 100.0 + lag_s % 1.0  # on the trace's clock: the delay's fraction into second 100
    assert [t for t, _ in inst.sizes][-1] == pytest.approx(at)
    assert average_cores(timeline, 300.0) == pytest.approx((2.0 * at + 6.0 * (300.0 - at)) / 300.0)


def test_servers_without_a_queue_limit_serve_late_instead_of_dropping() -> None:
    trace = np.concatenate((np.full(60, 30.0), np.full(30, 120.0), np.full(60, 30.0)))  # 30 s past fast@4's 80 rps
    capped = simulate(SPEC, PROFILE, trace, ["static:fast@4"], seed=2)["static:fast@4"].summary
    unbounded = simulate(SPEC, PROFILE, trace, ["static:fast@4"], seed=2, queue_factor=math.inf)["static:fast@4"].summary
    assert capped["dropped_ratio"] > 0.05
    assert unbounded["dropped_ratio"] == 0.0
    assert unbounded["p99_latency_ms"] > 2 * capped["p99_latency_ms"]  # the late ones count in the p99
    assert unbounded["slo_violation_ratio"] >= capped["slo_violation_ratio"] - 0.01


def test_cores_over_times_equals_cores_at_each() -> None:
    inst = SimInstance(0, "fast", 0.7, [(0.0, 1.0), (5.0, 2.0), (5.0, 3.0), (9.5, 0.5)], -1.0, 0.0)
    t = np.linspace(-2.0, 12.0, 141)
    assert inst.cores_over(t).tolist() == [inst.cores_at(float(x)) for x in t]
