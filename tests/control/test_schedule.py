"""The controller's schedule, cold start and hold, driven step by step with an explicit clock (no sleeps)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from infadapter.control import ActuatorState, Controller, ControlState, Step
from infadapter.policies import make_policy

from .fixtures import PROFILE, SPEC, Scripted, plan, running, steady

#: the mode's clock: Unix-like seconds (the policy only ever sees seconds since the first step)
T0 = 1_700_000_000.0


def _run(
    controller: Controller, seconds: range, actuator: ActuatorState, history: np.ndarray, state: ControlState | None = None
) -> tuple[list[Step], ControlState]:
    state = state or controller.initial_state()
    steps = []
    for second in seconds:
        step, state = controller.step(state, T0 + second, history, actuator)
        steps.append(step)
    return steps, state


def test_ticks_come_first_tick_s_after_the_first_step_then_every_interval_on_the_policys_clock() -> None:
    policy = Scripted(interval_s=10.0, first_tick_s=5.0)
    controller = Controller(SPEC, PROFILE, policy)
    steps, _ = _run(controller, range(31), running(("fast", 2.0, True)), steady(20.0))
    assert policy.decided_at == [5.0, 15.0, 25.0]
    assert [s.record is not None for s in steps].count(True) == 3
    assert all(s.record.now_s == T0 + at for s, at in zip((s for s in steps if s.record), (5, 15, 25), strict=True))  # type: ignore[union-attr]


def test_a_first_tick_at_zero_is_the_first_step() -> None:
    policy = Scripted(interval_s=10.0, first_tick_s=0.0)
    _run(Controller(SPEC, PROFILE, policy), range(12), running(("fast", 2.0, True)), steady(20.0))
    assert policy.decided_at == [0.0, 10.0]


def test_a_late_step_keeps_the_tick_grid() -> None:
    policy = Scripted(interval_s=10.0)
    controller = Controller(SPEC, PROFILE, policy)
    state = controller.initial_state()
    for second in (0.0, 13.5, 20.0, 29.0, 30.0):
        _, state = controller.step(state, T0 + second, steady(20.0), running(("fast", 2.0, True)))
    assert policy.decided_at == [0.0, 13.5, 20.0, 30.0]


def test_between_ticks_decides_at_once_and_replan_now_at_the_next_step() -> None:
    policy = Scripted(interval_s=10.0, burst_at_s=(4.0,), replan_once=True)
    _run(Controller(SPEC, PROFILE, policy), range(12), running(("fast", 2.0, True)), steady(20.0))
    assert policy.decided_at == [0.0, 1.0, 4.0, 10.0]  # tick, its replan_now, the burst check, tick


def test_the_policy_sees_the_plan_in_force_and_the_ready_capacity() -> None:
    policy = Scripted()
    _run(Controller(SPEC, PROFILE, policy), range(1), running(("fast", 2.0, True), ("slow", 4.0, False)), steady(20.0))
    (obs,) = policy.seen
    assert obs.current is not None and {v.name for v in obs.current.variants} == {"fast", "slow"}
    assert obs.provisioned_capacity_rps == pytest.approx(40.0)  # slow is not ready yet


def test_what_runs_is_adopted_and_an_unchanged_tick_acts_on_nothing() -> None:
    policy = Scripted(plans=[None])
    controller = Controller(SPEC, PROFILE, policy)
    steps, state = _run(controller, range(1), running(("fast", 2.0, True), weights={"fast": 1.0}), steady(20.0))
    assert policy.decided_at == [0.0], "a tick ran"
    assert steps[0].record is not None and steps[0].record.reason == "hold"
    assert steps[0].action is None and not steps[0].reconfigured
    assert state.target is not None and state.target.describe() == "fast:2c/1.00"


def test_cold_start_without_load_is_the_cheapest_plan_for_zero_load() -> None:
    policy = Scripted()
    controller = Controller(SPEC, PROFILE, policy)
    step, state = controller.step(controller.initial_state(), T0, np.empty(0), ActuatorState())
    assert policy.seen == [], "no observed load: the policy has nothing to go on"
    assert step.action is not None and [(v.name, v.cpu_cores, v.replicas) for v in step.action.variants] == [("fast", 1.0, 1)]
    assert step.record is not None and step.record.reason == "scale_up" and step.reconfigured
    assert state.since_s == 0.0 and step.wake_s == pytest.approx(T0 + 6.0 + 4.0)  # fast's load time + start-up


def test_cold_start_with_observed_load_asks_the_policy_with_nothing_running() -> None:
    policy = Scripted(plans=[plan(("slow", 4.0, 1.0), load_rps=18.0)])
    controller = Controller(SPEC, PROFILE, policy)
    step, _ = controller.step(controller.initial_state(), T0, steady(18.0), ActuatorState())
    assert [o.current for o in policy.seen] == [None]
    assert step.action is not None and [v.name for v in step.action.variants] == ["slow"]


def test_cold_start_of_a_policy_with_its_own_start_is_that_plan() -> None:
    static = make_policy("static:slow@3", SPEC, PROFILE)
    controller = Controller(SPEC, PROFILE, static)
    step, _ = controller.step(controller.initial_state(), T0, steady(18.0), ActuatorState())
    assert step.action is not None and [(v.name, v.cpu_cores) for v in step.action.variants] == [("slow", 3.0)]


def test_the_cold_start_never_reads_the_future() -> None:
    policy = Scripted()
    controller = Controller(SPEC, PROFILE, policy)
    past = np.concatenate((steady(10.0, 60), [np.nan] * 60))  # the load was seen long ago, nothing since
    step, _ = controller.step(controller.initial_state(), T0, past, ActuatorState())
    assert step.action is not None and step.action.variants[0].cpu_cores == 1.0 and policy.seen == []


def test_vanished_metrics_hold_the_plan_record_it_at_each_tick_and_resume() -> None:
    policy = Scripted(plans=[None, None])
    controller = Controller(SPEC, PROFILE, policy, stale_s=30.0)
    actuator = running(("fast", 2.0, True), weights={"fast": 1.0})
    blind = np.concatenate((steady(20.0, 60), [np.nan] * 30))
    steps, state = _run(controller, range(21), actuator, blind)
    assert policy.seen == []
    assert [s.record.reason for s in steps if s.record] == ["metrics_unavailable"] * 3  # ticks at 0, 10, 20
    assert all(s.action is None for s in steps) and state.target is not None and state.target.describe() == "fast:2c/1.00"
    steps, _ = _run(controller, range(21, 31), actuator, steady(20.0), state)
    assert policy.decided_at == [30.0] and [s.record.reason for s in steps if s.record] == ["hold"]  # type: ignore[union-attr]


def test_an_empty_history_is_vanished_metrics() -> None:
    controller = Controller(SPEC, PROFILE, Scripted())
    assert not controller.metrics_available(np.empty(0))
    assert not controller.metrics_available(np.array([5.0] + [math.nan] * 40))
    assert controller.metrics_available(np.array([math.nan] * 10 + [5.0]))


def test_the_state_round_trips_through_a_checkpoint() -> None:
    ours = make_policy("ours", SPEC, PROFILE)
    controller = Controller(SPEC, PROFILE, ours)
    _, state = _run(controller, range(3), running(("fast", 2.0, True), weights={"fast": 1.0}), steady(20.0, 3600))
    raw = controller.state_to_dict(state)
    import json

    restored = controller.state_from_dict(json.loads(json.dumps(raw)))
    assert restored == state.__class__(**{**state.__dict__, "sent": None})
