"""Exhaustive search: the oracle the MILP and the DP are tested against (small problems only).

Enumerates every combination of (no option | one option) per variant and service, keeps
those within budget, routes load most-accurate-first and scores with the same objective.
The order is the definition of :mod:`.problem`: the most load served, then the highest
objective, where objectives within :data:`TIE_TOLERANCE` of the best are equal; among those,
the lowest cost term, then the fewest replicas, then the first combination in a fixed
enumeration order.
"""

from __future__ import annotations

import itertools
import time

from infadapter.solver.evaluate import resources, score
from infadapter.solver.problem import TIE_TOLERANCE, TOLERANCE, Problem, ResourceOption, ServiceSolution, Solution, Status

MAX_COMBINATIONS = 2_000_000

#: a candidate plan: (served on the grid, objective, cost term, replicas, its services)
_Candidate = tuple[float, float, float, int, tuple[ServiceSolution, ...]]


def _service_combos(problem: Problem, s: int) -> list[dict[str, ResourceOption]]:
    """Every non-empty choice of (no option | one option) per variant that fits the CPU budget."""
    service = problem.services[s]
    combos: list[dict[str, ResourceOption]] = []

    def walk(m: int, chosen: dict[str, ResourceOption], cpu: float) -> None:
        if m == len(service.variants):
            if chosen:
                combos.append(dict(chosen))
            return
        v = service.variants[m]
        if not v.required:
            walk(m + 1, chosen, cpu)
        for o in v.options:
            if cpu + o.cost_cpu <= problem.budget_cpu + 1e-9:
                chosen[v.name] = o
                walk(m + 1, chosen, cpu + o.cost_cpu)
                del chosen[v.name]

    walk(0, {}, 0.0)
    return combos


def _ties(problem: Problem, per_service: list[list[dict[str, ResourceOption]]]) -> list[_Candidate]:
    """Every plan within the budget that serves the most and lies within the tie tolerance of the best
    objective seen so far (the caller filters by the final best), in enumeration order."""
    weights = problem.weights()
    kept: list[_Candidate] = []
    top_served, top_objective = float("-inf"), float("-inf")
    for pick in itertools.product(*per_service):
        if problem.over_budget(o for chosen in pick for o in chosen.values()):
            continue
        solutions = tuple(score(svc, chosen, problem, weight=w) for svc, chosen, w in zip(problem.services, pick, weights, strict=True))
        served = round(sum(s.served_rps for s in solutions) / TOLERANCE) * TOLERANCE
        objective = sum(s.joint_term for s in solutions)
        if served > top_served + TOLERANCE:
            top_served, top_objective, kept = served, objective, []
        elif served < top_served - TOLERANCE or objective < top_objective - TIE_TOLERANCE:
            continue
        if objective > top_objective:
            top_objective = objective
            kept = [c for c in kept if c[1] >= objective - TIE_TOLERANCE]
        kept.append((served, objective, *resources(problem, solutions), solutions))
    return kept


def solve_exhaustive(problem: Problem) -> Solution:
    """The exact optimum by enumeration; raises ValueError when the problem is too large."""
    started = time.perf_counter()
    per_service = [_service_combos(problem, s) for s in range(len(problem.services))]
    total = 1
    for combos in per_service:
        total *= max(1, len(combos))
    if total > MAX_COMBINATIONS:
        raise ValueError(f"{total} combinations: too many for exhaustive search")
    ties = _ties(problem, per_service)
    if not ties:
        return Solution("infeasible", (), float("-inf"), time.perf_counter() - started, "exhaustive", ("no plan fits the budget",))
    cheapest = min(c[2] for c in ties)
    fewest = min(c[3] for c in ties if c[2] <= cheapest + 1e-12)  # costs equal up to the order of their sums
    served, _, _, _, best = next(c for c in ties if c[2] <= cheapest + 1e-12 and c[3] == fewest)
    demand = sum(s.load_rps for s in problem.services)
    status: Status = "optimal" if served >= demand - TOLERANCE * max(1.0, demand) else "infeasible"
    return Solution(status, best, sum(s.joint_term for s in best), time.perf_counter() - started, "exhaustive")
