"""Make-before-break, the split that follows ready capacity, resize kinds and acting only on change, step by step."""

from __future__ import annotations

from dataclasses import replace

import pytest

from infadapter.control import Action, ActuatorState, Controller, Latencies, VariantState, actuation, split

from .fixtures import PROFILE, SPEC, Scripted, plan, running, steady

T0 = 5_000.0


def _names(action: Action | None) -> list[tuple[str, float]]:
    assert action is not None
    return sorted((v.name, v.cpu_cores) for v in action.variants)


def test_a_leaving_variant_stays_until_the_new_one_serves_and_the_router_confirms_the_split() -> None:
    policy = Scripted(plans=[plan(("slow", 6.0, 1.0), load_rps=20.0)], resize="recreate")
    controller = Controller(SPEC, PROFILE, policy)
    state = controller.initial_state()
    history = steady(20.0)
    step, state = controller.step(state, T0, history, running(("fast", 2.0, True), weights={"fast": 1.0}))
    assert step.reconfigured and step.record is not None and step.record.reason == "variant_change"
    assert _names(step.action) == [("fast", 2.0), ("slow", 6.0)]
    assert step.action is not None and step.action.weights == {"fast": 1.0}  # slow is not ready: fast carries the load
    assert step.wake_s == pytest.approx(T0 + 8.0 + 4.0)  # slow's cold start
    starting = running(("fast", 2.0, True), ("slow", 6.0, False), weights={"fast": 1.0})
    step, state = controller.step(state, T0 + 5, history, starting)
    assert step.action is None and step.record is None, "nothing changes while slow starts"
    ready = running(("fast", 2.0, True), ("slow", 6.0, True), weights={"fast": 1.0})
    step, state = controller.step(state, T0 + 12, history, ready)
    assert _names(step.action) == [("fast", 2.0), ("slow", 6.0)], "fast stays until the router sends it nothing"
    assert step.action is not None and step.action.weights == {"slow": 1.0}
    assert step.wake_s == T0 + 12  # the split is confirmed after weights_s = 0: step again now
    confirmed = running(("fast", 2.0, True), ("slow", 6.0, True), weights={"slow": 1.0})
    step, state = controller.step(state, T0 + 12, history, confirmed)
    assert _names(step.action) == [("slow", 6.0)]
    step, state = controller.step(state, T0 + 13, history, running(("slow", 6.0, True), weights={"slow": 1.0}))
    assert step.action is None and state.since_s is None, "converged"


def test_the_split_follows_ready_capacity_while_a_resize_is_under_way() -> None:
    target = plan(("fast", 2.0, 1.0), load_rps=30.0)  # 40 rps planned, 30 rps to serve
    growing = ActuatorState((VariantState("fast", 2.0, 1, (1.0,)), VariantState("slow", 8.0, 1, (8.0,))), {"slow": 1.0})
    weights = split(target, growing, PROFILE)  # fast serves 20 of its 30 now; slow (leaving) the other 10
    assert weights == pytest.approx({"fast": 2 / 3, "slow": 1 / 3})
    grown = ActuatorState((VariantState("fast", 2.0, 1, (2.0,)), VariantState("slow", 8.0, 1, (8.0,))), weights)
    assert split(target, grown, PROFILE) == {"fast": 1.0}


def test_an_in_place_shrink_waits_for_the_new_capacity_and_goes_one_resize_before_it() -> None:
    policy = Scripted(plans=[plan(("fast", 2.0, 0.5), ("slow", 4.0, 0.5), load_rps=40.0)])
    controller = Controller(SPEC, PROFILE, policy)
    step, state = controller.step(controller.initial_state(), T0, steady(40.0), running(("fast", 4.0, True), weights={"fast": 1.0}))
    assert _names(step.action) == [("fast", 4.0), ("slow", 4.0)], "fast keeps its 4 cores while slow starts"
    assert step.wake_s == pytest.approx(T0 + 11.0)  # slow serves at 12; the 1-s resize goes at 11
    starting = ActuatorState((VariantState("fast", 4.0, 1, (4.0,)), VariantState("slow", 4.0, 1, ())), {"fast": 1.0})
    step, state = controller.step(state, T0 + 11, steady(40.0), starting)
    assert _names(step.action) == [("fast", 2.0), ("slow", 4.0)]


def test_where_weights_take_time_a_shrink_waits_until_the_router_applies_the_new_share() -> None:
    # the operator's delays: a resize acknowledged in 2 s, weights at Envoy in 3 s. Shrunk a resize ahead of slow's
    # start, fast (2 cores: 20 rps) would get all 40 rps for 3 s; shrunk with the new split, its old half for 1 s
    operator = Latencies(startup_s=4.0, in_place_s=2.0, weights_s=3.0)
    policy = Scripted(plans=[plan(("fast", 2.0, 0.5), ("slow", 4.0, 0.5), load_rps=40.0)])
    controller = Controller(SPEC, PROFILE, policy, latencies=operator)
    step, state = controller.step(controller.initial_state(), T0, steady(40.0), running(("fast", 4.0, True), weights={"fast": 1.0}))
    assert _names(step.action) == [("fast", 4.0), ("slow", 4.0)]
    assert step.wake_s == pytest.approx(T0 + 12.0), "no wake a resize early: slow serves at 12"
    starting = ActuatorState((VariantState("fast", 4.0, 1, (4.0,)), VariantState("slow", 4.0, 1, ())), {"fast": 1.0})
    step, state = controller.step(state, T0 + 10, steady(40.0), starting)
    assert step.action is None, "fast keeps 4 cores while slow starts"
    ready = ActuatorState((VariantState("fast", 4.0, 1, (4.0,)), VariantState("slow", 4.0, 1, (4.0,))), {"fast": 1.0})
    step, state = controller.step(state, T0 + 12, steady(40.0), ready)
    assert _names(step.action) == [("fast", 4.0), ("slow", 4.0)], "the new split goes; fast keeps its size"
    assert step.action is not None and step.action.weights == pytest.approx({"fast": 0.5, "slow": 0.5})
    assert step.wake_s == pytest.approx(T0 + 15.0), "when the router should apply it"
    step, state = controller.settle(state, T0 + 15, ready)
    assert step.action is None, "the router still sends fast everything: no shrink"
    confirmed = replace(ready, weights={"fast": 0.5, "slow": 0.5})
    step, state = controller.settle(state, T0 + 16, confirmed)
    assert _names(step.action) == [("fast", 2.0), ("slow", 4.0)]
    assert step.action is not None and step.action.weights == pytest.approx({"fast": 0.5, "slow": 0.5})


def test_with_instant_resizes_a_variant_shrinks_with_its_split_else_once_the_router_applies_it() -> None:
    target = plan(("fast", 2.0, 0.5), ("slow", 4.0, 0.5), load_rps=40.0)
    ready = ActuatorState((VariantState("fast", 4.0, 1, (4.0,)), VariantState("slow", 4.0, 1, (4.0,))), {"fast": 1.0})
    assert _names(actuation(target, ready, PROFILE, in_place=True, instant=True)) == [("fast", 2.0), ("slow", 4.0)]
    assert _names(actuation(target, ready, PROFILE, in_place=True)) == [("fast", 4.0), ("slow", 4.0)], "not yet confirmed"
    within = replace(ready, weights={"fast": 0.505, "slow": 0.495})  # the router's rounding
    assert _names(actuation(target, within, PROFILE, in_place=True)) == [("fast", 2.0), ("slow", 4.0)]


def test_fewer_replicas_wait_like_a_leaving_variant() -> None:
    target = plan(("slow", 8.0, 1.0), load_rps=30.0)  # one replica of 40 rps for 30 rps
    one_ready = ActuatorState((VariantState("slow", 8.0, 2, (8.0,)),), {"slow": 1.0})
    assert actuation(target, one_ready, PROFILE, in_place=True).variants[0].replicas == 1, "covered: the extra goes"
    same_size = ActuatorState((VariantState("slow", 8.0, 3, (8.0,)),), {"slow": 1.0})  # 2 replicas still starting
    target_two = plan(("slow", 8.0, 1.0), load_rps=60.0)
    two = replace(target_two.variants[0], replicas=2, capacity_rps=80.0)
    held = actuation(replace(target_two, variants=(two,)), same_size, PROFILE, in_place=True)
    assert held.variants[0].replicas == 3, "not covered: no replica goes first"
    small = ActuatorState((VariantState("slow", 2.0, 2, (2.0, 2.0)),), {"slow": 1.0})  # 20 rps
    replaced = actuation(target, small, PROFILE, in_place=False)
    assert (replaced.variants[0].cpu_cores, replaced.variants[0].replicas) == (8.0, 1), "the actuator replaces them, new first"


def test_the_resize_kind_is_the_decisions_unless_the_actuator_cannot_resize_in_place() -> None:
    grow = plan(("fast", 4.0, 1.0), load_rps=60.0)
    for resize, can, expected in (("in_place", True, True), ("recreate", True, False), ("in_place", False, False)):
        controller = Controller(SPEC, PROFILE, Scripted(plans=[grow], resize=resize))
        step, _ = controller.step(controller.initial_state(), T0, steady(60.0), running(("fast", 2.0, True), weights={"fast": 1.0}, in_place=can))
        assert step.action is not None and step.action.variants[0].in_place is expected, (resize, can)


def test_decisions_wait_for_a_transition_at_most_settle_timeout_s() -> None:
    policy = Scripted(plans=[plan(("slow", 4.0, 1.0), load_rps=18.0), None, None])
    controller = Controller(SPEC, PROFILE, policy, settle_timeout_s=25.0)
    state = controller.initial_state()
    stuck = running(("fast", 2.0, True), ("slow", 4.0, False), weights={"fast": 1.0})  # slow never gets ready
    for second in range(31):
        _, state = controller.step(state, T0 + second, steady(18.0), stuck if second else running(("fast", 2.0, True)))
    assert policy.decided_at == [0.0, 25.0, 30.0]  # the ticks at 10 and 20 waited; then it decides on what is ready
    assert policy.seen[1].provisioned_capacity_rps == pytest.approx(40.0)


def test_a_repeated_state_is_acted_on_once() -> None:
    policy = Scripted(plans=[plan(("fast", 3.0, 1.0), load_rps=50.0)])
    controller = Controller(SPEC, PROFILE, policy)
    before = running(("fast", 2.0, True), weights={"fast": 1.0})
    first, state = controller.step(controller.initial_state(), T0, steady(50.0), before)
    assert first.action is not None and first.reconfigured
    resizing = ActuatorState((VariantState("fast", 3.0, 1, (2.0,)),), {"fast": 1.0})
    again, state = controller.step(state, T0 + 0.5, steady(50.0), resizing)
    assert again.action is None
    forgotten, _ = controller.step(state, T0 + 1, steady(50.0), before)  # the actuator lost it (a restart)
    assert forgotten.action is not None and _names(forgotten.action) == [("fast", 3.0)]


def test_settle_moves_a_transition_along_without_deciding() -> None:
    policy = Scripted(plans=[plan(("slow", 6.0, 1.0), load_rps=20.0)], burst_at_s=(12.5,))
    controller = Controller(SPEC, PROFILE, policy)
    step, state = controller.step(controller.initial_state(), T0, steady(20.0), running(("fast", 2.0, True), weights={"fast": 1.0}))
    ready = running(("fast", 2.0, True), ("slow", 6.0, True), weights={"fast": 1.0})
    step, state = controller.settle(state, step.wake_s + 0.5, ready)
    assert policy.decided_at == [0.0], "no decision: the burst check at 12.5 is the step's, not settle's"
    assert step.action is not None and step.action.weights == {"slow": 1.0} and step.record is None


def test_with_instant_resizes_the_split_sent_is_for_the_new_sizes() -> None:
    """Seen live (embedded mode): slow shrunk in place 1.5 -> 0.75 cores while fast grew 0.25 -> 1 core in the same
    action, whose split was still the old sizes' (slow 0.91), so for a second a server at half its size took nine
    tenths of a burst. The quota writes act at once: the split sent with them is the new sizes'."""
    target = plan(("fast", 4.0, 8 / 9), ("slow", 2.0, 1 / 9), load_rps=90.0)  # fast serves 80 of 80, slow 10 of 10
    before = running(("fast", 1.0, True), ("slow", 6.0, True), weights={"fast": 0.5, "slow": 0.5})
    assert split(target, before, PROFILE)["slow"] > 0.7, "on the sizes before the resize, slow (30 rps ready) takes most"
    instant = Controller(SPEC, PROFILE, Scripted(plans=[target]), latencies=Latencies(startup_s=1.0, in_place_s=0.0))
    step, _ = instant.step(instant.initial_state(), T0, steady(90.0), before)
    assert _names(step.action) == [("fast", 4.0), ("slow", 2.0)], "both resizes go at once"
    assert step.action is not None and step.action.weights == pytest.approx({"fast": 8 / 9, "slow": 1 / 9}), "the new sizes' split"
    # an actuator whose resizes take time reports them once done: until then the split stays the ready sizes'
    slow_resize = Controller(SPEC, PROFILE, Scripted(plans=[target]), latencies=Latencies(startup_s=1.0, in_place_s=2.0))
    step, _ = slow_resize.step(slow_resize.initial_state(), T0, steady(90.0), before)
    assert step.action is not None and step.action.weights == pytest.approx(split(target, before, PROFILE))
