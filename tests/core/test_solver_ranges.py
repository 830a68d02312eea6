"""The MILP's replica ranges (one size = a binary and an integer count) give the same optimum as one binary
per option, with transitions, required variants, GPUs and loads the budget cannot serve."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infadapter.solver import Problem, ResourceOption, ServiceProblem, Solution, VariantOptions, check, milp_model, solve_dp, solve_milp
from infadapter.solver.milp_model import split_options


def _same(a: Solution, b: Solution) -> None:
    assert a.status == b.status
    assert a.objective == pytest.approx(b.objective, abs=1e-6)
    assert sum(s.served_rps for s in a.services) == pytest.approx(sum(s.served_rps for s in b.services), abs=1e-5)


@st.composite
def _variant(draw: st.DrawFn, name: str, gpus: bool) -> VariantOptions:
    sizes = sorted(draw(st.lists(st.integers(1, 6), min_size=1, max_size=3, unique=True)))
    top = draw(st.integers(milp_model.MIN_RANGE, 30))
    per_core = draw(st.integers(5, 300)) / 10.0
    gpu = draw(st.sampled_from([0, 1])) if gpus else 0
    options = tuple(ResourceOption(float(c), r, gpu, per_core * c * r) for c in sizes for r in range(1, top + 1))
    current = draw(st.one_of(st.none(), st.sampled_from(options)))
    return VariantOptions(
        name,
        draw(st.integers(500, 950)) / 1000.0,
        options,
        draw(st.integers(0, 100)) / 10.0,
        current=current,
        required=draw(st.sampled_from([False, False, True])),
    )


@st.composite
def _problems(draw: st.DrawFn, gpus: bool = False) -> Problem:
    variants = tuple(draw(_variant(f"v{m}", gpus)) for m in range(draw(st.integers(1, 3))))
    services = (
        ServiceProblem(
            "s", draw(st.integers(0, 3_000_000)) / 1000.0, variants, draw(st.sampled_from([0.0, 0.05, 0.5])), draw(st.sampled_from([0.0, 0.001, 0.1]))
        ),
    )
    return Problem(services, budget_cpu=float(draw(st.integers(1, 120))), budget_gpu=draw(st.integers(0, 20)) if gpus else 0)


def _as_binaries(problem: Problem) -> Solution:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(milp_model, "MIN_RANGE", 10**9)
        return solve_milp(problem, "highs")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_problems())
def test_ranges_give_the_dps_optimum(problem: Problem) -> None:
    ranged = solve_milp(problem, "highs")
    _same(ranged, solve_dp(problem))
    if ranged.services:
        assert check(problem, ranged) == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_problems(gpus=True))
def test_ranges_with_gpus_give_the_binaries_optimum(problem: Problem) -> None:
    ranged = solve_milp(problem, "highs")
    _same(ranged, _as_binaries(problem))
    if ranged.services:
        assert check(problem, ranged) == []


def test_only_long_proportional_contiguous_sizes_become_ranges() -> None:
    long = tuple(ResourceOption(2.0, r, 0, 10.0 * r) for r in range(1, 13))
    short = tuple(ResourceOption(4.0, r, 0, 20.0 * r) for r in range(1, 4))
    bent = tuple(ResourceOption(6.0, r, 0, 30.0 * r**0.9) for r in range(1, 13))
    gap = tuple(ResourceOption(8.0, r, 0, 40.0 * r) for r in range(1, 14) if r != 5)
    ranges, singles = split_options(VariantOptions("v", 0.7, long + short + bent + gap))
    assert [(g.per_replica.cpu_cores, g.lo, g.hi, g.capacity()) for g in ranges] == [(2.0, 1, 12, 10.0)]
    assert singles == [*short, *bent, *gap], "in the given order"


def test_a_grown_range_of_the_running_size_counts_as_a_transition() -> None:
    running = ResourceOption(2.0, 10, 0, 200.0)
    grid = tuple(ResourceOption(2.0, r, 0, 20.0 * r) for r in range(1, 21))
    other = VariantOptions("other", 0.6, tuple(ResourceOption(1.0, r, 0, 30.0 * r) for r in range(1, 21)), 1.0)
    # 250 rps: 13 replicas of the running size (a transition: more replicas) or the other variant
    problem = Problem.single(ServiceProblem("s", 250.0, (VariantOptions("v", 0.7, grid, 10.0, current=running), other), 0.0, 1.0), 100.0)
    ranged = solve_milp(problem, "highs")
    _same(ranged, _as_binaries(problem))
    _same(ranged, solve_dp(problem))
    assert ranged.services[0].transition > 0
