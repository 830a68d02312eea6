"""Several accelerator types with prices: the spec, the profile, the exact methods and the hardware choice."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infadapter.errors import InvalidProfile, InvalidSpec
from infadapter.planning import plan_for_load
from infadapter.planning.hardware import recommend
from infadapter.profiles import profile_from_dict
from infadapter.solver import Problem, ResourceOption, ServiceProblem, VariantOptions, check, solve, solve_exhaustive, solve_milp
from infadapter.solver.evaluate import resources
from infadapter.solver.problem import Accelerator
from infadapter.spec import parse_spec

SPEC: dict[str, Any] = {
    "variants": [
        {"name": "small", "accuracy": 0.70},
        {"name": "big", "accuracy": 0.78, "accelerators": ["t4", "a100"]},
    ],
    "slo": {"latencyMs": 750},
    "objective": {"costWeight": 0.05},
    "budget": {"cpu": 32, "cpuPrice": 0.04},
    "accelerators": [
        {"name": "t4", "count": 2, "price": 0.35, "nodeSelector": {"gpu": "t4"}},
        {"name": "a100", "count": 2, "price": 2.9, "resource": "nvidia.com/gpu"},
    ],
    "resources": {"cpuStep": 1, "minCpu": 1, "maxCpu": 8, "maxReplicas": 4},
}
PROFILE: dict[str, Any] = {
    "kind": "Profile",
    "sloMs": 750,
    "variants": {
        "small": [{"cpu": 1, "capacityRps": 20}, {"cpu": 8, "capacityRps": 160}],
        "big": [
            {"cpu": 1, "capacityRps": 3},
            {"cpu": 8, "capacityRps": 28},
            {"cpu": 2, "gpus": 1, "accelerator": "t4", "capacityRps": 160},
            {"cpu": 4, "gpus": 1, "accelerator": "a100", "capacityRps": 800},
        ],
    },
}


def _spec(**changes: Any) -> Any:
    return parse_spec({**SPEC, **changes})


def test_each_variant_runs_as_one_deployment_per_kind_of_hardware() -> None:
    spec = _spec(variants=[{"name": "small", "accuracy": 0.70, "accelerators": []}, SPEC["variants"][1]])
    assert spec.variant_names == ["small", "big", "big-t4", "big-a100"]
    assert spec.accelerator("big-t4") is not None and spec.accelerator("big-t4").node_selector == {"gpu": "t4"}  # type: ignore[union-attr]
    assert spec.accelerator("big") is None and spec.base_variant("big-a100") == "big"
    assert spec.variant("big-a100").accuracy == 0.78 and spec.variant("big-a100").name == "big-a100"
    assert spec.prices("big-a100") == (0.04, 2.9) and spec.prices("small") == (0.04, 10.0)
    # without a list a variant may run on every declared type
    assert _spec().variant_names == ["small", "big", "small-t4", "small-a100", "big-t4", "big-a100"]


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"variants": [{"name": "a", "accuracy": 0.7, "accelerators": ["v100"]}]}, "does not declare"),
        ({"accelerators": [{"name": "gpu", "count": 1, "price": 1}]}, "reserved"),
        ({"accelerators": [{"name": "t4", "count": 1, "price": 1}, {"name": "t4", "count": 2, "price": 1}]}, "used twice"),
        ({"variants": [{"name": "a", "accuracy": 0.7}, {"name": "a-t4", "accuracy": 0.7}]}, "rename"),
        ({"accelerators": [{"name": "t4", "count": 1, "price": 0}]}, "price"),
        ({"accelerators": [{"name": "t4", "count": 1}]}, "price"),
        ({"budget": {"cpu": 8, "cpuPrice": -1}}, "cpuPrice"),
    ],
    ids=["undeclared", "reserved", "twice", "clash", "free", "no-price", "negative-cpu-price"],
)
def test_a_bad_accelerator_declaration_is_refused_naming_it(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        _spec(**changes)
    assert words in str(caught.value)


def test_profile_points_on_a_named_type_size_that_deployment_and_round_trip() -> None:
    profile = profile_from_dict(PROFILE)
    assert profile.capacity_rps("big-t4", 2, 3, 1) == pytest.approx(480)
    assert profile.gpu_counts("big-a100") == [1] and not profile.runs_on_cpu("big-a100")
    assert profile.gpu_counts("big") == [] and profile.measured("big-t4") and not profile.measured("small-t4")
    assert profile_from_dict(profile.to_dict()).to_dict() == profile.to_dict()
    bad = {**PROFILE, "variants": {"big": [{"cpu": 2, "accelerator": "t4", "capacityRps": 1}, {"cpu": 2, "gpus": 1, "accelerator": "Bad!", "capacityRps": 1}]}}
    with pytest.raises(InvalidProfile) as caught:
        profile_from_dict(bad)
    text = str(caught.value)
    assert "variants.big[0].accelerator" in text and "gpus >= 1" in text and "variants.big[1].accelerator" in text


def test_the_planner_picks_the_cheapest_hardware_and_follows_the_prices() -> None:
    profile = profile_from_dict(PROFILE)
    plan = plan_for_load(_spec(), profile, 300)
    assert {v.name: (v.hardware, v.replicas) for v in plan.variants} == {"big-t4": ("t4", 2)}
    assert plan.cost == pytest.approx(2 * (2 * 0.04 + 0.35)) and plan.cost_gpu == 2
    # the same load when a T4 costs more than an A100: one A100 serves it
    dear = [{"name": "t4", "count": 2, "price": 5.0}, {"name": "a100", "count": 2, "price": 2.9}]
    plan = plan_for_load(_spec(accelerators=dear), profile, 300)
    assert {v.name: v.hardware for v in plan.variants} == {"big-a100": "a100"}


def test_one_variant_serves_from_several_kinds_of_hardware_within_each_count() -> None:
    profile = profile_from_dict(PROFILE)
    plan = plan_for_load(_spec(), profile, 1000)  # 2 T4s give 320 rps, one A100 800: both are needed
    by_name = {v.name: v for v in plan.variants}
    assert plan.status == "optimal" and {"big-t4", "big-a100"} <= set(by_name)
    assert by_name["big-t4"].replicas <= 2 and by_name["big-a100"].replicas <= 2
    assert plan.accuracy == pytest.approx(0.78)
    over = plan_for_load(_spec(), profile, 5000)  # past every count: the most it can serve, flagged
    assert over.status == "infeasible"
    assert sum(v.replicas for v in over.variants if v.hardware == "t4") <= 2
    assert sum(v.replicas for v in over.variants if v.hardware == "a100") <= 2


def test_the_hardware_recommended_for_a_variant_is_the_cheapest_that_serves_it_all() -> None:
    profile = profile_from_dict(PROFILE)
    choices = recommend(_spec(), profile, 300)
    big = choices["big"]
    assert [c.hardware for c in big] == ["t4", "a100", "cpu"]
    assert big[0].serves_all and big[0].replicas == 2 and big[0].cost == pytest.approx(2 * (2 * 0.04 + 0.35))
    assert not big[2].serves_all and big[2].served_rps == pytest.approx(4 * 28)
    assert [c.hardware for c in choices["small"]] == ["cpu"] and choices["small"][0].serves_all


@st.composite
def _typed_problems(draw: st.DrawFn) -> Problem:
    """Services whose deployments each run on CPU, the default GPU or one of two named types, at random prices."""
    kinds = ["", "", "x", "y"]
    services = []
    for s in range(draw(st.integers(1, 2))):
        variants = []
        for m in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from(kinds))
            gpus = 0 if kind == "" and draw(st.booleans()) else 1
            cores = draw(st.integers(1, 3))
            per = draw(st.integers(5, 300)) / 10.0
            options = tuple(ResourceOption(float(cores), r, gpus, round(per * r, 3), kind if gpus else "") for r in (1, 2))
            variants.append(VariantOptions(f"v{m}", draw(st.integers(500, 950)) / 1000.0, options, draw(st.integers(0, 30)) / 10.0))
        alpha = draw(st.sampled_from([0.0, 0.05, 0.5]))
        services.append(ServiceProblem(f"s{s}", draw(st.integers(0, 80_000)) / 1000.0, tuple(variants), alpha, 0.001))
    types = (
        Accelerator("x", draw(st.integers(0, 3)), draw(st.integers(1, 50)) / 10.0),
        Accelerator("y", draw(st.integers(0, 3)), draw(st.integers(1, 50)) / 10.0),
    )
    return Problem(
        tuple(services), float(draw(st.integers(1, 10))), draw(st.integers(0, 3)), types, draw(st.integers(1, 20)) / 10.0, draw(st.integers(1, 100)) / 10.0
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_typed_problems())
def test_with_accelerator_types_the_milp_equals_the_oracle_and_checks(problem: Problem) -> None:
    oracle = solve_exhaustive(problem)
    for solution in (solve_milp(problem, "highs"), solve(problem)):
        assert solution.status == oracle.status
        assert solution.objective == pytest.approx(oracle.objective, abs=1e-6)
        if solution.services:
            assert check(problem, solution) == []
            assert not problem.over_budget(a.option for s in solution.services for a in s.assignments)
        if all(s.cost_weight == 0 for s in problem.services) and oracle.services:
            assert resources(problem, solution.services)[0] == pytest.approx(resources(problem, oracle.services)[0], abs=1e-9)


def test_the_checker_counts_each_type_against_its_own_budget() -> None:
    option = ResourceOption(1.0, 2, 1, 100.0, "x")
    service = ServiceProblem("s", 50.0, (VariantOptions("v", 0.8, (option,)),))
    problem = Problem((service,), 8.0, 4, (Accelerator("x", 1, 2.0),))
    assert problem.over_budget([option]) == ["2 x over the budget 1"]
    roomy = replace(problem, accelerators=(Accelerator("x", 2, 2.0),))
    solution = solve(roomy)
    assert solution.status == "optimal" and check(roomy, solution) == []
    assert solution.services[0].cost == pytest.approx(2 * 1.0 + 2 * 2.0)
    # the cost term is the price over the price of the whole budget: (2 + 4) / (8 + 4 x 10 + 2 x 2)
    assert roomy.cost_term([option]) == pytest.approx(6.0 / 52.0)


BATCHED: dict[str, Any] = {
    **PROFILE,
    "variants": {
        "small": PROFILE["variants"]["small"],
        "big": [
            *PROFILE["variants"]["big"],
            {"cpu": 8, "maxBatchSize": 4, "capacityRps": 40},
            {"cpu": 2, "gpus": 1, "accelerator": "t4", "maxBatchSize": 8, "capacityRps": 400},
        ],
    },
}


def _batched(**changes: Any) -> Any:
    variants = [SPEC["variants"][0], {**SPEC["variants"][1], "batchSizes": [4, 8]}]
    return _spec(variants=variants, **changes)


def test_each_batch_size_is_a_deployment_beside_each_of_the_variants_own() -> None:
    spec = _batched()
    assert [n for n in spec.variant_names if n.startswith("big")] == [
        "big",
        "big-t4",
        "big-a100",
        "big-b4",
        "big-t4-b4",
        "big-a100-b4",
        "big-b8",
        "big-t4-b8",
        "big-a100-b8",
    ]
    assert spec.batch("big-t4-b8") == 8 and spec.accelerator("big-t4-b8").name == "t4"  # type: ignore[union-attr]
    assert spec.batch("big") == 0 and spec.base_variant("big-a100-b4") == "big"
    with pytest.raises(InvalidSpec, match="twice"):
        _spec(variants=[{"name": "a", "accuracy": 0.7, "batchSizes": [4, 4]}])
    with pytest.raises(InvalidSpec, match="rename it"):
        _spec(variants=[{"name": "a", "accuracy": 0.7, "batchSizes": [4]}, {"name": "a-t4-b4", "accuracy": 0.7}])


def test_the_planner_picks_the_batch_size_whose_capacity_serves_cheapest() -> None:
    profile = profile_from_dict(BATCHED)
    assert profile.capacity_rps("big-t4-b8", 2, 1, 1) == 400 and profile.capacity_rps("big-b4", 8) == 40
    plan = plan_for_load(_batched(), profile, 700)
    # batching 8 on a T4 serves 400 rps where unbatched serves 160: two batched T4s instead of every T4 and an A100
    assert {v.name: v.replicas for v in plan.variants} == {"big-t4-b8": 2}
    assert plan.cost == pytest.approx(2 * (2 * 0.04 + 0.35))
    unbatched = plan_for_load(_spec(), profile, 700)
    assert unbatched.cost > plan.cost
    choices = recommend(_batched(), profile, 700)["big"]
    assert (choices[0].hardware, choices[0].batch, choices[0].deployment) == ("t4", 8, "big-t4-b8")


def test_the_transition_cap_counts_every_types_gpus_together_as_a_quota_does() -> None:
    from infadapter.control.budget import Cap

    spec = _spec(budget={"cpu": 32, "gpu": 1, "surge": 0.25})  # t4 x2 and a100 x2 beside one default GPU
    assert Cap.of(spec, 0.25) == Cap(40.0, 6.0)  # floor((1 + 2 + 2) x 1.25)
    plan = plan_for_load(_spec(), profile_from_dict(PROFILE), 1000)
    assert plan.cost_gpu >= 2 and Cap.of(_spec(), 0.0).holds(plan.cost_cpu, plan.cost_gpu)  # a plan within its counts fits
