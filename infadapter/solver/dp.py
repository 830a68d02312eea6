"""An exact dynamic program for CPU-only problems: the fast path beside the MILP.

Two levels, both exact:

1. **Per service, a label-setting DP over variants** (:mod:`.labels`): for every exact cost,
   the best (load served, objective) of the service.
2. **Across services, a multiple-choice knapsack** over those cost levels under the shared
   budget, maximising the load served first and then the objective (the MILP's two phases).
   Each service is one numpy pass over a (cost levels x budget) table; one service alone needs
   no table at all.

Costs must lie on a grid (the spec's ``cpuStep`` in millicores); GPU options go to the MILP.
Property tests check this against the MILP and the exhaustive oracle.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from infadapter.solver.evaluate import score
from infadapter.solver.labels import SERVED_SCALE, Label, frontier, label_value
from infadapter.solver.problem import TOLERANCE, Problem, ServiceProblem, ServiceSolution, Solution, Status

#: the largest knapsack table (services x budget units) this path accepts before deferring to the MILP
MAX_TABLE = 20_000_000
_NEG = np.iinfo(np.int64).min // 4  # "unreachable" in the served table; sums of two stay negative

IntArray = np.ndarray[Any, np.dtype[np.int64]]
FloatArray = np.ndarray[Any, np.dtype[np.float64]]


class NotApplicable(ValueError):
    """The problem has GPU options or off-grid costs: use the MILP."""


def cost_unit_millicores(problem: Problem) -> int:
    """The largest cost unit (in millicores) every option's CPU cost is a whole multiple of."""
    unit = 0
    for service in problem.services:
        for variant in service.variants:
            for option in variant.options:
                if option.gpus:
                    raise NotApplicable("GPU options")
                milli = option.cost_cpu * 1000.0
                if abs(milli - round(milli)) > 1e-6:
                    raise NotApplicable(f"cost {option.cost_cpu} is not a whole number of millicores")
                unit = math.gcd(unit, round(milli))
    if unit == 0:
        raise NotApplicable("no options")
    return unit


def _item_values(service: ServiceProblem, items: Sequence[Label], price: float) -> tuple[IntArray, IntArray, FloatArray]:
    """Each frontier item's cost (units), load served (on the integer grid) and objective."""
    costs = np.fromiter((x.cost for x in items), dtype=np.int64, count=len(items))
    served = np.fromiter((round(x.served * SERVED_SCALE) for x in items), dtype=np.int64, count=len(items))
    values = np.fromiter((label_value(service, x) for x in items), dtype=np.float64, count=len(items)) - price * costs
    return costs, served, values


def _knapsack_pass(
    served: IntArray, value: FloatArray, costs: IntArray, item_served: IntArray, item_value: FloatArray
) -> tuple[IntArray, FloatArray, IntArray]:
    """Add one service: for every budget, its best item on top of the best of the services before.

    Lexicographic: most served, then the best value; among ties (1e-12) the cheapest item.
    """
    size = served.shape[0]
    source = np.arange(size)[None, :] - costs[:, None]  # the budget left for the services before
    fits = source >= 0
    source = np.where(fits, source, 0)
    before_served = served[source]
    ok = fits & (before_served >= 0)
    cand_served = np.where(ok, before_served + item_served[:, None], _NEG)
    cand_value = np.where(ok, value[source] + item_value[:, None], -np.inf)
    best_served = cand_served.max(axis=0)
    at_best = cand_served == best_served[None, :]
    best_value = np.where(at_best, cand_value, -np.inf).max(axis=0)
    winner = at_best & (cand_value >= best_value[None, :] - 1e-12)
    pick = np.where(winner.any(axis=0), winner.argmax(axis=0), -1)
    new_served = np.where(best_served >= 0, best_served, _NEG)
    new_value = np.where(best_served >= 0, best_value, -np.inf)
    return new_served, new_value, np.where(best_served >= 0, pick, -1)


def _infeasible(started: float, note: str) -> Solution:
    return Solution("infeasible", (), float("-inf"), time.perf_counter() - started, "dp", (note,))


def _best_alone(items: Sequence[Label], item_served: IntArray, item_value: FloatArray) -> Label:
    """One service alone: the most served, then the best value, then (ties of 1e-12) the cheapest."""
    top = item_served.max()
    at_top = item_served == top
    best = np.where(at_top, item_value, -np.inf).max()
    return items[int(np.flatnonzero(at_top & (item_value >= best - 1e-12))[0])]


def solve_dp(problem: Problem) -> Solution:
    """Solve a CPU-only problem exactly; raises :class:`NotApplicable` where the MILP must be used."""
    started = time.perf_counter()
    unit = cost_unit_millicores(problem)
    budget_units = math.floor(problem.budget_cpu * 1000.0 / unit + 1e-9)
    n = len(problem.services)
    if n * (budget_units + 1) > MAX_TABLE:
        raise NotApplicable("knapsack table too large")
    unit_price = (unit / 1000.0) / problem.budget_cpu
    if n == 1:
        service = problem.services[0]
        items = frontier(service, budget_units, unit, service.cost_weight * unit_price)
        if not items:
            return _infeasible(started, "no plan fits the budget")
        _, item_served, item_value = _item_values(service, items, service.cost_weight * unit_price)
        picked = [_best_alone(items, item_served, item_value)]
    else:
        picked_or_none = _joint(problem, budget_units, unit, unit_price)
        if picked_or_none is None:
            return _infeasible(started, "no plan fits the budget")
        picked = picked_or_none
    solutions: list[ServiceSolution] = [
        score(service, label.chosen(), problem.budget_cpu, problem.budget_gpu) for service, label in zip(problem.services, picked, strict=True)
    ]
    demand = sum(s.load_rps for s in problem.services)
    total = sum(s.served_rps for s in solutions)
    status: Status = "optimal" if total >= demand - TOLERANCE * max(1.0, demand) else "infeasible"
    notes = () if status == "optimal" else (f"the budget serves at most {total:.3f} of {demand:.3f} rps",)
    return Solution(status, tuple(solutions), sum(s.objective for s in solutions), time.perf_counter() - started, "dp", notes)


def _joint(problem: Problem, budget_units: int, unit: int, unit_price: float) -> list[Label] | None:
    """The multiple-choice knapsack over every service's frontier; None when nothing fits."""
    served: IntArray = np.full(budget_units + 1, _NEG, dtype=np.int64)
    value: FloatArray = np.full(budget_units + 1, -np.inf)
    served[0], value[0] = 0, 0.0
    choices: list[tuple[list[Label], IntArray]] = []
    for service in problem.services:
        items = frontier(service, budget_units, unit)
        if not items:
            return None
        costs, item_served, item_value = _item_values(service, items, service.cost_weight * unit_price)
        served, value, pick = _knapsack_pass(served, value, costs, item_served, item_value)
        choices.append((items, pick))
    reachable = np.flatnonzero(served >= 0)
    if reachable.size == 0:
        return None
    best_served = served[reachable].max()
    candidates = reachable[served[reachable] == best_served]
    best_value = value[candidates].max()
    b = int(candidates[np.flatnonzero(value[candidates] >= best_value - 1e-12)[0]])  # lowest cost among ties
    picked: list[Label] = []
    for items, pick in reversed(choices):
        label = items[int(pick[b])]
        picked.append(label)
        b -= label.cost
    picked.reverse()
    return picked
