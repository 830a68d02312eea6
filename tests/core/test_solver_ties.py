"""Among plans of equal objective every method returns the cheapest, then the one with the fewest replicas.

At cost weight α = 0 many plans tie (any size that serves the load with the most accurate variant);
the DP, the MILP (HiGHS and CBC) and the exhaustive oracle must agree on the lowest cost term and, at
that cost, the fewest replicas.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infadapter.solver import Problem, ResourceOption, ServiceProblem, Solution, VariantOptions, check, solve, solve_dp, solve_exhaustive, solve_milp
from infadapter.solver.evaluate import resources
from tests.core.strategies import problems
from tests.core.test_solver_dp import _problems as replicated_problems


def _free(problem: Problem) -> Problem:
    """The same problem with α = 0: cost no longer counts, so only the tie-break keeps plans small."""
    return replace(problem, services=tuple(replace(s, cost_weight=0.0) for s in problem.services))


def _same_resources(problem: Problem, a: Solution, b: Solution) -> None:
    assert a.status == b.status
    assert a.objective == pytest.approx(b.objective, abs=1e-6)
    cost_a, replicas_a = resources(problem, a.services)
    cost_b, replicas_b = resources(problem, b.services)
    assert cost_a == pytest.approx(cost_b, abs=1e-9)
    assert replicas_a == replicas_b


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(replicated_problems(max_services=1, max_variants=3).map(_free))
def test_at_zero_cost_weight_dp_and_milp_return_the_oracles_cheapest_tie(problem: Problem) -> None:
    oracle = solve_exhaustive(problem)
    for solution in (solve_dp(problem), solve_milp(problem, "highs")):
        _same_resources(problem, solution, oracle)
        if solution.services:
            assert check(problem, solution) == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(max_services=3).map(_free))
def test_at_zero_cost_weight_joint_solves_agree_on_the_cheapest_tie(problem: Problem) -> None:
    oracle = solve_exhaustive(problem)
    for solution in (solve_dp(problem), solve_milp(problem, "highs"), solve_milp(problem, "cbc")):
        _same_resources(problem, solution, oracle)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(replicated_problems(max_services=3, max_variants=3).map(_free))
def test_at_zero_cost_weight_dp_and_highs_agree_on_joint_problems_with_replicas(problem: Problem) -> None:
    _same_resources(problem, solve_dp(problem), solve_milp(problem, "highs"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(replicated_problems(max_services=2, max_variants=3))
def test_at_any_cost_weight_the_dp_returns_the_oracles_cheapest_tie(problem: Problem) -> None:
    # with α > 0 the ties left are plans of one cost, e.g. 2 cores x 1 and 1 core x 2 serving the same load
    solution = solve_dp(problem)
    _same_resources(problem, solution, solve_exhaustive(problem))
    if solution.services:
        assert check(problem, solution) == []


@st.composite
def _gpu_variant(draw: st.DrawFn, name: str) -> VariantOptions:
    """A few (cores, GPUs) sizes with 1..2 replicas; capacity proportional to the replicas, GPUs worth more."""
    sizes = draw(st.lists(st.tuples(st.integers(1, 4), st.integers(0, 2)), min_size=1, max_size=3, unique=True))
    per_size = {size: draw(st.integers(5, 200)) / 10.0 for size in sizes}
    options = tuple(ResourceOption(float(c), r, g, round(per_size[(c, g)] * r * (c + 4 * g), 3)) for c, g in sizes for r in (1, 2))
    current = draw(st.one_of(st.none(), st.sampled_from(options)))
    return VariantOptions(name, draw(st.integers(500, 950)) / 1000.0, options, draw(st.integers(0, 50)) / 10.0, current=current)


@st.composite
def _gpu_problems(draw: st.DrawFn) -> Problem:
    services = tuple(
        ServiceProblem(f"s{i}", draw(st.integers(0, 120_000)) / 1000.0, tuple(draw(_gpu_variant(f"v{m}")) for m in range(draw(st.integers(1, 2)))), 0.0, 0.001)
        for i in range(draw(st.integers(1, 2)))
    )
    return Problem(services, budget_cpu=float(draw(st.integers(1, 12))), budget_gpu=draw(st.integers(0, 4)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_gpu_problems())
def test_with_gpus_at_zero_cost_weight_the_milp_returns_the_oracles_cheapest_tie(problem: Problem) -> None:
    # GPU costs have no common unit with cores: the MILP breaks the tie in two phases (cost, then replicas)
    oracle = solve_exhaustive(problem)
    for solution in (solve_milp(problem, "highs"), solve_milp(problem, "cbc")):
        _same_resources(problem, solution, oracle)
        if solution.services:
            assert check(problem, solution) == []


def _paper_like(load_rps: float) -> Problem:
    """The paper's five ResNets, 1..20 cores x 1..4 replicas, 20 cores, α = β = 0."""
    per_core = (24.4, 13.0, 10.3, 5.1, 3.8)
    accuracy = (0.698, 0.733, 0.761, 0.774, 0.783)
    variants = tuple(
        VariantOptions(
            f"resnet{m}",
            accuracy[m],
            tuple(ResourceOption(c, r, 0, r * per_core[m] * c * (1 - 0.01 * c)) for c in range(1, 21) for r in range(1, 5) if c * r <= 20),
            6.0 + m,
        )
        for m in range(5)
    )
    return Problem.single(ServiceProblem("svc", load_rps, variants, 0.0, 0.0), 20)


@pytest.mark.parametrize("backend", ["dp", "highs", "cbc"])
def test_a_light_load_at_zero_cost_weight_gets_the_smallest_plan(backend: str) -> None:
    # before the tie-break HiGHS answered 10 rps with five variants on 9 cores (all idle but one) and
    # CBC with four on 6; the DP with one replica of 1 core x 3, where 3 cores x 1 tie with fewer replicas
    solution = solve(_paper_like(10.0), backend)  # type: ignore[arg-type]
    assert solution.objective == pytest.approx(0.783)
    assert [(a.variant, a.option.cpu_cores, a.option.replicas) for a in solution.services[0].assignments] == [("resnet4", 3, 1)]


def test_ties_do_not_change_the_objective_or_the_load_served() -> None:
    problem = _paper_like(80.0)
    oracle_free = solve_milp(problem, "highs")
    assert oracle_free.status == "optimal"
    assert resources(problem, oracle_free.services) == resources(problem, solve_dp(problem).services)
    assert oracle_free.objective == pytest.approx(solve_dp(problem).objective, abs=1e-9)


@pytest.mark.parametrize("backend", ["highs", "cbc"])
@pytest.mark.parametrize("gpus", [0, 1])
@pytest.mark.parametrize("fewer_first", [True, False])
def test_at_a_cost_weight_above_zero_the_milp_holds_a_share_in_the_fewest_replicas(backend: str, gpus: int, fewer_first: bool) -> None:
    # "b" takes 65 of 100 rps; "a" must hold the other 35, which 1 x (2 cores [+ 2 GPUs]) at 40 rps and
    # 2 x (1 core [+ 1 GPU]) at 50 rps both do at the same cost. Before the swap pass HiGHS and CBC each
    # answered 2 replicas in one of the two option orders
    one = ResourceOption(2.0, 1, 2 * gpus, 40.0)
    two = ResourceOption(1.0, 2, gpus, 50.0)
    a = VariantOptions("a", 0.7, (one, two) if fewer_first else (two, one), 5.0)
    b = VariantOptions("b", 0.9, (ResourceOption(2.0, 1, 0, 65.0),), 5.0)
    problem = Problem.single(ServiceProblem("s", 100.0, (b, a), 0.05, 0.001), 4.0, budget_gpu=2 * gpus)
    solution = solve_milp(problem, backend)  # type: ignore[arg-type]
    oracle = solve_exhaustive(problem)
    assert solution.status == "optimal"
    _same_resources(problem, solution, oracle)
    assert [(x.variant, x.option, x.load_rps) for x in solution.services[0].assignments] == [("b", b.options[0], 65.0), ("a", one, 35.0)]
    assert check(problem, solution) == []
