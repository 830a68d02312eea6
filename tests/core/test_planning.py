"""Planning from a spec and a profile; the paper scenario's acceptance loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from infadapter.cli.configuration import Size, parse_configuration
from infadapter.errors import InvalidInput
from infadapter.planning import Plan, cpu_grid, plan_for_load, service_problem, static_plan
from infadapter.planning.solve import plan_jointly
from infadapter.profiles import Profile, ProfilePoint, load_profile
from infadapter.solver import Problem, solve_exhaustive
from infadapter.spec import load_spec, parse_spec

PAPER_LOADS = [20, 50, 60, 100, 200, 250, 300]


def _spec():  # type: ignore[no-untyped-def]
    return parse_spec(
        {
            "variants": [{"name": "fast", "accuracy": 0.7, "loadTimeSeconds": 5}, {"name": "slow", "accuracy": 0.8, "loadTimeSeconds": 8}],
            "budget": {"cpu": 6},
            "resources": {"cpuStep": 0.5, "minCpu": 0.5, "maxCpu": 4},
        }
    )


def _profile() -> Profile:
    return Profile(750.0, {"fast": (ProfilePoint(1, 20), ProfilePoint(4, 80)), "slow": (ProfilePoint(1, 5), ProfilePoint(4, 20))})


def test_cpu_grid_follows_step_min_and_max() -> None:
    assert cpu_grid(_spec(), "fast") == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]


def test_plan_weights_sum_to_one_and_capacity_covers_the_load() -> None:
    plan = plan_for_load(_spec(), _profile(), 30.0)
    assert plan.status == "optimal"
    assert sum(plan.weights().values()) == pytest.approx(1.0)
    assert plan.capacity_rps >= 30.0 - 1e-6
    assert Plan.from_dict(plan.to_dict()).variants == plan.variants


def test_current_sizes_refuse_unknown_variants_and_bad_numbers() -> None:
    assert parse_configuration("fast=2, slow=1.5", _spec(), "--current") == {"fast": Size(2.0), "slow": Size(1.5)}
    with pytest.raises(InvalidInput) as info:
        parse_configuration("resnet9=2,fast=abc,slow=-1,oops", _spec(), "--current")
    assert len(info.value.errors) == 4


def test_joint_plan_shares_one_budget() -> None:
    spec, profile = _spec(), _profile()
    plans = plan_jointly({"a": (spec, profile, 40.0, None), "b": (spec, profile, 40.0, None)}, budget_cpu=4)
    assert sum(p.cost_cpu for p in plans.values()) <= 4
    assert all(p.status == "optimal" for p in plans.values())


@pytest.mark.parametrize("load", PAPER_LOADS)
def test_paper_scenario_objective_equals_the_exhaustive_optimum(paper_profile_path: Path, resnet_spec_path: Path, load: float) -> None:
    spec = load_spec(resnet_spec_path)
    profile = load_profile(paper_profile_path, slo_ms=750)
    current = static_plan(spec, profile, {"resnet152": 20})
    plan = plan_for_load(spec, profile, load, current)
    oracle = solve_exhaustive(Problem.single(service_problem(spec, profile, load, current), 20))
    assert plan.status == oracle.status == "optimal"
    assert plan.objective == pytest.approx(oracle.objective, abs=1e-9)
    assert plan.cost_cpu <= 20


def test_paper_60_rps_is_cheaper_than_the_papers_11_cores(paper_profile_path: Path, resnet_spec_path: Path) -> None:
    spec = load_spec(resnet_spec_path)
    profile = load_profile(paper_profile_path, slo_ms=750)
    plan = plan_for_load(spec, profile, 60, static_plan(spec, profile, {"resnet152": 20}))
    assert plan.cost_cpu < 11
