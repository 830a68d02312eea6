"""The budget is a cap in every transition: footprints counted as a quota counts them, switches staged to fit."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from infadapter.control import Action, ActuatorState, Controller, Latencies, VariantState, VariantTarget, actuation
from infadapter.control.budget import DEFAULT_SURGE_RATIO, Cap, footprint, held, within_cap
from infadapter.control.controller import STAGE_POLL_S
from infadapter.planning import Plan
from infadapter.sim.actuator import SimActuator
from infadapter.sim.engine import Timeline, allocated_cores
from infadapter.sim.run import STEPS_PER_INSTANT, run_controller
from infadapter.sim.scenario import DEFAULT_PROFILE, DEFAULT_TRACE

from .fixtures import PROFILE, SPEC, Scripted, plan, running

CAP = Cap.of(SPEC, 0.0)  # the fixtures' 8 cores


def peak_cores(timeline: Timeline, until_s: float) -> float:
    """The most cores allocated at any instant of ``[0, until_s)`` (every start, resize and end is an instant)."""
    instants = {0.0}
    for inst in timeline.instances.values():
        instants |= {inst.cost_from_s, *(s for s, _ in inst.sizes)}
        if math.isfinite(inst.end_s):
            instants.add(inst.end_s - 1e-6)
    times = np.array(sorted(t for t in instants if 0.0 <= t < until_s)) + 1e-9
    return float(allocated_cores(timeline, times).max())


def switch(
    plans: list[Plan | None], start: Plan, rps: float, *, resize: str = "in_place", surge_ratio: float = 0.0, seconds: int = 90
) -> tuple[Timeline, SimActuator]:
    """Run the controller against the simulated actuator from ``start`` through the scripted ``plans``."""
    timeline = Timeline()
    actuator = SimActuator(SPEC, Latencies(), timeline)
    actuator.deploy(start)
    controller = Controller(SPEC, PROFILE, Scripted(plans=plans, resize=resize), surge_ratio=surge_ratio)
    run_controller(controller, actuator, np.full(seconds + 600, rps), 600, seconds)
    return timeline, actuator


def test_a_resize_in_place_counts_its_larger_size_until_it_has_taken_effect() -> None:
    growing = ActuatorState((VariantState("fast", 4.0, 1, (2.0,)),), {"fast": 1.0})
    assert held(growing, True) == (4.0, 0.0)
    shrinking = ActuatorState((VariantState("fast", 2.0, 1, (4.0,)),), {"fast": 1.0})
    assert held(shrinking, True) == (4.0, 0.0)
    shrink_more = Action((VariantTarget("fast", 1.0, 1),), {"fast": 1.0})
    assert footprint(shrink_more, shrinking, True) == (4.0, 0.0)


def test_replaced_and_removed_replicas_count_until_they_are_gone() -> None:
    state = ActuatorState((VariantState("fast", 2.0, 1, (2.0,)), VariantState("slow", 4.0, 1, (4.0,))), {"fast": 1.0})
    replace = Action((VariantTarget("fast", 3.0, 1, in_place=False),), {"fast": 1.0})  # slow drained, fast replaced
    assert footprint(replace, state, False) == (2.0 + 3.0 + 4.0, 0.0)
    starting = ActuatorState((VariantState("fast", 3.0, 2, (2.0,)),), {"fast": 1.0})  # one old replica, two new starting
    assert held(starting, False) == (2.0 + 2 * 3.0, 0.0)


def test_make_before_break_that_fits_is_left_as_it_is() -> None:
    target = plan(("fast", 2.0, 0.5), ("slow", 4.0, 0.5), load_rps=30.0)
    state = running(("fast", 2.0, True), weights={"fast": 1.0})
    action = actuation(target, state, PROFILE, in_place=True)
    assert within_cap(action, target, state, PROFILE, SPEC, CAP, in_place=True) is action


def test_a_switch_on_the_whole_budget_is_staged_within_it() -> None:
    start = plan(("fast", 8.0, 1.0), load_rps=60.0)  # 160 rps on all 8 cores
    target = plan(("fast", 3.0, 0.75), ("slow", 5.0, 0.25), load_rps=60.0)
    timeline, actuator = switch([target], start, 60.0)
    assert peak_cores(timeline, 90.0) <= CAP.cpu + 1e-9
    final = actuator.state(90.0)
    assert sorted((v.name, v.cpu_cores, v.ready_cores) for v in final.running) == [("fast", 3.0, (3.0,)), ("slow", 5.0, (5.0,))]


def test_a_staged_switch_with_instant_resizes_looks_again_at_the_stage_poll_not_at_every_instant() -> None:
    """The embedded mode resizes at once (in_place_s = 0): a stage waiting for a cold start is looked at every
    STAGE_POLL_S, not every EPS_S (which spun the simulator a million steps per second of the wait)."""
    timeline = Timeline()
    instant = Latencies(in_place_s=0.0)
    actuator = SimActuator(SPEC, instant, timeline)
    actuator.deploy(plan(("slow", 8.0, 1.0), load_rps=30.0))  # the whole budget: the new variant's room is staged
    target = plan(("fast", 6.0, 1.0), load_rps=30.0)
    controller = Controller(SPEC, PROFILE, Scripted(plans=[target], resize="in_place"), latencies=instant, surge_ratio=0.0)
    settles = 0
    settle = controller.settle

    def counted(*args: Any) -> Any:
        nonlocal settles
        settles += 1
        assert settles < 20_000, "the staged switch spun"
        return settle(*args)

    controller.settle = counted  # type: ignore[method-assign]
    run_controller(controller, actuator, np.full(690, 60.0), 600, 90)
    final = actuator.state(90.0)
    assert [(v.name, v.cpu_cores, v.ready_cores) for v in final.running] == [("fast", 6.0, (6.0,))]
    assert 0 < settles <= 90 * (1 / STAGE_POLL_S + STEPS_PER_INSTANT)


def test_without_a_cap_the_same_switch_holds_both_plans_at_once() -> None:
    start = plan(("fast", 8.0, 1.0), load_rps=60.0)
    target = plan(("fast", 3.0, 0.75), ("slow", 5.0, 0.25), load_rps=60.0)
    timeline, _ = switch([target], start, 60.0, surge_ratio=1.0)
    assert peak_cores(timeline, 90.0) == 13.0  # fast keeps its 8 while slow starts: what the cap prevents


def test_a_surge_allowance_is_the_cap_and_nothing_more() -> None:
    start = plan(("fast", 8.0, 1.0), load_rps=60.0)
    target = plan(("fast", 3.0, 0.75), ("slow", 5.0, 0.25), load_rps=60.0)
    timeline, actuator = switch([target], start, 60.0, surge_ratio=0.25)
    assert peak_cores(timeline, 90.0) <= Cap.of(SPEC, 0.25).cpu + 1e-9 == 10.0 + 1e-9
    assert {v.name for v in actuator.state(90.0).running} == {"fast", "slow"}


def test_a_saturated_variant_gives_up_only_the_smallest_step_for_a_cold_start() -> None:
    target = plan(("fast", 6.0, 0.95), ("slow", 2.0, 0.05), load_rps=200.0)  # more than the 160 rps fast@8 serves
    state = running(("fast", 8.0, True), weights={"fast": 1.0})
    full = actuation(target, state, PROFILE, in_place=True)
    staged = within_cap(full, target, state, PROFILE, SPEC, CAP, in_place=True)
    assert [(v.name, v.cpu_cores) for v in staged.variants] == [("fast", 7.0)], "one core freed now, slow starts next"
    roomy = plan(("fast", 6.0, 0.9), ("slow", 2.0, 0.1), load_rps=100.0)  # fast@6 serves the 100 rps meanwhile
    staged = within_cap(actuation(roomy, state, PROFILE, in_place=True), roomy, state, PROFILE, SPEC, CAP, in_place=True)
    assert [(v.name, v.cpu_cores) for v in staged.variants] == [("fast", 6.0)], "slow's planned 2 cores freed at once"


def test_a_replacement_that_cannot_fit_waits_for_room() -> None:
    start = plan(("slow", 8.0, 1.0), load_rps=30.0)
    target = plan(("slow", 6.0, 1.0), load_rps=30.0)
    timeline, actuator = switch([target], start, 30.0, resize="recreate", seconds=30)
    assert peak_cores(timeline, 30.0) == 8.0
    assert actuator.state(30.0).running[0].ready_cores == (8.0,), "6 + 8 cores would not fit: no replacement starts"
    timeline, actuator = switch([target], start, 30.0, resize="recreate", surge_ratio=0.75, seconds=30)
    assert peak_cores(timeline, 30.0) == 14.0 and actuator.state(30.0).running[0].ready_cores == (6.0,)


@pytest.mark.parametrize("surge", [0.0, 0.5])
def test_random_switches_never_exceed_the_cap(surge: float) -> None:
    rng = np.random.default_rng(7)
    for _ in range(8):
        plans: list[Plan | None] = []
        for _ in range(6):
            fast = float(rng.integers(1, 8))
            slow = float(rng.integers(0, 9 - int(fast)))
            items = [("fast", fast, 0.0)] + ([("slow", slow, 0.0)] if slow else [])
            capacity = sum(PROFILE.capacity_rps(n, c) for n, c, _ in items)
            plans.append(plan(*((n, c, PROFILE.capacity_rps(n, c) / capacity) for n, c, _ in items), load_rps=0.8 * capacity))
        start = plan(("slow", 8.0, 1.0), load_rps=30.0)
        timeline, _ = switch(plans, start, 30.0, surge_ratio=surge, seconds=70)
        assert peak_cores(timeline, 70.0) <= Cap.of(SPEC, surge).cpu + 1e-9


def test_the_controller_caps_at_the_budget_plus_the_default_surge() -> None:
    controller = Controller(SPEC, PROFILE, Scripted())
    assert controller.cap == Cap(8.0 * (1 + DEFAULT_SURGE_RATIO), 0.0)
    assert Controller(SPEC, PROFILE, Scripted(), surge_ratio=0.0).cap == Cap(8.0, 0.0)


@pytest.mark.skipif(not (DEFAULT_TRACE.is_file() and DEFAULT_PROFILE.is_file()), reason="needs ../shared/data (the Twitter trace)")
def test_every_transition_of_the_paper_scenario_stays_within_the_budget_and_its_surge() -> None:
    from infadapter.policies import recommended_options
    from infadapter.profiles import load_profile
    from infadapter.sim.run import simulate
    from infadapter.sim.scenario import DEFAULT_SPEC, PAPER_DURATION_S, PAPER_START_S, PRE_HISTORY_S
    from infadapter.spec import load_spec
    from infadapter.traces import load_trace

    spec = load_spec(DEFAULT_SPEC)
    profile = load_profile(DEFAULT_PROFILE, spec.slo.latency_ms)
    series = load_trace(DEFAULT_TRACE)
    window = series[PAPER_START_S : PAPER_START_S + PAPER_DURATION_S]
    names = ["ours", "oracle", "infadapter-paper", "msplus", *(f"vpa:{v}" for v in spec.variant_names)]
    runs = simulate(
        spec, profile, window, names, pre_history_rps=series[PAPER_START_S - PRE_HISTORY_S : PAPER_START_S], options={"ours": recommended_options()}
    )
    from infadapter.sim.run import BASELINE_SURGE, OWN_POLICIES

    peaks = {name: peak_cores(run.timeline, float(PAPER_DURATION_S)) for name, run in runs.items()}
    for name, peak in peaks.items():  # the baselines run as they did, without a quota: a surge that holds a replacement
        cap = spec.budget.cpu * (1 + (DEFAULT_SURGE_RATIO if name in OWN_POLICIES else BASELINE_SURGE))
        assert peak <= cap + 1e-9, peaks
    assert runs["ours"].summary["slo_violation_ratio"] < 0.002


def _stages(target: Plan, state: ActuatorState, *, instant: bool) -> list[Action]:
    """Every stage of a capped switch, each resize taking effect before the next stage is asked for."""
    out: list[Action] = []
    for _ in range(10):
        full = actuation(target, state, PROFILE, in_place=True, shrink=True, instant=instant)
        action = within_cap(full, target, state, PROFILE, SPEC, CAP, in_place=True, instant=instant)
        out.append(action)
        if action is full:
            return out
        state = ActuatorState(tuple(VariantState(t.name, t.cpu_cores, 1, (t.cpu_cores,)) for t in action.variants), dict(action.weights), True)
    raise AssertionError("the switch never completed")


def test_with_instant_resizes_a_stage_sends_a_shrunk_variant_what_its_new_size_serves() -> None:
    target = plan(("fast", 6.0, 0.9), ("slow", 2.0, 0.1), load_rps=100.0)  # 10 cores held at most: staged
    state = running(("fast", 2.0, True), ("slow", 8.0, True), weights={"fast": 0.5, "slow": 0.5})
    instant, slow_resizes = _stages(target, state, instant=True), _stages(target, state, instant=False)
    assert [a.variants for a in instant] == [a.variants for a in slow_resizes], "the same stages"
    assert len(instant) >= 4

    def sent_to_slow_at_two_cores(stages: list[Action]) -> float:
        return next(a.weights["slow"] * 100.0 for a in stages if a.variant("slow") == VariantTarget("slow", 2.0, 1))

    capacity = PROFILE.capacity_rps("slow", 2.0)  # 10 rps
    assert sent_to_slow_at_two_cores(slow_resizes) >= 2 * capacity, "the old sizes' split: twice what 2 cores serve"
    assert sent_to_slow_at_two_cores(instant) <= 1.15 * capacity, "the stage's own sizes' split"


def test_where_weights_take_time_a_stage_keeps_what_the_router_still_sends() -> None:
    target = plan(("fast", 6.0, 0.9), ("slow", 2.0, 0.1), load_rps=30.0)  # fast grows 1 -> 6 while slow holds 6: staged
    state = running(("fast", 1.0, True), ("slow", 6.0, True), weights={"fast": 0.2, "slow": 0.8})  # slow still gets 24 rps
    full = actuation(target, state, PROFILE, in_place=True)
    at_once = within_cap(full, target, state, PROFILE, SPEC, CAP, in_place=True)
    lagging = within_cap(full, target, state, PROFILE, SPEC, CAP, in_place=True, weights_lag=True)
    assert at_once.weights == pytest.approx({"fast": 2 / 3, "slow": 1 / 3}), "the split sent: 10 rps to slow"
    assert at_once.variant("slow") == VariantTarget("slow", 2.0, 1), "sized for the 10 rps of the split sent"
    assert lagging.variant("slow") == VariantTarget("slow", 5.0, 1), "sized for the 24 rps the router sends until then"
    assert PROFILE.capacity_rps("slow", 5.0) >= 0.8 * 30.0
