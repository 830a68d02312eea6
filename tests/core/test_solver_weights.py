"""Joint problems weigh each service's accuracy and transition by its share of the load; one service weighs 1."""

from __future__ import annotations

import pytest

from infadapter.solver import Problem, ResourceOption, ServiceProblem, VariantOptions, check, solve, solve_exhaustive
from infadapter.solver.evaluate import score


def _service(name: str, load_rps: float, low: float, high: float) -> ServiceProblem:
    """A cheap variant (1 core, accuracy ``low``) that serves everything, and an accurate one needing 4 cores."""
    cheap = VariantOptions("cheap", low, (ResourceOption(1, 1, 0, 1000.0),))
    accurate = VariantOptions("accurate", high, (ResourceOption(4, 1, 0, 600.0),))
    return ServiceProblem(name, load_rps, (cheap, accurate), cost_weight=0.01, transition_weight=0.0)


def _scarce() -> Problem:
    """6 cores upgrade one service only: the 500 rps one gains 0.15 per request, the 5 rps one 0.30."""
    return Problem((_service("busy", 500.0, 0.70, 0.85), _service("quiet", 5.0, 0.60, 0.90)), budget_cpu=6.0)


def test_weights_are_the_shares_of_the_load() -> None:
    problem = _scarce()
    assert problem.weights() == pytest.approx((500 / 505, 5 / 505))
    assert Problem.single(problem.services[1], 6.0).weights() == (1.0,)
    idle = Problem(tuple(ServiceProblem(f"s{i}", 0.0, problem.services[0].variants) for i in range(4)), budget_cpu=8.0)
    assert idle.weights() == (0.25,) * 4


@pytest.mark.parametrize("backend", ["dp", "highs", "cbc", "exhaustive"])
def test_the_scarce_budget_goes_to_the_busy_service(backend: str) -> None:
    problem = _scarce()
    solution = solve_exhaustive(problem) if backend == "exhaustive" else solve(problem, backend)  # type: ignore[arg-type]
    assert check(problem, solution) == []
    upgraded = {s.name for s in solution.services if any(a.variant == "accurate" and a.load_rps > 0 for a in s.assignments)}
    assert upgraded == {"busy"}
    # the joint objective is the accuracy of the average request minus the cost of the 4 + 1 cores
    assert solution.objective == pytest.approx((500 * 0.85 + 5 * 0.60) / 505 - 0.01 * 5 / 6.0, abs=1e-9)
    # each service still reports its own objective (what its plan shows): the busy one's as if alone
    assert solution.service("busy").objective == pytest.approx(0.85 - 0.01 * 4 / 6.0, abs=1e-9)


def test_the_old_unweighted_sum_would_have_upgraded_the_quiet_service() -> None:
    problem = _scarce()
    busy, quiet = problem.services
    cheap, accurate = (v.options[0] for v in busy.variants)

    def old_sum(upgrade_busy: bool) -> float:
        b = score(busy, {"cheap": cheap, "accurate": accurate} if upgrade_busy else {"cheap": cheap}, problem)
        q = score(quiet, {"cheap": cheap} if upgrade_busy else {"accurate": accurate}, problem)
        return b.objective + q.objective

    assert old_sum(upgrade_busy=False) > old_sum(upgrade_busy=True) + 0.1


def test_a_single_service_weighs_one_so_its_objective_is_unchanged() -> None:
    problem = Problem.single(_scarce().services[0], 6.0)
    solution = solve(problem, "dp")
    (service,) = solution.services
    assert (service.weight, service.contribution) == (1.0, service.objective)
    assert solution.objective == service.objective
