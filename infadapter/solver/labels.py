"""The per-service level of the dynamic program: a label-setting DP over the variants.

Variants are taken in decreasing accuracy. A *label* is a partial plan: its cost (in cost
units), the load routed so far ``S``, the accuracy mass ``A = Σ a·q`` and the transition ``T``
(the largest normalised load time it changes). Adding variant ``m`` at option ``o`` routes
``min(th_o, L − S)`` more to it: the split is most-accurate-first, optimal for fixed choices.

Label 1 *dominates* label 2 when it costs no more, has no larger ``T``, ``S1 ≥ S2`` and
``A1 − A2 ≥ a_next·(S1 − S2)``, where ``a_next`` bounds the accuracy of every variant still to
come: whatever completes label 2 completes label 1 at least as well. With ``A' = A − a_next·S``
the test is ``cost1 ≤ cost2, T1 ≤ T2, S1 ≥ S2, A'1 ≥ A'2``; labels are scanned by cost, and
the kept ones are held per value of ``T`` (a handful: 0 and the variants' load-time weights) as
a staircase in ``(S, A')``, so each test is a binary search instead of a scan of every kept label.

Labels are also *bounded* against the best plans known (:mod:`.bounds`).

Growing and bounding work on numpy arrays of labels (a bounded 300-replica service grows a
million candidates at some variant); only the labels that survive the bound reach the
dominance scan, and only those it keeps get their chain of picks built.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from infadapter.solver.bounds import (
    SERVED_SCALE,
    BoolArray,
    FloatArray,
    Incumbents,
    IntArray,
    NotApplicable,
    Stage,
    capacities,
    grid,
    rates,
    stages,
)
from infadapter.solver.problem import TOLERANCE, ResourceOption, ServiceProblem

_EPS = 1e-12  # dominance slack on S and T: labels equal up to rounding dominate each other (the first kept wins)
_FILTER_COST = 8  # work units per label scanned for dominance (Python) against 1 per label grown (numpy)


class TooLarge(NotApplicable):
    """The dynamic program would work longer than its caller allows (``auto`` then runs the MILP)."""

    spent_s: float = 0.0  # the time already spent when it gave up (set by :func:`.dp.solve_dp`)


@dataclass(slots=True)
class WorkMeter:
    """Counts the DP's work (labels grown, and scanned at :data:`_FILTER_COST` each) against a limit.

    Counted, not timed, so that whether ``auto`` keeps the DP depends on the problem alone.
    """

    limit: int | None = None
    spent: int = 0

    def spend(self, units: int) -> None:
        self.spent += units
        if self.limit is not None and self.spent > self.limit:
            raise TooLarge(f"more than {self.limit} units of work")


@dataclass(frozen=True, slots=True)
class Pricing:
    """How the service's plans are ranked: ``w·(accuracy − β·T) − price·cost − replica·R``.

    ``price`` is the objective's price of one cost unit (``α·unit/B``), ``weight`` the service's share
    ``w_s`` of the load. ``replica`` is the tie-break's price of one replica (:func:`.dp.replica_price`):
    so small that all of a plan's replicas together cost a quarter of ``TIE_TOLERANCE`` (it orders
    only plans whose objectives tie), and far above the float noise of the values (~1e-15).
    """

    price: float
    weight: float = 1.0
    replica: float = 0.0

    @property
    def noise(self) -> float:
        """Rank values this close are equal (half a replica: one replica more always counts)."""
        return self.replica / 2 if self.replica > 0 else 1e-12


#: a chain of picks, newest first: (earlier picks, variant, option), or None for the empty plan
Picks = tuple["Picks", str, ResourceOption] | None


@dataclass(frozen=True, slots=True)
class Label:
    """A partial (or, after the last variant, complete) plan of one service."""

    cost: int
    served: float
    mass: float
    transition: float
    count: int
    replicas: int
    picks: Picks

    def chosen(self) -> dict[str, ResourceOption]:
        out: dict[str, ResourceOption] = {}
        node = self.picks
        while node is not None:
            node, name, option = node
            out[name] = option
        return out


class _Labels(NamedTuple):
    """Labels as parallel arrays; ``parent``/``option`` say how each grew (option -1: variant skipped).

    A named tuple, not a dataclass: several are built per variant of every solve, and a frozen
    dataclass's constructor costs a few microseconds more each."""

    cost: IntArray
    served: FloatArray
    mass: FloatArray
    transition: FloatArray
    picked: IntArray  # variants the label serves with (its Label.count)
    replicas: IntArray
    parent: IntArray
    option: IntArray

    def take(self, index: IntArray | BoolArray | slice) -> _Labels:
        return _Labels(
            self.cost[index],
            self.served[index],
            self.mass[index],
            self.transition[index],
            self.picked[index],
            self.replicas[index],
            self.parent[index],
            self.option[index],
        )


def _values(labels: _Labels, service: ServiceProblem, pricing: Pricing) -> FloatArray:
    """Each label's term of the objective as a plan: ``w·(accuracy − β·transition) − cost`` (no replicas)."""
    load, weight = service.load_rps, pricing.weight
    accuracy = labels.mass / load * weight if load > 0 else np.zeros_like(labels.mass)
    result: FloatArray = accuracy - service.transition_weight * weight * labels.transition - pricing.price * labels.cost
    return result


_GROW_CELLS = 1 << 18  # labels x options grown at once, then bounded: memory stays with the survivors


def _grow(labels: _Labels, stage: Stage, load: float, budget_units: int) -> Iterator[_Labels]:
    """Every label extended by every option of ``stage`` that fits (and, unless required, left as is).

    In chunks of labels, so that the caller can bound each before the next is built.
    """
    n = labels.cost.shape[0]
    step = max(1, _GROW_CELLS // (stage.costs.shape[0] + 1))
    if n <= step:  # the usual case: one part
        yield _extend(labels, 0, stage, load, budget_units)
        return
    for first in range(0, n, step):
        yield _extend(labels.take(slice(first, first + step)), first, stage, load, budget_units)


def _extend(part: _Labels, first: int, stage: Stage, load: float, budget_units: int) -> _Labels:
    """``part`` (labels ``first``, ``first + 1``, …) extended by every option of ``stage`` that fits.

    Unless the variant is required, leaving it out is one more choice: column 0 of the grow arrays
    (no cost, no capacity, no instance; option -1). One grid for both, not two parts joined after.
    """
    skip = 0 if stage.required else 1
    costs, capacities, weights, replicas, added = stage.choices
    room = load - part.served
    total = part.cost[:, None] + costs[None, :]
    fits = total <= budget_units
    if skip:
        full = (room <= TOLERANCE) & (part.picked > 0)  # full: more is only cost
        fits[:, 1:] &= ~full[:, None]
    room = np.maximum(room, 0.0)
    rows, cols = np.nonzero(fits)
    q = np.minimum(capacities[cols], room[rows])
    return _Labels(
        total[rows, cols],
        part.served[rows] + q,
        part.mass[rows] + stage.accuracy * q,
        np.maximum(part.transition[rows], weights[cols]),
        part.picked[rows] + added[cols],
        part.replicas[rows] + replicas[cols],
        rows + first,
        cols - skip,
    )


def _concat(parts: Sequence[_Labels]) -> _Labels:
    return _Labels(*(np.concatenate([getattr(x, f) for x in parts]) for f in _Labels._fields))


def _bound(labels: _Labels, values: FloatArray, service: ServiceProblem, rate: float, caps: FloatArray, incumbents: Incumbents) -> _Labels:
    """The labels some completion of which may still beat their incumbent (``values``: :func:`_values` of each)."""
    load = service.load_rps
    extra = np.maximum(0.0, np.minimum(load - labels.served, caps[caps.shape[0] - 1 - labels.cost]))
    noise = 1e-12 * max(1.0, load)  # float error of the served sums: keeps a label on a grid boundary
    optimistic = values + extra * max(0.0, rate)
    return labels.take(incumbents.keep(labels.cost, grid(labels.served + extra + noise), optimistic))


def _dominance_filter(labels: _Labels, a_next: float, per_mass: float, pricing: Pricing) -> IntArray:
    """Indices of the labels that no other label dominates (of equal ones, the first in the scan order).

    ``A'`` is taken in value units less the replicas' price, ``per_mass·(A − a_next·S) − replica·R``
    (``per_mass = w/L``, the value of one unit of accuracy mass): a label with more replicas than an
    otherwise equal one is then dominated by it, so ties reach the end with their fewest replicas.
    """
    order = np.lexsort((labels.picked, labels.replicas, labels.transition, -labels.mass, -labels.served, labels.cost))
    served_l = labels.served[order].tolist()
    adjusted_l = (per_mass * (labels.mass - a_next * labels.served) - pricing.replica * labels.replicas)[order].tolist()
    slack = pricing.noise
    transition_l = labels.transition[order].tolist()
    count_l = labels.picked[order].tolist()
    fronts: list[tuple[float, list[float], list[float]]] = []  # by T ascending: (T, S ascending, A' strictly descending)
    kept: list[int] = []
    for j, served in enumerate(served_l):
        transition, adjusted = transition_l[j], adjusted_l[j]
        dominated = False
        for level, xs, ys in fronts:
            if level > transition + _EPS:
                break
            i = bisect_left(xs, served - _EPS)
            if i < len(xs) and ys[i] >= adjusted - slack:  # ys[i] is the best A' among S ≥ this S
                dominated = True
                break
        if dominated:
            continue
        kept.append(j)
        if count_l[j] == 0:
            continue  # "something serves": the empty plan never stands in for a real one
        xs, ys = _front(fronts, transition)
        i = bisect_left(xs, served)
        start = i
        while start > 0 and ys[start - 1] <= adjusted:  # points with less S and no more A' are now dominated
            start -= 1
        end = i
        while end < len(xs) and xs[end] == served:  # same S, less A' (more was ruled out above)
            end += 1
        xs[start:end] = [served]
        ys[start:end] = [adjusted]
    result: IntArray = order[np.array(kept, dtype=np.int64)]
    return result


def _front(fronts: list[tuple[float, list[float], list[float]]], level: float) -> tuple[list[float], list[float]]:
    """The staircase of labels of transition ``level`` (created, in order, if none yet)."""
    for known, xs, ys in fronts:
        if known == level:
            return xs, ys
    fronts.append((level, [], []))
    fronts.sort(key=lambda front: front[0])
    return next((xs, ys) for known, xs, ys in fronts if known == level)


def _link(labels: _Labels, stage: Stage, picks: Sequence[Picks]) -> list[Picks]:
    """The chain of picks of every label, from its parent's chain and the option it added."""
    options, name = stage.options, stage.name
    return [
        picks[parent] if option < 0 else (picks[parent], name, options[option])
        for parent, option in zip(labels.parent.tolist(), labels.option.tolist(), strict=True)
    ]


def frontier(service: ServiceProblem, budget_units: int, unit_milli: int, pricing: Pricing, alone: bool, work: WorkMeter) -> list[Label]:
    """For every exact cost (in units), the best complete label: most load served, then best rank value.

    Sorted by cost. ``pricing`` ranks the plans (:class:`Pricing`). ``alone``: the service is
    solved by itself, so only its optimum matters; otherwise every cost level that can improve on
    the cheaper ones is kept for the knapsack across services. Bounding may leave out the rest.
    Raises :class:`TooLarge` when the work exceeds ``work``'s limit.
    """
    load = service.load_rps
    all_stages = stages(service, unit_milli)
    bounding = load > TOLERANCE
    rate = rates(all_stages, load, pricing.price, pricing.weight) if bounding else []
    caps = capacities(all_stages, budget_units) if bounding else []
    incumbents = Incumbents(budget_units, alone)
    if bounding:
        incumbents.add_single_variant_plans(all_stages, service, pricing.price, pricing.weight)
    last_required = max((k for k, stage in enumerate(all_stages) if stage.required), default=-1)
    per_mass = pricing.weight / load if load > 0 else 0.0
    zero_i, zero_f = np.zeros(1, dtype=np.int64), np.zeros(1)
    labels = _Labels(zero_i, zero_f, zero_f, zero_f, zero_i, zero_i, zero_i, zero_i - 1)
    picks: list[Picks] = [None]
    for k, stage in enumerate(all_stages):
        a_next = all_stages[k + 1].accuracy if k + 1 < len(all_stages) else 0.0
        parts: list[_Labels] = []
        for part in _grow(labels, stage, load, budget_units):
            work.spend(part.cost.shape[0])
            if bounding:
                values = _values(part, service, pricing)
                if k >= last_required:  # every label now holds every required variant: each is a plan
                    plans = part.picked > 0
                    incumbents.add(part.cost[plans], grid(part.served[plans]), values[plans])
                parts.append(_bound(part, values, service, rate[k], caps[k], incumbents))
            else:
                parts.append(part)
        grown = parts[0] if len(parts) == 1 else _concat(parts)
        work.spend(_FILTER_COST * grown.cost.shape[0])
        # one label dominates none (often so at the paper's size): no scan, no copy
        labels = grown if grown.cost.shape[0] <= 1 else grown.take(_dominance_filter(grown, a_next, per_mass, pricing))
        picks = _link(labels, stage, picks)
    return _best_per_cost(service, labels, picks, pricing)


def _best_per_cost(service: ServiceProblem, labels: _Labels, picks: Sequence[Picks], pricing: Pricing) -> list[Label]:
    """The best label of every cost: the most served (on the grid), then the best rank value (the
    first of those within :attr:`Pricing.noise`: at one cost, fewer replicas rank higher)."""
    best: dict[int, tuple[int, float, Label]] = {}
    columns = (labels.cost, labels.served, labels.mass, labels.transition, labels.picked, labels.replicas)
    for (cost, served, mass, transition, count, replicas), chain in zip(zip(*(c.tolist() for c in columns), strict=True), picks, strict=True):
        if count == 0:
            continue
        key = (round(served * SERVED_SCALE), rank_value(service, mass, transition, replicas, pricing))
        current = best.get(cost)
        if current is None or key[0] > current[0] or (key[0] == current[0] and key[1] > current[1] + pricing.noise):
            best[cost] = (*key, Label(cost, served, mass, transition, count, replicas, chain))
    return [best[cost][2] for cost in sorted(best)]


def rank_value(service: ServiceProblem, mass: float, transition: float, replicas: int, pricing: Pricing) -> float:
    """``w·(accuracy − β·transition) − replica·R``: the rank of a plan without its cost term (added per unit)."""
    accuracy = mass / service.load_rps * pricing.weight if service.load_rps > 0 else 0.0
    return accuracy - service.transition_weight * pricing.weight * transition - pricing.replica * replicas
