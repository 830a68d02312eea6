"""Fair baselines: msplus, infadapter-paper, vpa and static stay within the spec's minCpu/maxCpu/maxReplicas
(growing up to maxCpu, then out by replicas), and a size outside the profile's measured range is a warning."""

from __future__ import annotations

import numpy as np
import pytest

from infadapter.errors import InvalidInput
from infadapter.policies import make_policy, parse_policies
from infadapter.policies.paper import PaperModel, paper_plan
from infadapter.policies.sizes import Rung, ladder, rung_for
from infadapter.policies.vpa import VpaPolicy
from infadapter.profiles import Profile, ProfilePoint
from infadapter.sim.run import simulate
from infadapter.spec import InferenceServiceSpec, parse_spec

from .fixtures import linear_profile, paper_spec

PER_CORE = {"resnet18": 20.0, "resnet34": 12.0, "resnet50": 10.0, "resnet101": 5.0, "resnet152": 4.0}
#: a user's profile: measured on 1..8 cores only
PROFILE_8 = linear_profile(PER_CORE, max_cpu=8)


def user_spec(max_cpu: float = 8, budget: float = 30, max_replicas: int = 4, min_cpu: float = 1) -> InferenceServiceSpec:
    """The paper's service under a user's bounds."""
    raw = paper_spec().to_dict()
    raw["budget"]["cpu"] = budget
    raw["resources"].update({"minCpu": min_cpu, "maxCpu": max_cpu, "maxReplicas": max_replicas})
    return parse_spec(raw)


def test_on_the_papers_spec_the_ladder_is_the_papers_range() -> None:
    assert ladder(paper_spec(), "resnet50") == tuple(Rung(float(c)) for c in range(2, 21))


def test_the_ladder_grows_to_max_cpu_then_adds_replicas_within_the_budget() -> None:
    rungs = ladder(user_spec(max_cpu=8, budget=30, max_replicas=4), "resnet18")
    assert rungs == (*(Rung(float(c)) for c in range(1, 9)), Rung(8.0, 2), Rung(8.0, 3))  # 8 x 4 = 32 > 30
    assert rung_for(rungs, 5.0) == Rung(5.0)
    assert rung_for(rungs, 13.0) == Rung(8.0, 2)
    assert rung_for(rungs, 99.0) == Rung(8.0, 3)


@pytest.mark.parametrize("single_variant", [False, True])
@pytest.mark.parametrize("load", [50, 150, 300, 350])
def test_paper_policies_respect_max_cpu_and_their_plans_hold_under_the_profile(single_variant: bool, load: int) -> None:
    """Before, they gave one replica up to the 30-core budget, which a profile measured to 8 cores credits as 8."""
    spec = user_spec()
    plan = paper_plan(PaperModel.from_spec(spec, PROFILE_8), load, None, single_variant=single_variant)
    assert plan.status == "optimal"
    assert all(1.0 <= v.cpu_cores <= 8.0 and v.replicas <= 4 for v in plan.variants)
    assert plan.cost_cpu <= 30.0
    real = sum(PROFILE_8.capacity_rps(v.name, v.cpu_cores, v.replicas) for v in plan.variants)
    assert real >= load  # the paper's line (x 0.8) is below the profile's capacity inside the measured range
    if load >= 300:  # more than one replica of 8 cores serves
        assert any(v.replicas > 1 for v in plan.variants)


def test_the_paper_fallback_is_the_largest_size_within_the_bounds() -> None:
    plan = paper_plan(PaperModel.from_spec(user_spec(), PROFILE_8), 5000, None)
    assert plan.status == "infeasible"
    assert [(v.name, v.cpu_cores, v.replicas) for v in plan.variants] == [("resnet18", 8.0, 3)]
    assert "resnet18@8x3" in plan.notes[0]


def test_vpa_recommends_within_the_bounds_and_scales_out_past_max_cpu() -> None:
    policy = VpaPolicy(user_spec(), PROFILE_8, "resnet50")
    assert (policy.min_cores, policy.max_cores) == (1.0, 24.0)
    start = policy.initial_plan().variants[0]
    assert (start.cpu_cores, start.replicas) == (8.0, 3)
    big = policy.plan(13.0).variants[0]
    assert (big.cpu_cores, big.replicas, big.capacity_rps) == (8.0, 2, pytest.approx(160.0))
    assert policy.usage_cores(120.0, 8.0, 2) == pytest.approx(12.0)  # 0.1 core-s per request, over both replicas


def test_vpa_on_the_papers_spec_is_the_papers_vpa_object() -> None:
    policy = VpaPolicy(paper_spec(), linear_profile(PER_CORE), "resnet50")
    assert (policy.min_cores, policy.max_cores, policy.start_cores) == (2.0, 20.0, 20.0)


def test_static_beyond_max_cpu_becomes_replicas_with_a_note() -> None:
    policy = make_policy("static:resnet50@20", user_spec(), PROFILE_8)
    v = policy.initial_plan().variants[0]
    assert (v.cpu_cores, v.replicas) == (8.0, 3)
    assert policy.notes == ["20 cores within the spec's bounds: 8x3 cores"]


def test_a_size_outside_the_measured_range_is_warned_once_per_policy_and_variant() -> None:
    """maxCpu 16 on a profile measured to 8: VPA starts on 16 x 1 cores and the warning says so, once."""
    spec = user_spec(max_cpu=16, budget=16, max_replicas=1)
    trace = np.full(300, 30.0)
    runs = simulate(spec, PROFILE_8, trace, ["vpa:resnet50", "ours"])
    warnings = runs["vpa:resnet50"].warnings
    assert len(warnings) == 1
    assert warnings[0].startswith("vpa:resnet50: resnet50 at 16 cores is above the largest measured size (8 cores)")
    assert runs["ours"].warnings[0].startswith("ours: resnet152 at 16 cores")  # the default start: the most accurate on all it may have
    inside = simulate(user_spec(), PROFILE_8, trace, ["vpa:resnet50"])
    assert inside["vpa:resnet50"].warnings == []


GPU_ONLY = Profile(750.0, {**linear_profile(PER_CORE).points, "vit": (ProfilePoint(4.0, 150.0, gpus=1),)})


def _with_vit() -> InferenceServiceSpec:
    raw = paper_spec().to_dict()
    raw["variants"].append({"name": "vit", "accuracy": 0.81, "gpu": True})
    raw["budget"]["gpu"] = 1
    return parse_spec(raw)


def test_cpu_baselines_leave_out_a_variant_measured_only_on_gpus() -> None:
    spec = _with_vit()
    paper = make_policy("infadapter-paper", spec, GPU_ONLY)
    assert "vit" not in paper.model.names
    assert any("vit left out" in note for note in paper.notes)
    with pytest.raises(InvalidInput, match="no CPU size to recommend"):
        make_policy("vpa:vit", spec, GPU_ONLY)
    assert "vpa:vit" not in parse_policies("vpa", spec, GPU_ONLY)
    static = make_policy("static:vit@4", spec, GPU_ONLY).initial_plan().variants[0]
    assert (static.gpus, static.capacity_rps) == (1, 150.0)


def test_ours_takes_no_stop_gap_that_needs_new_replicas() -> None:
    """Replica-bound spec: growing resnet152 past maxCpu means new replicas (a cold start, like the full plan),
    so ours goes to the full plan at once instead of waiting for the stop-gap's replicas to serve."""
    spec = user_spec()
    policy = make_policy("ours", spec, PROFILE_8)
    current = make_policy("static:resnet152@8", spec, PROFILE_8).initial_plan()
    plan, stopgap = policy.choose(200.0, current, bursting=True)
    assert plan is not None and not stopgap
    assert plan.capacity_rps >= 200.0
    assert {v.name for v in plan.variants} != {"resnet152"}
    in_place = user_spec(max_cpu=30, max_replicas=1)  # the same growth in place is still a stop-gap
    policy = make_policy("ours", in_place, linear_profile(PER_CORE, max_cpu=30))
    current = make_policy("static:resnet152@8", in_place, linear_profile(PER_CORE, max_cpu=30)).initial_plan()
    plan, stopgap = policy.choose(200.0, current, bursting=True)
    assert stopgap and plan is not None and [v.name for v in plan.variants] == ["resnet152"]
