"""An exact dynamic program for CPU-only problems: the fast path beside the MILP.

Two levels, both exact:

1. **Per service, a label-setting DP over variants** in decreasing accuracy. A label is a
   partial plan: (cost, load routed so far ``S``, accuracy mass ``A = Σ a·q``, transition ``T``).
   Adding variant ``m`` at option ``o`` routes ``min(th_o, L − S)`` more to it (the split is
   most-accurate-first, which is optimal for fixed choices). Label 1 *dominates* label 2 when it
   costs no more, has no larger ``T``, has routed at least as much (``S1 ≥ S2``) and
   ``A1 − A2 ≥ a_next · (S1 − S2)``, where ``a_next`` bounds the accuracy of every variant still
   to come: whatever completes label 2 completes label 1 at least as well. The surviving final
   labels give, for every exact cost, the best (load served, objective) of the service.
2. **Across services, a multiple-choice knapsack** over those cost levels under the shared
   budget, maximising the load served first and then the objective (the MILP's two phases).

Costs must lie on a grid (the spec's ``cpuStep`` in millicores); GPU options go to the MILP.
Property tests check this against the MILP and the exhaustive oracle.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from infadapter.solver.evaluate import score
from infadapter.solver.milp import prune
from infadapter.solver.problem import TOLERANCE, Problem, ResourceOption, ServiceProblem, ServiceSolution, Solution, Status

#: the largest knapsack table (services x budget units) this path accepts before deferring to the MILP
MAX_TABLE = 20_000_000
_SERVED_SCALE = 1e6  # routed load is compared on a 1e-6 rps grid, exactly, as integers


class NotApplicable(ValueError):
    """The problem has GPU options or off-grid costs: use the MILP."""


@dataclass(frozen=True)
class _Label:
    cost: int
    served: float
    mass: float
    transition: float
    picks: tuple[tuple[str, ResourceOption], ...]


def _cost_unit_millicores(problem: Problem) -> int:
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


def _prune_labels(labels: list[_Label], a_next: float) -> list[_Label]:
    """Drop every label that a kept one dominates (scanned by cost, so kept labels never cost more)."""
    labels.sort(key=lambda x: (x.cost, -x.served, -x.mass, x.transition, len(x.picks)))
    kept: list[_Label] = []
    eps = 1e-12
    for label in labels:
        for k in kept:  # inlined dominance test: this loop is the solver's hot path
            if (
                k.transition <= label.transition + eps
                and k.served >= label.served - eps
                and (k.picks or not label.picks)  # "something serves": the empty plan never stands in for a real one
                and k.mass - label.mass >= a_next * (k.served - label.served) - eps
            ):
                break
        else:
            kept.append(label)
    return kept


def service_frontier(service: ServiceProblem, budget_units: int, unit_milli: int, cost_per_unit: float | None = None) -> dict[int, _Label]:
    """For every exact cost (in units), the best final label: most load served, then best objective.

    With ``cost_per_unit`` (the objective's price of one cost unit; only when this service is
    solved alone, so only its optimum matters) labels whose best completion cannot reach the best
    complete plan found so far are dropped as well (bounding).
    """
    load = service.load_rps
    max_l = service.max_load_time_s
    order = sorted(service.variants, key=lambda v: (-v.accuracy, v.name))
    labels = [_Label(0, 0.0, 0.0, 0.0, ())]
    for k, variant in enumerate(order):
        a_next = order[k + 1].accuracy if k + 1 < len(order) else 0.0
        weight = variant.load_time_s / max_l if max_l > 0 else 0.0
        options = sorted(prune(variant, load), key=lambda o: o.cost_cpu)
        costs = [round(o.cost_cpu * 1000.0) // unit_milli for o in options]
        grown: list[_Label] = [] if variant.required else list(labels)
        for label in labels:
            room = load - label.served
            if room <= TOLERANCE and not variant.required and label.picks:
                continue
            for option, cost in zip(options, costs, strict=True):
                total = label.cost + cost
                if total > budget_units:
                    break
                q = min(option.capacity_rps, max(0.0, room))
                changed = weight if option.transition_from(variant.current) else 0.0
                grown.append(
                    _Label(total, label.served + q, label.mass + variant.accuracy * q, max(label.transition, changed), (*label.picks, (variant.name, option)))
                )
        labels = _prune_labels(grown, a_next)
        if cost_per_unit is not None and load > TOLERANCE:
            labels = _bound(service, labels, a_next, cost_per_unit)
    best: dict[int, _Label] = {}
    for label in labels:
        if not label.picks:
            continue
        current = best.get(label.cost)
        if current is None or _better(service, label, current):
            best[label.cost] = label
    return best


def _bound(service: ServiceProblem, labels: list[_Label], a_next: float, cost_per_unit: float) -> list[_Label]:
    """Drop labels whose most optimistic completion is worse than the best complete one (single service)."""
    load = service.load_rps
    complete = [_value(service, x) - cost_per_unit * x.cost for x in labels if x.picks and x.served >= load - TOLERANCE]
    if not complete:
        return labels  # nothing serves all of it yet: served-first ordering forbids bounding on value
    incumbent = max(complete)
    return [
        x
        for x in labels
        if (x.mass + a_next * (load - x.served)) / load - service.transition_weight * x.transition - cost_per_unit * x.cost >= incumbent - 1e-9
    ]


def _value(service: ServiceProblem, label: _Label) -> float:
    accuracy = label.mass / service.load_rps if service.load_rps > 0 else 0.0
    return accuracy - service.transition_weight * label.transition


def _better(service: ServiceProblem, a: _Label, b: _Label) -> bool:
    sa, sb = round(a.served * _SERVED_SCALE), round(b.served * _SERVED_SCALE)
    if sa != sb:
        return sa > sb
    return _value(service, a) > _value(service, b) + 1e-12


def solve_dp(problem: Problem) -> Solution:
    """Solve a CPU-only problem exactly; raises :class:`NotApplicable` where the MILP must be used."""
    started = time.perf_counter()
    unit = _cost_unit_millicores(problem)
    budget_units = math.floor(problem.budget_cpu * 1000.0 / unit + 1e-9)
    n = len(problem.services)
    if n * (budget_units + 1) > MAX_TABLE:
        raise NotApplicable("knapsack table too large")
    neg = np.iinfo(np.int64).min // 4
    served = np.full(budget_units + 1, neg, dtype=np.int64)
    value = np.full(budget_units + 1, -np.inf)
    served[0], value[0] = 0, 0.0
    choices: list[tuple[list[_Label], np.ndarray[Any, np.dtype[np.int64]]]] = []
    for service in problem.services:
        price = service.cost_weight * (unit / 1000.0) / problem.budget_cpu if n == 1 else None
        frontier = service_frontier(service, budget_units, unit, price)
        items = sorted(frontier.values(), key=lambda x: x.cost)
        if not items:
            return Solution("infeasible", (), float("-inf"), time.perf_counter() - started, "dp", ("no plan fits the budget",))
        new_served = np.full_like(served, neg)
        new_value = np.full_like(value, -np.inf)
        pick = np.full(budget_units + 1, -1, dtype=np.int64)
        for i, item in enumerate(items):
            c = item.cost
            item_served = round(item.served * _SERVED_SCALE)
            item_value = _value(service, item) - service.cost_weight * (c * unit / 1000.0) / problem.budget_cpu
            cand_served = np.full_like(served, neg)
            cand_value = np.full_like(value, -np.inf)
            cand_served[c:] = served[: budget_units + 1 - c] + item_served
            cand_value[c:] = value[: budget_units + 1 - c] + item_value
            valid = served >= 0
            cand_ok = np.zeros_like(valid)
            cand_ok[c:] = valid[: budget_units + 1 - c]
            better = cand_ok & ((cand_served > new_served) | ((cand_served == new_served) & (cand_value > new_value + 1e-12)))
            new_served = np.where(better, cand_served, new_served)
            new_value = np.where(better, cand_value, new_value)
            pick = np.where(better, i, pick)
        served, value = new_served, new_value
        choices.append((items, pick))
    reachable = np.flatnonzero(served >= 0)
    if reachable.size == 0:
        return Solution("infeasible", (), float("-inf"), time.perf_counter() - started, "dp", ("no plan fits the budget",))
    best_served = served[reachable].max()
    candidates = reachable[served[reachable] == best_served]
    best_value = value[candidates].max()
    b = int(candidates[np.flatnonzero(value[candidates] >= best_value - 1e-12)[0]])  # lowest cost among ties
    picked: list[_Label] = []
    for items, pick in reversed(choices):
        label = items[int(pick[b])]
        picked.append(label)
        b -= label.cost
    picked.reverse()
    solutions: list[ServiceSolution] = []
    for service, label in zip(problem.services, picked, strict=True):
        chosen = dict(label.picks)
        solutions.append(score(service, chosen, problem.budget_cpu, problem.budget_gpu))
    demand = sum(s.load_rps for s in problem.services)
    total = sum(s.served_rps for s in solutions)
    status: Status = "optimal" if total >= demand - TOLERANCE * max(1.0, demand) else "infeasible"
    notes = () if status == "optimal" else (f"the budget serves at most {total:.3f} of {demand:.3f} rps",)
    return Solution(status, tuple(solutions), sum(s.objective for s in solutions), time.perf_counter() - started, "dp", notes)
