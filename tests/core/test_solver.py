"""The MILP is exact (equals exhaustive search), checked, deterministic and never raises on overload."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from infadapter.solver import (
    Assignment,
    NotApplicable,
    Problem,
    ResourceOption,
    ServiceProblem,
    ServiceSolution,
    Solution,
    VariantOptions,
    check,
    solve,
    solve_dp,
    solve_exhaustive,
    solve_milp,
)
from tests.core.strategies import problems


def _small() -> ServiceProblem:
    fast = VariantOptions("fast", 0.70, (ResourceOption(1, 1, 0, 20), ResourceOption(2, 1, 0, 40), ResourceOption(4, 1, 0, 80)), 5.0)
    slow = VariantOptions("slow", 0.80, (ResourceOption(1, 1, 0, 5), ResourceOption(2, 1, 0, 10), ResourceOption(4, 1, 0, 20)), 8.0)
    return ServiceProblem("svc", 30.0, (fast, slow), cost_weight=0.05, transition_weight=0.0)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(max_services=1))
def test_milp_equals_exhaustive_on_random_single_services(problem: Problem) -> None:
    milp = solve_milp(problem, "highs")
    oracle = solve_exhaustive(problem)
    assert milp.status == oracle.status
    if oracle.services:
        assert milp.objective == pytest.approx(oracle.objective, abs=1e-6)
        served_milp = sum(s.served_rps for s in milp.services)
        served_oracle = sum(s.served_rps for s in oracle.services)
        assert served_milp == pytest.approx(served_oracle, abs=1e-5)
        assert check(problem, milp) == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(max_services=3))
def test_joint_solve_equals_exhaustive_under_a_shared_budget(problem: Problem) -> None:
    milp = solve_milp(problem, "cbc")
    oracle = solve_exhaustive(problem)
    assert milp.status == oracle.status
    if oracle.services:
        assert milp.objective == pytest.approx(oracle.objective, abs=1e-6)
        assert check(problem, milp) == []


def test_cbc_and_highs_agree() -> None:
    problem = Problem.single(_small(), 6)
    assert solve(problem, "cbc").objective == pytest.approx(solve(problem, "highs").objective, abs=1e-9)


def test_overload_returns_the_plan_serving_the_most_flagged_infeasible() -> None:
    service = _small()
    overloaded = ServiceProblem(service.name, 500.0, service.variants, service.cost_weight, 0.0)
    solution = solve(Problem.single(overloaded, 4))
    assert solution.status == "infeasible"
    assert solution.services[0].served_rps == pytest.approx(80.0)  # fast@4 is the most 4 cores can serve
    assert [a.variant for a in solution.services[0].assignments] == ["fast"]
    assert check(Problem.single(overloaded, 4), solution) == []


def test_split_fills_the_most_accurate_variant_first() -> None:
    solution = solve(Problem.single(_small(), 8))
    loads = {a.variant: a.load_rps for a in solution.services[0].assignments}
    slow = next(a for a in solution.services[0].assignments if a.variant == "slow")
    assert loads["slow"] == pytest.approx(min(30.0, slow.option.capacity_rps))
    assert sum(loads.values()) == pytest.approx(30.0)


def test_same_problem_gives_the_same_plan_every_time() -> None:
    problem = Problem.single(_small(), 6)
    first = solve(problem)
    for _ in range(5):
        again = solve(problem)
        assert again.services == first.services


def test_transition_weight_keeps_the_running_size_when_it_is_worth_it() -> None:
    service = _small()
    running = VariantOptions("fast", 0.70, service.variants[0].options, 5.0, current=ResourceOption(4, 1, 0, 80))
    sticky = ServiceProblem("svc", 30.0, (running, service.variants[1]), cost_weight=0.01, transition_weight=1.0)
    solution = solve(Problem.single(sticky, 6))
    assert [(a.variant, a.option.cpu_cores) for a in solution.services[0].assignments] == [("fast", 4.0)]


def test_gpu_options_use_their_own_budget() -> None:
    cpu_only = VariantOptions("big", 0.8, (ResourceOption(4, 1, 0, 10), ResourceOption(2, 1, 1, 200)), 5.0)
    service = ServiceProblem("svc", 150.0, (cpu_only,), 0.05, 0.0)
    with_gpu = solve(Problem((service,), budget_cpu=8, budget_gpu=1))
    assert with_gpu.status == "optimal"
    assert with_gpu.services[0].assignments[0].option.gpus == 1
    without_gpu = solve(Problem((service,), budget_cpu=8, budget_gpu=0))
    assert without_gpu.status == "infeasible"


def test_replicas_multiply_capacity_and_cost() -> None:
    v = VariantOptions("v", 0.8, (ResourceOption(1, 1, 0, 10), ResourceOption(1, 3, 0, 30)), 1.0)
    solution = solve(Problem.single(ServiceProblem("svc", 25.0, (v,), 0.05, 0.0), 4))
    (a,) = solution.services[0].assignments
    assert (a.option.replicas, a.option.cost_cpu) == (3, 3)


def test_checker_rejects_over_capacity_over_budget_and_a_wrong_objective() -> None:
    problem = Problem.single(_small(), 4)
    good = solve(problem)
    assert check(problem, good) == []
    opt = ResourceOption(4, 1, 0, 80)
    bad_capacity = ServiceSolution("svc", (Assignment("fast", ResourceOption(1, 1, 0, 20), 30.0),), 30, 30, 0.7, 1, 0, 0, 0.0)
    assert any("over capacity" in i for i in check(problem, Solution("optimal", (bad_capacity,), 0.0)))
    over_budget = ServiceSolution("svc", (Assignment("fast", opt, 15.0), Assignment("slow", ResourceOption(4, 1, 0, 20), 15.0)), 30, 30, 0.75, 8, 0, 0, 0.0)
    assert any("over the budget" in i for i in check(problem, Solution("optimal", (over_budget,), 0.0)))
    wrong = ServiceSolution("svc", (Assignment("fast", opt, 30.0),), 30, 30, 0.7, 4, 0, 0, 0.9)
    assert any("recomputed" in i for i in check(problem, Solution("optimal", (wrong,), 0.9)))


def test_zero_load_still_keeps_one_instance() -> None:
    service = ServiceProblem("svc", 0.0, _small().variants, 0.05, 0.0)
    solution = solve(Problem.single(service, 8))
    assert solution.status == "optimal"
    assert len(solution.services[0].assignments) == 1
    assert solution.services[0].cost_cpu == 1.0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(max_services=1))
def test_dynamic_program_equals_exhaustive_on_random_single_services(problem: Problem) -> None:
    dp = solve_dp(problem)
    oracle = solve_exhaustive(problem)
    assert dp.status == oracle.status
    if oracle.services:
        assert dp.objective == pytest.approx(oracle.objective, abs=1e-6)
        assert sum(s.served_rps for s in dp.services) == pytest.approx(sum(s.served_rps for s in oracle.services), abs=1e-5)
        assert check(problem, dp) == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(max_services=3))
def test_dynamic_program_equals_milp_under_a_shared_budget(problem: Problem) -> None:
    dp = solve_dp(problem)
    milp = solve_milp(problem, "highs")
    assert dp.status == milp.status
    if milp.services:
        assert dp.objective == pytest.approx(milp.objective, abs=1e-6)
        assert check(problem, dp) == []


def test_gpu_problems_go_to_the_milp() -> None:
    v = VariantOptions("v", 0.8, (ResourceOption(2, 1, 1, 200),), 1.0)
    problem = Problem((ServiceProblem("svc", 100.0, (v,), 0.05, 0.0),), budget_cpu=4, budget_gpu=1)
    with pytest.raises(NotApplicable):
        solve_dp(problem)
    assert solve(problem, "auto").status == "optimal"


@pytest.mark.parametrize("backend", ["auto", "dp", "highs", "cbc"])
def test_every_backend_gives_the_same_objective(backend: str) -> None:
    problem = Problem.single(_small(), 6)
    reference = solve_exhaustive(problem).objective
    assert solve(problem, backend).objective == pytest.approx(reference, abs=1e-9)  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["highs", "cbc", "dp"])
def test_joint_overload_serves_the_most_on_every_backend(backend: str) -> None:
    """A case where HiGHS without presolve called a non-optimal max-served model optimal."""
    ro = ResourceOption
    small = ServiceProblem("s0", 0.194, (VariantOptions("v0", 0.5, (ro(1, 1, 0, 0.06), ro(2, 1, 0, 0.12), ro(3, 1, 0, 0.18), ro(5, 1, 0, 0.3))),), 0.0, 0.0)
    tiny = ServiceProblem("s1", 0.001, (VariantOptions("v0", 0.5, (ro(1, 1, 0, 0.06),)),), 0.0, 0.0)
    big = ServiceProblem(
        "s2",
        30.079,
        (VariantOptions("v0", 0.5, (ro(2, 1, 0, 2.196),)), VariantOptions("v1", 0.5, tuple(ro(c, 1, 0, 9.9 * c) for c in (1, 2, 3, 4)))),
        0.0,
        0.0,
    )
    problem = Problem((small, tiny, big), budget_cpu=8.0)
    solution = solve(problem, backend)  # type: ignore[arg-type]
    assert solution.status == "infeasible"
    assert sum(s.served_rps for s in solution.services) == pytest.approx(30.26)
    assert solution.objective == pytest.approx(solve_exhaustive(problem).objective, abs=1e-9)
