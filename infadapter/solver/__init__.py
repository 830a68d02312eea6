"""The decision core (pure): problem data, the exact MILP, an exhaustive oracle, a checker.

``solve(problem)`` runs the MILP and re-verifies its answer with the independent
checker; a solution the checker rejects is never returned silently.
"""

from __future__ import annotations

from infadapter.solver.check import check
from infadapter.solver.exhaustive import solve_exhaustive
from infadapter.solver.milp import Backend, prune, solve_milp
from infadapter.solver.problem import (
    TOLERANCE,
    Assignment,
    Problem,
    ResourceOption,
    ServiceProblem,
    ServiceSolution,
    Solution,
    Status,
    VariantOptions,
)


class SolverCheckFailed(AssertionError):
    """The independent checker found the solver's answer wrong (a bug, never user error)."""


def solve(problem: Problem, backend: Backend = "highs", time_limit_s: float | None = 30.0) -> Solution:
    """Solve exactly and verify; raises :class:`SolverCheckFailed` if the answer does not check."""
    solution = solve_milp(problem, backend, time_limit_s)
    if solution.services:
        issues = check(problem, solution)
        if issues:
            raise SolverCheckFailed("; ".join(issues))
    return solution


__all__ = [
    "TOLERANCE",
    "Assignment",
    "Backend",
    "Problem",
    "ResourceOption",
    "ServiceProblem",
    "ServiceSolution",
    "Solution",
    "SolverCheckFailed",
    "Status",
    "VariantOptions",
    "check",
    "prune",
    "solve",
    "solve_exhaustive",
    "solve_milp",
]
