"""Bounding for the label DP (:mod:`.labels`): incumbents and what a completion can still add.

Every label is a plan once no required variant is still to come, so the best plans known (the
*incumbents*) appear from the first variant on; the very first are the one-variant plans. Plans
are ranked as the solver ranks them: the most load served (on the 1e-6 rps grid), then the best
value (accuracy − transition − cost). A label is dropped when none of its completions can beat
the incumbent it is compared with:

- a service solved alone needs only its optimum: every label is compared with the best plan known;
- a service of a joint solve needs, for every cost, the best plan costing no more (the knapsack
  would swap a costlier plan that is no better for the cheaper one): a label of cost ``c`` is
  compared with the best plan known that costs at most ``c`` (its completions cost at least ``c``).

A completion adds at most ``X = min(L − S, cap(B − cost))`` of load, where ``cap(b)`` is the most
capacity the variants still to come fit in ``b`` cost units (:func:`capacities`), and earns at most
``X·ρ``, where ``ρ`` is the best accuracy-minus-cost per request of any option still to come
(:func:`rates`); any transition it adds only lowers its value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from infadapter.solver.milp import undominated
from infadapter.solver.problem import TIE_TOLERANCE, ResourceOption, ServiceProblem

SERVED_SCALE = 1e6  # routed load is compared on a 1e-6 rps grid, exactly, as integers
#: labels this close to an incumbent are kept: a plan within TIE_TOLERANCE of the optimum ties with it,
#: and may win the tie-break (cheaper, fewer replicas), so its labels must survive to it
_BOUND_SLACK = 2 * TIE_TOLERANCE
_NONE = -1  # the served grid value of "no plan known at this cost yet"

IntArray = np.ndarray[Any, np.dtype[np.int64]]
FloatArray = np.ndarray[Any, np.dtype[np.float64]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]


class NotApplicable(ValueError):
    """The problem has GPU options, off-grid costs or is too large for the DP: use the MILP."""


@dataclass(frozen=True, slots=True)
class Stage:
    """One variant's pruned options as arrays, by cost."""

    name: str
    accuracy: float
    required: bool
    options: tuple[ResourceOption, ...]
    costs: IntArray  # in cost units
    capacities: FloatArray
    weights: FloatArray  # the transition the option causes (0 when it changes nothing)
    replicas: IntArray
    #: (costs, capacities, weights, replicas, instances added) of every choice the DP grows a label by:
    #: the options, led (unless the variant is required) by leaving the variant out
    choices: tuple[IntArray, FloatArray, FloatArray, IntArray, IntArray]


def stages(service: ServiceProblem, unit_milli: int) -> list[Stage]:
    """The service's variants in decreasing accuracy, each with its undominated options."""
    max_l = service.max_load_time_s
    out = []
    for variant in sorted(service.variants, key=lambda v: (-v.accuracy, v.name)):
        weight = variant.load_time_s / max_l if max_l > 0 else 0.0
        kept, cpu, trans = undominated(variant, service.load_rps)
        kept.sort(key=lambda i: (cpu[i], i))  # by cost, ties in the given order
        options = tuple(variant.options[i] for i in kept)
        lead = [] if variant.required else [0]  # the choice "left out", first (see Stage.choices)
        choices = (
            np.array(lead + [round(cpu[i] * 1000.0) // unit_milli for i in kept], dtype=np.int64),
            np.array(lead + [o.capacity_rps for o in options], dtype=np.float64),
            np.array(lead + [weight if trans[i] else 0.0 for i in kept], dtype=np.float64),
            np.array(lead + [o.replicas for o in options], dtype=np.int64),
            np.array(lead + [1] * len(kept), dtype=np.int64),
        )
        skip = len(lead)  # the options' own arrays are views past it: built once, from lists, not joined after
        costs, capacities, weights, replicas = (column[skip:] for column in choices[:4])
        out.append(Stage(variant.name, variant.accuracy, variant.required, options, costs, capacities, weights, replicas, choices))  # type: ignore[arg-type]
    return out


#: the grid's ceiling: an absurd load (1e300 rps) would overflow int64, whose cast is undefined; loads past
#: 4.6e12 rps saturate here, where no plan is feasible anyway
GRID_MAX = float(2**62)


def grid(served: FloatArray) -> IntArray:
    result: IntArray = np.rint(np.minimum(served * SERVED_SCALE, GRID_MAX)).astype(np.int64)
    return result


def rates(all_stages: Sequence[Stage], load: float, price: float, weight: float = 1.0) -> list[float]:
    """``rates[k]``: an upper bound on what one more request earns from the variants after stage ``k``.

    For option ``o`` of variant ``m`` serving ``q ≤ min(th_o, R) ≤ min(th_o, L)``, its term
    ``w·a_m·q/L − price·c_o`` is at most ``q·(w·a_m/L − price·c_o/min(th_o, L))``; the best such
    rate (or 0) times the load still to route bounds the whole completion.
    """
    sizes = [stage.costs.shape[0] for stage in all_stages]
    if not sum(sizes):
        return [0.0] * len(all_stages)
    # every option of every stage at once (a few numpy calls, not a few per stage)
    useful = np.minimum(np.concatenate([stage.capacities for stage in all_stages]), load)
    accuracy = np.repeat([stage.accuracy for stage in all_stages], sizes)
    costs = np.concatenate([stage.costs for stage in all_stages])
    serving = useful > 0
    rate = np.where(serving, accuracy / load * weight - price * costs / np.where(serving, useful, 1.0), -np.inf).tolist()
    out = [0.0] * len(all_stages)
    best, end = 0.0, len(rate)
    for k in range(len(all_stages) - 1, -1, -1):
        out[k] = best
        start = end - sizes[k]
        best = max([best, *rate[start:end]])
        end = start
    return out


def capacities(all_stages: Sequence[Stage], budget_units: int) -> list[FloatArray]:
    """``caps[k][b]``: the most capacity the variants after stage ``k`` fit in ``b`` cost units.

    A multiple-choice knapsack over the budget grid, one numpy pass per variant; it ignores that
    a later variant may be required, which only makes it larger (still a bound).
    """
    budgets = np.arange(budget_units + 1)
    after = np.zeros(budget_units + 1)
    out: list[FloatArray] = [after] * len(all_stages)
    for k in range(len(all_stages) - 1, -1, -1):
        out[k] = after
        stage = all_stages[k]
        left = budgets[None, :] - stage.costs[:, None]  # budget left for the later variants, per option
        with_option = np.where(left >= 0, after[np.maximum(left, 0)] + stage.capacities[:, None], 0.0)
        after = np.maximum(after, with_option.max(axis=0)) if stage.costs.shape[0] else after
    return out


class Incumbents:
    """For every cost ``c``, the best plan known that a label of cost ``c`` must beat.

    Alone, one plan (the best known) serves for every cost, so only it is kept.
    """

    def __init__(self, budget_units: int, alone: bool) -> None:
        self.alone = alone
        self.budget_units = budget_units
        size = 1 if alone else budget_units + 1
        self.served: IntArray = np.full(size, _NONE, dtype=np.int64)
        self.value: FloatArray = np.full(size, -np.inf)

    def add_single_variant_plans(self, all_stages: Sequence[Stage], service: ServiceProblem, price: float, weight: float = 1.0) -> None:
        """Every option of every variant alone is a plan, unless some variant is required."""
        if any(stage.required for stage in all_stages) or not all_stages:
            return
        load = service.load_rps
        costs = np.concatenate([stage.costs for stage in all_stages])
        served = np.minimum(np.concatenate([stage.capacities for stage in all_stages]), load)
        accuracy = np.concatenate([np.full(stage.costs.shape[0], stage.accuracy) for stage in all_stages])
        weights = np.concatenate([stage.weights for stage in all_stages])
        self.add(costs, grid(served), accuracy * served / load * weight - service.transition_weight * weight * weights - price * costs)

    def add(self, costs: IntArray, served: IntArray, values: FloatArray) -> None:
        """Record plans (cost, served on the grid, value); keep, per cost, the best at that cost or less.

        Plans over the budget are left out (single-variant plans may be).
        """
        fits = costs <= self.budget_units
        if not fits.all():
            costs, served, values = costs[fits], served[fits], values[fits]
        if costs.size == 0:
            return
        if self.alone:
            top = served.max()
            value = values[served == top].max()
            if top > self.served[0] or (top == self.served[0] and value > self.value[0]):
                self.served[0], self.value[0] = top, value
            return
        order = np.lexsort((values, served, costs))
        ordered = costs[order]
        best = order[np.append(ordered[1:] != ordered[:-1], True)]  # the last of each cost is its best
        at, new_served, new_value = costs[best], served[best], values[best]
        better = (new_served > self.served[at]) | ((new_served == self.served[at]) & (new_value > self.value[at]))
        self.served[at[better]] = new_served[better]
        self.value[at[better]] = new_value[better]
        self._carry_forward()

    def _carry_forward(self) -> None:
        """Make each cost's entry the best over every cost up to it."""
        most = np.maximum.accumulate(self.served)
        candidates = np.where(self.served == most, self.value, -np.inf)
        # a running maximum of the value that restarts wherever `most` rises: ranks keyed by segment
        segment = np.concatenate(([0], np.cumsum(most[1:] != most[:-1])))
        ranks = np.empty(candidates.shape[0], dtype=np.int64)
        ranks[np.argsort(candidates, kind="stable")] = np.arange(candidates.shape[0])
        key = np.maximum.accumulate(segment * candidates.shape[0] + ranks)
        self.served, self.value = most, np.sort(candidates)[key % candidates.shape[0]]

    def keep(self, cost: IntArray, most_served: IntArray, optimistic: FloatArray) -> BoolArray:
        """Labels whose completions may serve more than, or as much and more value than, their incumbent."""
        at = 0 if self.alone else cost
        served, value = self.served[at], self.value[at]
        result: BoolArray = (most_served > served) | ((most_served == served) & (optimistic >= value - _BOUND_SLACK))
        return result
