"""An exact dynamic program for CPU-only problems: the fast path beside the MILP.

Two levels, both exact:

1. **Per service, a label-setting DP over variants** (:mod:`.labels`): for every exact cost,
   the best (load served, objective) of the service.
2. **Across services, a multiple-choice knapsack** over those cost levels under the shared
   budget, maximising the load served first and then the objective (the MILP's two phases).
   Each service is one numpy pass over a (cost levels x budget) table; one service alone needs
   no table at all.

Costs must lie on a grid (the spec's ``cpuStep`` in millicores); GPU options go to the MILP, and
so does a problem whose DP would do more work than its caller allows (:class:`TooLarge`).
Property tests check this against the MILP and the exhaustive oracle.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from infadapter.solver.bounds import SERVED_SCALE, FloatArray, IntArray, NotApplicable
from infadapter.solver.evaluate import score
from infadapter.solver.labels import Label, Pricing, TooLarge, WorkMeter, frontier, rank_value
from infadapter.solver.problem import TIE_TOLERANCE, TOLERANCE, Problem, ServiceProblem, ServiceSolution, Solution, Status

__all__ = ["MAX_TABLE", "NotApplicable", "TooLarge", "cost_unit_millicores", "solve_dp"]

#: the largest knapsack table (services x budget units) this path accepts before deferring to the MILP
MAX_TABLE = 20_000_000
_NEG = np.iinfo(np.int64).min // 4  # "unreachable" in the served table; sums of two stay negative


def cost_unit_millicores(problem: Problem) -> int:
    """The largest cost unit (in millicores) every option's CPU cost is a whole multiple of."""
    options = [o for service in problem.services for variant in service.variants for o in variant.options]
    if any(o.gpus for o in options):
        raise NotApplicable("GPU options")
    costs = {o.cost_cpu for o in options}
    unit = 0
    for cost in costs:
        milli = cost * 1000.0
        if abs(milli - round(milli)) > 1e-6:
            raise NotApplicable(f"cost {cost} is not a whole number of millicores")
        unit = math.gcd(unit, round(milli))
    if unit == 0:
        raise NotApplicable("no options")
    return unit


def replica_price(problem: Problem) -> float:
    """The DP's price of one replica in the tie-break: all the replicas a plan can hold cost at most a
    quarter of ``TIE_TOLERANCE``, so the price never reorders plans whose objectives differ by more,
    and ranks plans that tie (at one cost) by their replicas. ~1e-13 for 2,000 replicas: a hundred
    times the float noise of the values (~1e-15), which is what :attr:`Pricing.noise` absorbs."""
    most = sum(max((o.replicas for o in v.options), default=0) for s in problem.services for v in s.variants)
    return TIE_TOLERANCE / (4.0 * (most + 1))


def _item_values(service: ServiceProblem, items: Sequence[Label], pricing: Pricing) -> tuple[IntArray, IntArray, FloatArray]:
    """Each frontier item's cost (units), load served (on the integer grid) and rank value."""
    costs = np.fromiter((x.cost for x in items), dtype=np.int64, count=len(items))
    served = np.fromiter((round(x.served * SERVED_SCALE) for x in items), dtype=np.int64, count=len(items))
    ranks = (rank_value(service, x.mass, x.transition, x.replicas, pricing) for x in items)
    values = np.fromiter(ranks, dtype=np.float64, count=len(items)) - pricing.price * costs
    return costs, served, values


_CHUNK_CELLS = 1 << 20  # items x budgets compared at once: bounds the knapsack's memory to tens of MB


def _knapsack_pass(
    served: IntArray, value: FloatArray, costs: IntArray, item_served: IntArray, item_value: FloatArray, noise: float
) -> tuple[IntArray, FloatArray, IntArray]:
    """Add one service: for every budget, its best item on top of the best of the services before.

    Lexicographic: most served, then the best rank value (fewer replicas rank higher); of items
    within ``noise``, the cheapest (items come by cost). Items are compared in chunks; a later
    chunk wins only by more than ``noise``.
    """
    size = served.shape[0]
    best_served: IntArray = np.full(size, _NEG, dtype=np.int64)
    best_value: FloatArray = np.full(size, -np.inf)
    pick: IntArray = np.full(size, -1, dtype=np.int64)
    step = max(1, _CHUNK_CELLS // size)
    for first in range(0, costs.shape[0], step):
        part = slice(first, first + step)
        source = np.arange(size)[None, :] - costs[part, None]  # the budget left for the services before
        fits = source >= 0
        source = np.where(fits, source, 0)
        before = served[source]
        ok = fits & (before >= 0)
        cand_served = np.where(ok, before + item_served[part, None], _NEG)
        cand_value = np.where(ok, value[source] + item_value[part, None], -np.inf)
        top_served = cand_served.max(axis=0)
        at_top = cand_served == top_served[None, :]
        top_value = np.where(at_top, cand_value, -np.inf).max(axis=0)
        top_pick = (at_top & (cand_value >= top_value[None, :] - noise)).argmax(axis=0) + first
        better = (top_served >= 0) & ((top_served > best_served) | ((top_served == best_served) & (top_value > best_value + noise)))
        best_served = np.where(better, top_served, best_served)
        best_value = np.where(better, top_value, best_value)
        pick = np.where(better, top_pick, pick)
    return best_served, best_value, pick


def _best_alone(items: Sequence[Label], item_served: IntArray, item_value: FloatArray) -> Label:
    """One service alone: the most served, then the cheapest item within ``TIE_TOLERANCE`` of the best
    value (items come by cost; each is the fewest-replica one of the best at its cost)."""
    top = item_served.max()
    at_top = item_served == top
    best = np.where(at_top, item_value, -np.inf).max()
    return items[int(np.flatnonzero(at_top & (item_value >= best - TIE_TOLERANCE))[0])]


def solve_dp(problem: Problem, max_work: int | None = None) -> Solution:
    """Solve a CPU-only problem exactly; raises :class:`NotApplicable` where the MILP must be used.

    ``max_work`` caps the work (:class:`~.labels.WorkMeter`); beyond it :class:`TooLarge` is
    raised, carrying the seconds spent so far in ``spent_s``.
    """
    started = time.perf_counter()
    unit = cost_unit_millicores(problem)
    budget_units = math.floor(problem.budget_cpu * 1000.0 / unit + 1e-9)
    n = len(problem.services)
    if n * (budget_units + 1) > MAX_TABLE:
        raise NotApplicable("knapsack table too large")
    try:
        picked = _pick(problem, budget_units, unit, WorkMeter(max_work))
    except TooLarge as exc:
        exc.spent_s = time.perf_counter() - started
        raise
    if picked is None:
        return Solution("infeasible", (), float("-inf"), time.perf_counter() - started, "dp", ("no plan fits the budget",))
    solutions: list[ServiceSolution] = [
        score(service, label.chosen(), problem, weight=w) for service, label, w in zip(problem.services, picked, problem.weights(), strict=True)
    ]
    demand = sum(s.load_rps for s in problem.services)
    total = sum(s.served_rps for s in solutions)
    status: Status = "optimal" if total >= demand - TOLERANCE * max(1.0, demand) else "infeasible"
    notes = () if status == "optimal" else (f"the budget serves at most {total:.3f} of {demand:.3f} rps",)
    return Solution(status, tuple(solutions), sum(s.joint_term for s in solutions), time.perf_counter() - started, "dp", notes)


def _pick(problem: Problem, budget_units: int, unit: int, work: WorkMeter) -> list[Label] | None:
    """Every service's chosen label; None when nothing fits."""
    unit_price = (unit / 1000.0) * problem.cpu_price / problem.budget_price
    replica = replica_price(problem)
    pricings = [Pricing(s.cost_weight * unit_price, w, replica) for s, w in zip(problem.services, problem.weights(), strict=True)]
    if len(problem.services) > 1:
        return _joint(problem, budget_units, unit, pricings, work)
    service = problem.services[0]
    items = frontier(service, budget_units, unit, pricings[0], alone=True, work=work)
    if not items:
        return None
    _, item_served, item_value = _item_values(service, items, pricings[0])
    return [_best_alone(items, item_served, item_value)]


def _joint(problem: Problem, budget_units: int, unit: int, pricings: Sequence[Pricing], work: WorkMeter) -> list[Label] | None:
    """The multiple-choice knapsack over every service's frontier; None when nothing fits.

    Of the budgets whose plans serve the most, the lowest whose rank value lies within
    ``TIE_TOLERANCE`` of the best: the cheapest of the tied plans (the table holds every exact cost).
    """
    served: IntArray = np.full(budget_units + 1, _NEG, dtype=np.int64)
    value: FloatArray = np.full(budget_units + 1, -np.inf)
    served[0], value[0] = 0, 0.0
    choices: list[tuple[list[Label], IntArray]] = []
    for service, pricing in zip(problem.services, pricings, strict=True):
        items = frontier(service, budget_units, unit, pricing, alone=False, work=work)
        if not items:
            return None
        costs, item_served, item_value = _item_values(service, items, pricing)
        served, value, pick = _knapsack_pass(served, value, costs, item_served, item_value, pricing.noise)
        choices.append((items, pick))
    reachable = np.flatnonzero(served >= 0)
    if reachable.size == 0:
        return None
    best_served = served[reachable].max()
    candidates = reachable[served[reachable] == best_served]
    best_value = value[candidates].max()
    b = int(candidates[np.flatnonzero(value[candidates] >= best_value - TIE_TOLERANCE)[0]])  # lowest cost among ties
    picked: list[Label] = []
    for items, pick in reversed(choices):
        label = items[int(pick[b])]
        picked.append(label)
        b -= label.cost
    picked.reverse()
    return picked
