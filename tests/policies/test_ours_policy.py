"""``ours`` and ``oracle``: burst re-plans, stabilisation, in-place resize, checkpointed state, factory errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from infadapter.control import classify
from infadapter.errors import InvalidInput
from infadapter.planning import static_plan
from infadapter.policies import Observation, make_policy, parse_policies
from infadapter.policies.ours import OursState, split_weights
from infadapter.spec import parse_spec

from .fixtures import linear_profile, paper_spec

PROFILE = linear_profile({"resnet18": 20.0, "resnet34": 12.0, "resnet50": 10.0, "resnet101": 5.0, "resnet152": 4.0})


def _history(level: float, seconds: int = 7200, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson(level, seconds).astype(np.float64)


def test_ours_plans_for_the_forecast_and_resizes_in_place() -> None:
    spec = paper_spec()
    policy = make_policy("ours", spec, PROFILE)
    current = static_plan(spec, PROFILE, {"resnet152": 20})
    decision, state = policy.decide(Observation(0.0, _history(40.0), current, 80.0), policy.initial_state())
    assert decision.plan is not None
    assert classify(decision.plan, current) in ("scale_down", "variant_change")
    assert decision.resize == "in_place"
    assert decision.forecast_rps >= 40.0
    assert decision.plan.capacity_rps >= decision.forecast_rps - 1e-6
    assert state.planned_rps == decision.forecast_rps


def test_a_burst_between_ticks_triggers_an_in_place_replan() -> None:
    spec = paper_spec()
    policy = make_policy("ours", spec, PROFILE)
    current = static_plan(spec, PROFILE, {"resnet50": 6})  # 60 rps
    calm = _history(40.0)
    state = OursState(planned_rps=55.0, last_full_s=0.0)
    assert not policy.between_ticks(Observation(3.0, calm, current, 60.0), state)
    burst = np.concatenate((calm, [130.0, 140.0]))
    obs = Observation(5.0, burst, current, 60.0)
    assert policy.between_ticks(obs, state)
    decision, _ = policy.decide(obs, state)
    assert decision.plan is not None and classify(decision.plan, current) == "scale_up"
    assert decision.plan.capacity_rps >= 140.0
    assert [v.name for v in decision.plan.variants] == ["resnet50"]  # the running variant, grown in place


def test_scale_down_waits_for_the_stabilisation_window() -> None:
    spec = paper_spec()
    policy = make_policy("ours", spec, PROFILE, reweight=False, stabilisation_s=120.0)
    current = static_plan(spec, PROFILE, {"resnet50": 19})  # just serves 190 rps
    state = OursState(targets=((0.0, 190.0),), planned_rps=190.0, last_full_s=0.0)
    quiet = _history(40.0)
    decision, state = policy.decide(Observation(60.0, quiet, current, 190.0), state)
    assert decision.plan is None and decision.forecast_rps == 190.0
    decision, state = policy.decide(Observation(130.0, quiet, current, 190.0), state)
    assert decision.plan is not None and classify(decision.plan, current) in ("scale_down", "variant_change")


def test_state_round_trips_through_json_and_a_restart_causes_no_churn() -> None:
    spec = paper_spec()
    policy = make_policy("ours", spec, PROFILE)
    current = static_plan(spec, PROFILE, {"resnet152": 20})
    history = _history(40.0)
    decision, state = policy.decide(Observation(0.0, history, current, 80.0), policy.initial_state())
    assert decision.plan is not None
    restored = policy.state_from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored == state
    fresh = make_policy("ours", spec, PROFILE)  # a restarted operator
    again, _ = fresh.decide(Observation(10.0, history, decision.plan, decision.plan.capacity_rps), restored)
    assert again.plan is None or again.plan.same_config(decision.plan)


def test_split_weights_fill_the_most_accurate_first() -> None:
    spec = paper_spec()
    plan = static_plan(spec, PROFILE, {"resnet50": 10, "resnet18": 5})  # 100 + 100 rps
    moved = split_weights(plan, 120.0)
    assert moved.weights() == pytest.approx({"resnet50": 100 / 120, "resnet18": 20 / 120})
    assert split_weights(plan, 400.0).weights() == pytest.approx({"resnet50": 0.5, "resnet18": 0.5})


def test_oracle_plans_for_the_true_peak_of_the_next_window() -> None:
    spec = paper_spec()
    future = np.concatenate((np.full(20, 30.0), np.full(20, 150.0)))
    oracle = make_policy("oracle", spec, PROFILE, future_rps=future, interval_s=10.0)
    decision, _ = oracle.decide(Observation(0.0, future[:0], None, 0.0), oracle.initial_state())
    assert decision.forecast_rps == 30.0
    decision, _ = oracle.decide(Observation(10.0, future[:10], decision.plan, 30.0), oracle.initial_state())
    assert decision.forecast_rps == 150.0
    assert decision.plan is not None and decision.plan.capacity_rps >= 150.0


def test_unknown_policies_are_invalid_input() -> None:
    spec = paper_spec()
    for name in ("nope", "vpa:resnet9", "static:resnet50", "static:resnet50@x", "static:resnet50@0", "oracle"):
        with pytest.raises(InvalidInput):
            make_policy(name, spec, PROFILE)
    with pytest.raises(InvalidInput):
        make_policy("ours", spec, PROFILE, no_such_option=1)


def test_vpa_alone_expands_to_one_run_per_variant() -> None:
    assert parse_policies("ours, vpa", paper_spec()) == ["ours"] + [f"vpa:resnet{n}" for n in (18, 34, 50, 101, 152)]


def test_loading_a_new_variant_is_priced_by_its_make_before_break_cores() -> None:
    spec = paper_spec()
    policy = make_policy("ours", spec, PROFILE)
    current = static_plan(spec, PROFILE, {"resnet50": 8})
    resized = static_plan(spec, PROFILE, {"resnet50": 10})
    added = static_plan(spec, PROFILE, {"resnet50": 8, "resnet18": 4})
    assert policy.loading_cost(resized, current, spec) == 0.0
    expected = 0.05 / 20 * 4 * (spec.variant("resnet18").load_time_s + 4.0) / 60.0
    assert policy.loading_cost(added, current, spec) == pytest.approx(expected)


def test_a_plan_past_a_budget_that_shrank_is_replaced_even_when_it_still_scores_best() -> None:
    # a pool's new division (or an edit) gave the service 1 core while it runs 2 of its accurate variant, which
    # would still score best (accuracy 0.8 - 0.05 x 2 against 0.7 - 0.05 x 1): it must go all the same
    spec = parse_spec(
        {
            "variants": [{"name": "small", "accuracy": 0.7}, {"name": "large", "accuracy": 0.8}],
            "budget": {"cpu": 1},
            "resources": {"cpuStep": 1, "minCpu": 1, "maxCpu": 4},
            "adaptation": {"scaleDownStabilizationSeconds": 0},
            "forecast": {"model": "last"},
        }
    )
    profile = linear_profile({"small": 10.0, "large": 4.0}, max_cpu=4)
    current = static_plan(spec, profile, {"large": 2})  # serves 8 rps
    policy = make_policy("ours", spec, profile, reweight=False)
    decision, _ = policy.decide(Observation(0.0, np.full(600, 4.5), current, 8.0), policy.initial_state())
    assert decision.plan is not None and decision.plan.cost_cpu <= 1.0, decision
    assert [v.name for v in decision.plan.variants] == ["small"]
