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

When one service is solved alone (``cost_per_unit`` given), labels are also *bounded* against
the best plan known (the incumbent), compared as the solver compares plans: the most load
served, then the best value. Every label is itself a plan (once no required variant is still to
come), so incumbents appear from the first variant on; the very first is the best one-variant
plan. A label is dropped when its completions cannot serve as much as the incumbent, or cannot
serve more and cannot reach its value. A completion adds at most ``X = min(L − S, cap(B − cost))``
of load, where ``cap(b)`` is the most capacity the variants still to come fit in ``b`` cost units
(a small knapsack, :func:`_capacities`), and earns at most ``X·ρ``, where ``ρ`` is the best
accuracy-minus-cost per request of any option still to come (:func:`_rates`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from infadapter.solver.milp import prune
from infadapter.solver.problem import TOLERANCE, ResourceOption, ServiceProblem

_EPS = 1e-12  # dominance slack: labels equal up to rounding dominate each other (the first kept wins)
_BOUND_SLACK = 1e-9  # bounding keeps labels this close to the incumbent, so ties survive to the tie-break
SERVED_SCALE = 1e6  # routed load is compared on a 1e-6 rps grid, exactly, as integers

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
    picks: Picks

    def chosen(self) -> dict[str, ResourceOption]:
        out: dict[str, ResourceOption] = {}
        node = self.picks
        while node is not None:
            node, name, option = node
            out[name] = option
        return out


# a label while the DP runs: (cost, served, mass, transition, count, picks); tuples are several
# times cheaper to build and sort than dataclass instances, and this is the solver's hot path
_Row = tuple[int, float, float, float, int, Picks]


@dataclass(frozen=True, slots=True)
class _Stage:
    """One variant's data, laid out for the inner loop."""

    name: str
    accuracy: float
    required: bool
    options: tuple[tuple[int, float, float, ResourceOption], ...]  # (cost units, capacity, transition weight, option) by cost


def _stages(service: ServiceProblem, unit_milli: int) -> list[_Stage]:
    max_l = service.max_load_time_s
    stages = []
    for variant in sorted(service.variants, key=lambda v: (-v.accuracy, v.name)):
        weight = variant.load_time_s / max_l if max_l > 0 else 0.0
        options = sorted(prune(variant, service.load_rps), key=lambda o: o.cost_cpu)
        rows = tuple((round(o.cost_cpu * 1000.0) // unit_milli, o.capacity_rps, weight if o.transition_from(variant.current) else 0.0, o) for o in options)
        stages.append(_Stage(variant.name, variant.accuracy, variant.required, rows))
    return stages


def _rates(stages: Sequence[_Stage], load: float, cost_per_unit: float) -> list[float]:
    """``rates[k]``: an upper bound on what one more request earns from the variants after stage ``k``.

    For option ``o`` of variant ``m`` serving ``q ≤ min(th_o, R) ≤ min(th_o, L)``, its term
    ``a_m·q/L − price·c_o`` is at most ``q·(a_m/L − price·c_o/min(th_o, L))``; the best such rate
    (or 0) times the load still to route bounds the whole completion. Extra transition only lowers it.
    """
    rates = [0.0] * len(stages)
    best = 0.0
    for k in range(len(stages) - 1, -1, -1):
        rates[k] = best
        stage = stages[k]
        for cost, capacity, _, _ in stage.options:
            useful = min(capacity, load)
            if useful > 0:
                best = max(best, stage.accuracy / load - cost_per_unit * cost / useful)
    return rates


def _capacities(stages: Sequence[_Stage], budget_units: int) -> list[list[float]]:
    """``caps[k][b]``: the most capacity the variants after stage ``k`` fit in ``b`` cost units.

    A multiple-choice knapsack over the budget grid, one numpy pass per option; it ignores that
    a later variant may be required, which only makes it larger (still a bound).
    """
    after = np.zeros(budget_units + 1)
    caps: list[list[float]] = [[]] * len(stages)
    for k in range(len(stages) - 1, -1, -1):
        caps[k] = after.tolist()
        best = after.copy()
        for cost, capacity, _, _ in stages[k].options:
            if cost > budget_units:
                break
            np.maximum(best[cost:], after[: budget_units + 1 - cost] + capacity, out=best[cost:])
        after = best
    return caps


@dataclass(frozen=True, slots=True)
class _Incumbent:
    """The best plan known, as the solver ranks plans: served load (on the integer grid), then value."""

    served: int
    value: float

    def beaten_by(self, served: float, value: float) -> bool:
        grid = round(served * SERVED_SCALE)
        return grid > self.served or (grid == self.served and value > self.value)


def _first_incumbent(service: ServiceProblem, stages: Sequence[_Stage], budget_units: int, price: float) -> _Incumbent | None:
    """The best one-variant plan (none when a variant is required: a single one may not be a plan)."""
    load = service.load_rps
    if any(stage.required for stage in stages):
        return None
    best: _Incumbent | None = None
    for stage in stages:
        for cost, capacity, weight, _ in stage.options:
            if cost > budget_units:
                break
            served = min(capacity, load)
            value = stage.accuracy * served / load - service.transition_weight * weight - price * cost
            if best is None or best.beaten_by(served, value):
                best = _Incumbent(round(served * SERVED_SCALE), value)
    return best


def _improve(labels: Sequence[_Row], service: ServiceProblem, price: float, incumbent: _Incumbent | None) -> _Incumbent | None:
    """The incumbent, or a better plan among ``labels`` (each is a plan once nothing required is left)."""
    for cost, served, mass, transition, count, _ in labels:
        if count:
            value = _value(service, mass, transition) - price * cost
            if incumbent is None or incumbent.beaten_by(served, value):
                incumbent = _Incumbent(round(served * SERVED_SCALE), value)
    return incumbent


def _bound(labels: Sequence[_Row], service: ServiceProblem, rate: float, caps: Sequence[float], price: float, incumbent: _Incumbent) -> list[_Row]:
    """The labels some completion of which may still beat the incumbent."""
    load, beta, budget = service.load_rps, service.transition_weight, len(caps) - 1
    noise = 1e-12 * max(1.0, load)  # float error of the served sums: keeps a label on a grid boundary
    rate = max(0.0, rate)
    kept: list[_Row] = []
    for label in labels:
        cost, served, mass, transition = label[0], label[1], label[2], label[3]
        extra = min(load - served, caps[budget - cost])
        most = round((served + max(0.0, extra) + noise) * SERVED_SCALE)
        if most < incumbent.served:
            continue  # cannot serve as much
        if most == incumbent.served and mass / load + extra * rate - beta * transition - price * cost < incumbent.value - _BOUND_SLACK:
            continue  # cannot serve more, and cannot reach the value
        kept.append(label)
    return kept


def _grow(labels: list[_Row], stage: _Stage, load: float, budget_units: int) -> list[_Row]:
    """Every label extended by every option of ``stage`` that fits (and, unless required, left as is)."""
    grown: list[_Row] = [] if stage.required else list(labels)
    accuracy, name = stage.accuracy, stage.name
    for cost, served, mass, transition, count, picks in labels:
        room = load - served
        if room <= TOLERANCE and count and not stage.required:
            continue  # everything is routed: another variant adds cost and nothing else
        room = max(0.0, room)
        for option_cost, capacity, weight, option in stage.options:
            total = cost + option_cost
            if total > budget_units:
                break
            q = capacity if capacity < room else room
            grown.append((total, served + q, mass + accuracy * q, weight if weight > transition else transition, count + 1, (picks, name, option)))
    return grown


def _dominance_filter(labels: list[_Row], a_next: float) -> list[_Row]:
    """The labels that no other label dominates (of equal ones, the first in the scan order)."""
    labels.sort(key=lambda x: (x[0], -x[1], -x[2], x[3], x[4]))
    fronts: dict[float, tuple[list[float], list[float]]] = {}  # T -> S ascending, A' strictly descending
    kept: list[_Row] = []
    for label in labels:
        served, transition = label[1], label[3]
        adjusted = label[2] - a_next * served
        dominated = False
        for level, (xs, ys) in fronts.items():
            if level <= transition + _EPS:
                i = bisect_left(xs, served - _EPS)
                if i < len(xs) and ys[i] >= adjusted - _EPS:  # ys[i] is the best A' among S ≥ this S
                    dominated = True
                    break
        if dominated:
            continue
        kept.append(label)
        if label[4] == 0:
            continue  # "something serves": the empty plan never stands in for a real one
        xs, ys = fronts.setdefault(transition, ([], []))
        i = bisect_left(xs, served)
        start = i
        while start > 0 and ys[start - 1] <= adjusted:  # points with less S and no more A' are now dominated
            start -= 1
        end = i
        while end < len(xs) and xs[end] == served:  # same S, less A' (more was ruled out above)
            end += 1
        xs[start:end] = [served]
        ys[start:end] = [adjusted]
    return kept


def frontier(service: ServiceProblem, budget_units: int, unit_milli: int, cost_per_unit: float | None = None) -> list[Label]:
    """For every exact cost (in units), the best complete label: most load served, then best value.

    Sorted by cost. With ``cost_per_unit`` (the objective's price of one cost unit; only when this
    service is solved alone, so only its optimum matters) labels are bounded as well, so costs
    that cannot hold the optimum may be missing.
    """
    load = service.load_rps
    stages = _stages(service, unit_milli)
    bounding = cost_per_unit is not None and load > TOLERANCE
    price = cost_per_unit or 0.0
    rates = _rates(stages, load, price) if bounding else []
    caps = _capacities(stages, budget_units) if bounding else []
    incumbent = _first_incumbent(service, stages, budget_units, price) if bounding else None
    last_required = max((k for k, stage in enumerate(stages) if stage.required), default=-1)
    labels: list[_Row] = [(0, 0.0, 0.0, 0.0, 0, None)]
    for k, stage in enumerate(stages):
        a_next = stages[k + 1].accuracy if k + 1 < len(stages) else 0.0
        grown = _grow(labels, stage, load, budget_units)
        if bounding:
            if k >= last_required:
                incumbent = _improve(grown, service, price, incumbent)
            if incumbent is not None:
                grown = _bound(grown, service, rates[k], caps[k], price, incumbent)
        labels = _dominance_filter(grown, a_next)
    best: dict[int, _Row] = {}
    for label in labels:
        if label[4] == 0:
            continue
        current = best.get(label[0])
        if current is None or _better(service, label, current):
            best[label[0]] = label
    return [Label(*best[cost]) for cost in sorted(best)]


def _value(service: ServiceProblem, mass: float, transition: float) -> float:
    """Accuracy minus transition (the cost term is added by the caller, per unit)."""
    accuracy = mass / service.load_rps if service.load_rps > 0 else 0.0
    return accuracy - service.transition_weight * transition


def label_value(service: ServiceProblem, label: Label) -> float:
    return _value(service, label.mass, label.transition)


def _better(service: ServiceProblem, a: _Row, b: _Row) -> bool:
    sa, sb = round(a[1] * SERVED_SCALE), round(b[1] * SERVED_SCALE)
    if sa != sb:
        return sa > sb
    return _value(service, a[2], a[3]) > _value(service, b[2], b[3]) + 1e-12
