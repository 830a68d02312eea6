"""A time-limited or unfinished MILP run is reported as such: never "optimal", never "infeasible"."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace

import pulp
import pytest

from infadapter.planning import Plan, VariantPlan
from infadapter.planning.solve import plan_from_solution
from infadapter.solver import STATUSES, Problem, ResourceOption, ServiceProblem, VariantOptions, check, solve, solve_dp
from infadapter.solver import milp as milp_module
from infadapter.solver.milp import Outcome, outcome, solve_milp


def _joint(services: int, seed: int = 7) -> Problem:
    """Services of 5 variants x 1..20 cores sharing 12 cores each: seconds for HiGHS to prove, ms for the DP."""
    rng = random.Random(seed)
    per_core = (24.4, 13.0, 10.3, 5.1, 3.8)
    accuracy = (0.698, 0.733, 0.761, 0.774, 0.783)
    variants = tuple(
        VariantOptions(f"v{m}", accuracy[m], tuple(ResourceOption(c, 1, 0, per_core[m] * c * (1 - 0.01 * c)) for c in range(1, 21)), 6.0 + m) for m in range(5)
    )
    return Problem(tuple(ServiceProblem(f"s{i}", rng.uniform(10, 200), variants) for i in range(services)), budget_cpu=12.0 * services)


def test_outcome_reads_the_solution_status_not_only_the_overall_one() -> None:
    # PuLP gives a run its time limit stopped with an incumbent the overall status "Optimal"
    assert outcome(pulp.LpStatusOptimal, pulp.LpSolutionIntegerFeasible) == "incumbent"
    assert outcome(pulp.LpStatusOptimal, pulp.LpSolutionOptimal) == "optimal"
    assert outcome(pulp.LpStatusInfeasible, pulp.LpSolutionInfeasible) == "infeasible"
    assert outcome(pulp.LpStatusNotSolved, pulp.LpSolutionNoSolutionFound) == "unknown"
    assert outcome(pulp.LpStatusUndefined, pulp.LpSolutionNoSolutionFound) == "unknown"


@pytest.mark.parametrize("backend", ["highs", "cbc"])
def test_a_run_stopped_before_any_plan_claims_neither_optimal_nor_infeasible(backend: str) -> None:
    solution = solve(_joint(10), backend, time_limit_s=0.0)  # type: ignore[arg-type]
    assert solution.status == "time_limit"
    assert solution.services == ()
    assert any("time limit" in note for note in solution.notes)
    assert not any("no plan fits" in note for note in solution.notes)


def test_a_time_limited_highs_run_on_a_big_joint_problem_is_not_called_optimal() -> None:
    problem = _joint(20)
    optimum = solve_dp(problem)
    solution = solve(problem, "highs", time_limit_s=0.3)
    assert solution.status in ("feasible", "time_limit")  # HiGHS needs several seconds to prove this one
    if solution.services:
        assert check(problem, solution) == []
        assert solution.objective <= optimum.objective + 1e-9
    assert any("time limit" in note for note in solution.notes)


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Outcome | None]]:
    """Each run solves for real; a script entry (None: the real outcome) replaces what it reports."""
    script: list[Outcome | None] = []
    real = milp_module._run

    def run(model: pulp.LpProblem, backend: milp_module.Backend, time_limit_s: float | None) -> Outcome:
        found = real(model, backend, time_limit_s)
        forced = script.pop(0) if script else None
        return forced or found

    monkeypatch.setattr(milp_module, "_run", run)
    yield script


def _small(load_rps: float) -> Problem:
    fast = VariantOptions("fast", 0.70, (ResourceOption(1, 1, 0, 20), ResourceOption(2, 1, 0, 40), ResourceOption(4, 1, 0, 80)), 5.0)
    slow = VariantOptions("slow", 0.80, (ResourceOption(1, 1, 0, 5), ResourceOption(2, 1, 0, 10), ResourceOption(4, 1, 0, 20)), 8.0)
    return Problem.single(ServiceProblem("svc", load_rps, (fast, slow), 0.05, 0.0), 6)


def test_an_incumbent_serving_all_the_load_is_feasible(scripted: list[Outcome | None]) -> None:
    scripted.append("incumbent")
    solution = solve_milp(_small(30.0))
    assert solution.status == "feasible"
    assert check(_small(30.0), solution) == []
    assert solution.services[0].served_rps == pytest.approx(30.0)


def test_when_the_first_run_finds_nothing_the_most_served_plan_stands_in_as_feasible(scripted: list[Outcome | None]) -> None:
    scripted.append("unknown")  # the demand model ran out of time; the max-served model then shows the load fits
    solution = solve_milp(_small(30.0))
    assert solution.status == "feasible"
    assert check(_small(30.0), solution) == []


def test_an_overload_whose_best_plan_is_unproven_is_time_limit_not_infeasible(scripted: list[Outcome | None]) -> None:
    scripted.extend([None, None, "incumbent"])  # proven overloaded, most served proven, best of those unproven
    solution = solve_milp(_small(500.0))
    assert solution.status == "time_limit"
    assert solution.services[0].served_rps == pytest.approx(90.0)  # fast@4 + slow@2, the most 6 cores serve
    assert check(_small(500.0), solution) == []


def test_an_overload_whose_most_served_is_unknown_says_so(scripted: list[Outcome | None]) -> None:
    scripted.extend([None, "unknown"])
    solution = solve_milp(_small(500.0))
    assert solution.status == "time_limit"
    assert solution.services == ()
    assert not any("no plan fits" in note for note in solution.notes)


def test_an_overload_solved_to_the_end_is_still_infeasible(scripted: list[Outcome | None]) -> None:
    solution = solve_milp(_small(500.0))
    assert solution.status == "infeasible"
    assert solution.services[0].served_rps == pytest.approx(90.0)


def test_checker_refuses_a_feasible_claim_that_does_not_serve_the_load() -> None:
    problem = _small(30.0)
    good = solve(problem)
    service = good.services[0]
    halved = replace(service, assignments=tuple(replace(a, load_rps=a.load_rps / 2) for a in service.assignments))
    assert any("'feasible' but serves" in issue for issue in check(problem, replace(good, status="feasible", services=(halved,))))


@pytest.mark.parametrize("status", STATUSES)
def test_a_plan_keeps_its_status_and_backend_through_its_record(status: str) -> None:
    plan = Plan((VariantPlan("fast", 2.0, weight=1.0, capacity_rps=40.0),), status, backend="highs")  # type: ignore[arg-type]
    again = Plan.from_dict(plan.to_dict())
    assert (again.status, again.backend) == (status, "highs")


def test_a_plan_from_a_solution_carries_its_status_and_backend() -> None:
    solution = solve(_small(30.0), "cbc")
    plan = plan_from_solution(solution.services[0], "feasible", {"fast": 0.7, "slow": 0.8}, solution.solve_s, backend=solution.backend)
    assert (plan.status, plan.backend) == ("feasible", "cbc")
