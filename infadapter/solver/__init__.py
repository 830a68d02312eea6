"""The decision core (pure): problem data, the exact MILP, an exhaustive oracle, a checker.

``solve(problem)`` runs the MILP and re-verifies its answer with the independent
checker; a solution the checker rejects is never returned silently.
"""

from __future__ import annotations

from typing import Literal

from infadapter.solver.check import check
from infadapter.solver.dp import NotApplicable, solve_dp
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


SolveBackend = Literal["auto", "dp", "highs", "cbc"]


def solve(problem: Problem, backend: SolveBackend = "auto", time_limit_s: float | None = 30.0) -> Solution:
    """Solve exactly and verify; raises :class:`SolverCheckFailed` if the answer does not check.

    ``auto`` uses the dynamic program (:mod:`.dp`) for CPU-only problems on a cost grid and the
    MILP (HiGHS) otherwise; ``dp``, ``highs`` and ``cbc`` force one method.
    """
    if backend in ("auto", "dp"):
        try:
            solution = solve_dp(problem)
        except NotApplicable:
            if backend == "dp":
                raise
            solution = solve_milp(problem, "highs", time_limit_s)
    else:
        solution = solve_milp(problem, "cbc" if backend == "cbc" else "highs", time_limit_s)
    if solution.services:
        issues = check(problem, solution)
        if issues:
            raise SolverCheckFailed("; ".join(issues))
    return solution


__all__ = [
    "TOLERANCE",
    "Assignment",
    "Backend",
    "NotApplicable",
    "Problem",
    "ResourceOption",
    "ServiceProblem",
    "ServiceSolution",
    "Solution",
    "SolveBackend",
    "SolverCheckFailed",
    "Status",
    "VariantOptions",
    "check",
    "prune",
    "solve",
    "solve_dp",
    "solve_exhaustive",
    "solve_milp",
]
