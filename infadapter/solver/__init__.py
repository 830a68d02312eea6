"""The decision core (pure): problem data, the exact MILP, an exhaustive oracle, a checker.

``solve(problem)`` runs the fastest exact method (the dynamic program or the MILP) and
re-verifies its answer with the independent checker; a solution the checker rejects is never
returned silently.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from infadapter.solver.check import check
from infadapter.solver.dp import NotApplicable, TooLarge, solve_dp
from infadapter.solver.exhaustive import solve_exhaustive
from infadapter.solver.milp import Backend, prune, solve_milp
from infadapter.solver.problem import (
    STATUSES,
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


#: the DP's work limit under ``auto``: labels grown plus 8 per label scanned, 0.1-0.3 s on a
#: 2-core machine. Past it (a service with a fleet's replica grid, joint solves of a few services
#: with hundreds of replicas each) HiGHS, given replica ranges as integers (:mod:`.milp_model`), is
#: the faster exact method: on the 2,000-core benchmark the DP needed 18-23 M units (1.7-2.5 s),
#: HiGHS 0.25-0.5 s. The limit is counted, not timed, so which method solves a problem depends on
#: the problem alone.
AUTO_DP_WORK = 1_000_000


def solve(problem: Problem, backend: SolveBackend = "auto", time_limit_s: float | None = 30.0) -> Solution:
    """Solve exactly and verify; raises :class:`SolverCheckFailed` if the answer does not check.

    ``auto`` uses the dynamic program (:mod:`.dp`) for CPU-only problems on a cost grid up to
    :data:`AUTO_DP_WORK`, and the MILP (HiGHS) otherwise; ``dp``, ``highs`` and ``cbc`` force one
    method. ``Solution.backend`` names the method that solved. ``time_limit_s`` bounds each MILP
    run (the DP has none); a run it stops comes back ``feasible`` or ``time_limit``.
    """
    if backend == "auto":
        try:
            solution = solve_dp(problem, max_work=AUTO_DP_WORK)
        except TooLarge as exc:
            solution = solve_milp(problem, "highs", time_limit_s)
            solution = replace(solution, solve_s=solution.solve_s + exc.spent_s)  # the DP's attempt counts too
        except NotApplicable:  # GPU options or off-grid costs
            solution = solve_milp(problem, "highs", time_limit_s)
    elif backend == "dp":
        solution = solve_dp(problem)
    else:
        solution = solve_milp(problem, "cbc" if backend == "cbc" else "highs", time_limit_s)
    if solution.services:
        issues = check(problem, solution)
        if issues:
            raise SolverCheckFailed("; ".join(issues))
    return solution


__all__ = [
    "AUTO_DP_WORK",
    "STATUSES",
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
    "TooLarge",
    "VariantOptions",
    "check",
    "prune",
    "solve",
    "solve_dp",
    "solve_exhaustive",
    "solve_milp",
]
