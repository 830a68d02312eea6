"""The VPA baseline: histogram percentile, 15 % margin, rounding up, bounds, 4-decision scale-down hold."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from infadapter.planning import static_plan
from infadapter.policies import Observation, make_policy
from infadapter.policies.vpa import VpaState, add_sample, bucket_of, bucket_start, percentile

from .fixtures import linear_profile, paper_spec

PROFILE = linear_profile({"resnet18": 20.0, "resnet34": 12.0, "resnet50": 10.0, "resnet101": 5.0, "resnet152": 4.0})


def test_percentile_is_the_end_of_the_bucket_reaching_the_quantile() -> None:
    state = VpaState()
    for usage in (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 5.0):
        state = add_sample(state, usage, 1.0, 0.0)
    assert percentile(state, 0.9) == pytest.approx(bucket_start(bucket_of(1.0) + 1))
    assert 1.0 < percentile(state, 0.9) <= 1.05 + 0.01
    assert percentile(state, 0.95) == pytest.approx(bucket_start(bucket_of(5.0) + 1))


def test_newer_samples_weigh_more_with_a_24h_half_life() -> None:
    state = add_sample(VpaState(), 1.0, 1.0, 0.0)
    state = add_sample(state, 4.0, 1.0, 24 * 3600.0)
    weights = dict(state.buckets)
    assert weights[bucket_of(4.0)] == pytest.approx(2.0 * weights[bucket_of(1.0)])


def _obs(now_s: float, rps: float, cores: float) -> Observation:
    return Observation(now_s, np.full(int(now_s), rps), static_plan(paper_spec(), PROFILE, {"resnet50": cores}), 10.0 * cores)


def test_target_is_p90_plus_15_percent_rounded_up() -> None:
    policy = make_policy("vpa:resnet50", paper_spec(), PROFILE)
    # usage = 23 rps x (cores / throughput = 0.1 s) = 2.3 cores -> 2.3 x 1.15 = 2.65 -> bucket end -> 3 cores
    state = policy.initial_state()
    decision, state = policy.decide(_obs(120.0, 23.0, 20.0), state)
    assert decision.plan is None  # lower: wait
    for _ in range(4):
        decision, state = policy.decide(_obs(120.0, 23.0, 20.0), state)
    assert decision.plan is not None
    assert decision.plan.variants[0].cpu_cores == 3.0
    assert decision.resize == "recreate"
    assert "target 2.68" in decision.note  # bucket end of 2.3 (2.33) x 1.15


def test_bounds_are_two_and_twenty_cores() -> None:
    policy = make_policy("vpa:resnet50", paper_spec(), PROFILE)
    state = add_sample(policy.initial_state(), 0.01, 1.0, 0.0)
    assert policy.target_cores(state) == 2.0
    state = add_sample(policy.initial_state(), 80.0, 1.0, 0.0)
    assert policy.target_cores(state) == 20.0


def test_usage_is_capped_at_the_allocated_cores() -> None:
    policy = make_policy("vpa:resnet50", paper_spec(), PROFILE)
    assert policy.usage_cores(1000.0, 4.0) == 4.0
    assert policy.usage_cores(10.0, 4.0) == pytest.approx(1.0)


def test_no_recommendation_before_the_first_sample_and_state_round_trips() -> None:
    policy = make_policy("vpa:resnet152", paper_spec(), PROFILE)
    decision, state = policy.decide(_obs(60.0, 10.0, 20.0), policy.initial_state())
    assert decision.plan is None and "no recommendation" in decision.note
    assert math.isinf(state.last_sample_s)
    _, state = policy.decide(_obs(180.0, 10.0, 20.0), state)
    raw = json.loads(json.dumps(state.to_dict()))
    assert VpaState.from_dict(raw) == state
    assert policy.initial_plan().variants[0].cpu_cores == 20.0
