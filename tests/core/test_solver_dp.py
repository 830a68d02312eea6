"""The dynamic program stays exact with replicas, required variants, bounding and chunking, and
``auto`` answers with the faster exact method, naming it."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import infadapter.solver as solver_module
from infadapter.solver import (
    NotApplicable,
    Problem,
    ResourceOption,
    ServiceProblem,
    Solution,
    TooLarge,
    VariantOptions,
    check,
    solve,
    solve_dp,
    solve_exhaustive,
    solve_milp,
)
from infadapter.solver import dp as dp_module
from infadapter.solver import labels as labels_module

PER_CORE = (24.4, 13.0, 10.3, 5.1, 3.8)  # the paper's ResNets, roughly
ACCURACY = (0.698, 0.733, 0.761, 0.774, 0.783)


def _replicated(load_rps: float, max_replicas: int, budget: float, current: ResourceOption | None = None) -> Problem:
    """The paper's service with 2..20 cores and 1..``max_replicas`` replicas per variant."""
    variants = tuple(
        VariantOptions(
            f"resnet{m}",
            ACCURACY[m],
            tuple(ResourceOption(c, r, 0, r * PER_CORE[m] * c * (1 - 0.01 * c)) for c in range(2, 21) for r in range(1, max_replicas + 1) if c * r <= budget),
            6.0 + m,
            current=current if m == 4 else None,
        )
        for m in range(5)
    )
    return Problem.single(ServiceProblem("svc", load_rps, variants, 0.05, 0.001), budget)


def _same(a: Solution, b: Solution) -> None:
    assert a.status == b.status
    assert a.objective == pytest.approx(b.objective, abs=1e-6)
    assert sum(s.served_rps for s in a.services) == pytest.approx(sum(s.served_rps for s in b.services), abs=1e-5)


@st.composite
def _variants(draw: st.DrawFn, name: str) -> VariantOptions:
    sizes = sorted(draw(st.lists(st.integers(1, 6), min_size=1, max_size=3, unique=True)))
    replicas = draw(st.integers(1, 4))
    per_core = draw(st.integers(5, 300)) / 10.0
    options = tuple(
        ResourceOption(float(c), r, 0, round(per_core * c * r * draw(st.integers(60, 100)) / 100.0, 3)) for c in sizes for r in range(1, replicas + 1)
    )
    return VariantOptions(
        name,
        draw(st.integers(500, 950)) / 1000.0,
        options,
        draw(st.integers(0, 100)) / 10.0,
        current=draw(st.one_of(st.none(), st.sampled_from(options))),
        required=draw(st.sampled_from([False, False, False, True])),
    )


@st.composite
def _problems(draw: st.DrawFn, max_services: int, max_variants: int) -> Problem:
    services = tuple(
        ServiceProblem(
            f"s{i}",
            draw(st.integers(0, 400_000)) / 1000.0,
            tuple(draw(_variants(f"v{m}")) for m in range(draw(st.integers(1, max_variants)))),
            draw(st.sampled_from([0.0, 0.01, 0.05, 0.5])),
            draw(st.sampled_from([0.0, 0.001, 0.1])),
        )
        for i in range(draw(st.integers(1, max_services)))
    )
    return Problem(services, budget_cpu=float(draw(st.integers(1, 30))))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_problems(max_services=1, max_variants=3))
def test_dp_equals_exhaustive_with_replicas_and_required_variants(problem: Problem) -> None:
    oracle = solve_exhaustive(problem)
    dp = solve_dp(problem)
    _same(dp, oracle)
    if dp.services:
        assert check(problem, dp) == []


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_problems(max_services=3, max_variants=3))
def test_dp_equals_highs_on_joint_problems_with_replicas(problem: Problem) -> None:
    _same(solve_dp(problem), solve_milp(problem, "highs"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_problems(max_services=3, max_variants=3))
def test_growing_and_the_knapsack_in_tiny_chunks_change_nothing(problem: Problem) -> None:
    whole = solve_dp(problem)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(labels_module, "_GROW_CELLS", 3)
        patch.setattr(dp_module, "_CHUNK_CELLS", 5)
        chunked = solve_dp(problem)
    assert chunked.status == whole.status
    assert chunked.objective == pytest.approx(whole.objective, abs=1e-9)


@pytest.mark.parametrize(("load_rps", "budget"), [(40.0, 600.0), (2000.0, 600.0), (1500.0, 100.0), (3000.0, 100.0)])
def test_a_300_replica_service_is_solved_exactly_and_fast(load_rps: float, budget: float) -> None:
    problem = _replicated(load_rps, 300, budget, current=ResourceOption(20, 1, 0, 3.8 * 20 * 0.8))
    dp = solve(problem)
    assert dp.backend == "dp"
    assert dp.solve_s < 5.0  # tens of ms here; the DP before issue 15 took 30 s on such a problem
    _same(dp, solve_milp(problem, "highs"))


def test_joint_services_with_replicas_agree_with_highs() -> None:
    single = _replicated(0.0, 8, 60.0).services[0]
    services = tuple(ServiceProblem(f"s{i}", load, single.variants, 0.05, 0.001) for i, load in enumerate((150.0, 420.0, 75.0)))
    problem = Problem(services, budget_cpu=60.0)
    _same(solve(problem, "dp"), solve_milp(problem, "highs"))


def test_auto_names_the_dp_for_cpu_only_problems_and_highs_for_gpus() -> None:
    assert solve(_replicated(100.0, 1, 20.0)).backend == "dp"
    gpu = VariantOptions("v", 0.8, (ResourceOption(2, 1, 1, 200), ResourceOption(4, 1, 0, 40)), 1.0)
    assert solve(Problem((ServiceProblem("svc", 100.0, (gpu,)),), budget_cpu=4, budget_gpu=1)).backend == "highs"


def test_auto_hands_a_problem_past_the_dp_work_limit_to_highs(monkeypatch: pytest.MonkeyPatch) -> None:
    problem = _replicated(900.0, 10, 60.0)
    exact = solve(problem, "dp")
    monkeypatch.setattr(solver_module, "AUTO_DP_WORK", 50)
    handed = solve(problem)
    assert handed.backend == "highs"
    _same(handed, exact)


def test_the_dp_stops_at_its_work_limit_and_says_so() -> None:
    with pytest.raises(TooLarge) as info:
        solve_dp(_replicated(900.0, 10, 60.0), max_work=50)
    assert isinstance(info.value, NotApplicable)
    assert info.value.spent_s >= 0.0
