"""Exhaustive search: the oracle the MILP is tested against (small problems only).

Enumerates every combination of (no option | one option) per variant and service, keeps
those within budget, routes load most-accurate-first and scores with the same objective.
Lexicographic order: the most load served, then the highest objective, then the lowest
CPU cost, then the first combination in a fixed enumeration order.
"""

from __future__ import annotations

import itertools
import time

from infadapter.solver.evaluate import score
from infadapter.solver.problem import TOLERANCE, Problem, ResourceOption, ServiceSolution, Solution, Status

MAX_COMBINATIONS = 2_000_000


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


def solve_exhaustive(problem: Problem) -> Solution:
    """The exact optimum by enumeration; raises ValueError when the problem is too large."""
    started = time.perf_counter()
    per_service = [_service_combos(problem, s) for s in range(len(problem.services))]
    total = 1
    for combos in per_service:
        total *= max(1, len(combos))
    if total > MAX_COMBINATIONS:
        raise ValueError(f"{total} combinations: too many for exhaustive search")
    weights = problem.weights()
    best: tuple[float, float, float] | None = None
    best_solutions: tuple[ServiceSolution, ...] = ()
    for pick in itertools.product(*per_service):
        cpu = sum(o.cost_cpu for chosen in pick for o in chosen.values())
        gpu = sum(o.cost_gpu for chosen in pick for o in chosen.values())
        if cpu > problem.budget_cpu + 1e-9 or gpu > problem.budget_gpu:
            continue
        solutions = tuple(
            score(svc, chosen, problem.budget_cpu, problem.budget_gpu, weight=w) for svc, chosen, w in zip(problem.services, pick, weights, strict=True)
        )
        served = sum(s.served_rps for s in solutions)
        key = (round(served / TOLERANCE) * TOLERANCE, sum(s.joint_term for s in solutions), -cpu)
        if (
            best is None
            or key[0] > best[0] + TOLERANCE
            or (abs(key[0] - best[0]) <= TOLERANCE and (key[1] > best[1] + 1e-12 or (abs(key[1] - best[1]) <= 1e-12 and key[2] > best[2])))
        ):
            best, best_solutions = key, solutions
    if best is None:
        return Solution("infeasible", (), float("-inf"), time.perf_counter() - started, "exhaustive", ("no plan fits the budget",))
    demand = sum(s.load_rps for s in problem.services)
    status: Status = "optimal" if best[0] >= demand - TOLERANCE * max(1.0, demand) else "infeasible"
    return Solution(status, best_solutions, sum(s.joint_term for s in best_solutions), time.perf_counter() - started, "exhaustive")
