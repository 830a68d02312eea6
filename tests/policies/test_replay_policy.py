"""``replay``: a measured run's plans applied at their seconds, through the simulator's own controller."""

from __future__ import annotations

import numpy as np
import pytest

from infadapter.errors import InvalidInput
from infadapter.planning import Plan, static_plan
from infadapter.policies import make_policy
from infadapter.policies.base import Observation
from infadapter.policies.replay import ReplayPolicy, ReplayState
from infadapter.profiles import Profile
from infadapter.sim.run import simulate
from infadapter.spec import InferenceServiceSpec
from tests.policies.fixtures import paper_profile, paper_spec


def _obs(now_s: float) -> Observation:
    return Observation(now_s, np.full(max(1, int(now_s)), 20.0), None)


def _plans() -> tuple[InferenceServiceSpec, Profile, Plan, Plan]:
    spec, profile = paper_spec(), paper_profile()
    return spec, profile, static_plan(spec, profile, {"resnet18": 4.0}), static_plan(spec, profile, {"resnet50": 8.0})


def test_each_plan_comes_due_at_its_second_and_only_once() -> None:
    _, _, first, second = _plans()
    policy = ReplayPolicy([(3.0, first, "recreate"), (7.5, second, "in_place")], interval_s=5.0)
    state = policy.initial_state()
    assert not policy.between_ticks(_obs(2.0), state)
    nothing, same = policy.decide(_obs(2.0), state)
    assert nothing.plan is None and same == state  # nothing due: state kept
    assert policy.between_ticks(_obs(3.0), state)
    decision, state = policy.decide(_obs(3.0), state)
    assert decision.plan is first and decision.resize == "recreate" and state == ReplayState(1)
    assert not policy.between_ticks(_obs(5.0), state)
    assert policy.decide(_obs(5.0), state)[0].plan is None
    decision, state = policy.decide(_obs(8.0), state)
    assert decision.plan is second and decision.resize == "in_place" and state == ReplayState(2)
    assert policy.state_from_dict(state.to_dict()) == state


def test_plans_due_together_apply_the_newest() -> None:
    _, _, first, second = _plans()
    policy = ReplayPolicy([(1.0, first, "recreate"), (2.0, second, "recreate")])
    decision, state = policy.decide(_obs(4.0), policy.initial_state())
    assert decision.plan is second and state.applied == 2


def test_a_schedule_out_of_order_or_missing_is_refused() -> None:
    spec, profile, first, second = _plans()
    with pytest.raises(ValueError, match="in order"):
        ReplayPolicy([(5.0, first, "recreate"), (1.0, second, "recreate")])
    with pytest.raises(InvalidInput) as caught:
        make_policy("replay", spec, profile)
    assert caught.value.errors[0].path == "policy" and "schedule" in caught.value.errors[0].message
    with pytest.raises(InvalidInput) as caught:
        make_policy("replay", spec, profile, schedule=[(1.0, first, "recreate")], intervals=5)
    assert caught.value.errors[0].path == "policy" and "bad option" in caught.value.errors[0].message
    assert make_policy("replay", spec, profile, schedule=[(1.0, first, "recreate")]).interval_s == spec.adaptation.interval_s


def test_the_simulator_runs_the_replayed_plans_at_their_seconds() -> None:
    spec, profile, first, second = _plans()
    trace = np.full(60, 30.0)
    start = static_plan(spec, profile, {"resnet152": 8.0})
    runs = simulate(spec, profile, trace, ["replay"], start=start, options={"replay": {"schedule": [(10.0, first, "recreate"), (30.0, second, "recreate")]}})
    changes = [(r.now_s, sorted(r.plan)) for r in runs["replay"].timeline.records if r.reason not in ("hold", "metrics_unavailable")]
    assert changes == [(10.0, ["resnet18"]), (30.0, ["resnet50"])]
    served = {inst.variant for inst in runs["replay"].timeline.instances.values()}
    assert served == {"resnet152", "resnet18", "resnet50"}
    assert runs["replay"].summary["reconfigurations"] == 2
