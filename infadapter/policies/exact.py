"""What ``ours`` and ``oracle`` share: memoised exact plans, and the test of whether a change is worth it.

A running plan is kept while it serves the load and the optimum beats its objective by less than a
tolerance plus the price of loading the optimum's new variants (:func:`loading_cost`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

from infadapter.planning import Plan, plan_for_load, service_problem
from infadapter.planning.problem import spec_problem
from infadapter.policies.base import Resize
from infadapter.profiles import Profile
from infadapter.solver.evaluate import score
from infadapter.spec import InferenceServiceSpec, ResizePolicy


def _config_key(plan: Plan | None) -> tuple[tuple[str, float, int, int], ...]:
    if plan is None:
        return ()
    return tuple(sorted((v.name, round(v.cpu_cores, 6), v.replicas, v.gpus) for v in plan.variants))


class PlanCache:
    """Memoised exact plans keyed by (load rounded up to ``step_rps``, current config, variants).

    Bounded (least recently used out): an operator runs for months, and every new load level or running
    configuration is a new key; a few hundred cover the loads a service moves between.
    """

    def __init__(self, spec: InferenceServiceSpec, profile: Profile, step_rps: float = 1.0, max_entries: int = 512) -> None:
        self.spec = spec
        self.profile = profile
        self.step_rps = step_rps
        self.max_entries = max(1, max_entries)
        self._plans: OrderedDict[tuple[Any, ...], Plan] = OrderedDict()

    def __len__(self) -> int:
        return len(self._plans)

    def rounded(self, load_rps: float) -> float:
        return math.ceil(max(0.0, load_rps) / self.step_rps - 1e-9) * self.step_rps

    def plan(self, load_rps: float, current: Plan | None, variants: tuple[str, ...] | None = None) -> Plan:
        load = self.rounded(load_rps)
        key = (load, _config_key(current), variants)
        plan = self._plans.get(key)
        if plan is None:
            plan = plan_for_load(self.spec, self.profile, load, current, variants=variants)
            self._plans[key] = plan
            if len(self._plans) > self.max_entries:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
        return plan


def resize_mode(spec: InferenceServiceSpec) -> Resize:
    return "in_place" if spec.adaptation.resize_policy == ResizePolicy.IN_PLACE_OR_RECREATE else "recreate"


def serves(plan: Plan | None, load_rps: float) -> bool:
    return plan is not None and plan.status == "optimal" and plan.capacity_rps >= load_rps - 1e-9


def fits(plan: Plan, spec: InferenceServiceSpec) -> bool:
    """``plan`` is within the spec's budget (it may not be once the budget shrank: an edit, a pool's new division)."""
    return not spec_problem(spec).over_budget(v.option() for v in plan.variants)


def objective_of(spec: InferenceServiceSpec, profile: Profile, plan: Plan, load_rps: float) -> float:
    """The objective the running ``plan`` reaches at ``load_rps`` (no transition)."""
    names = [v.name for v in plan.variants]
    service = service_problem(spec, profile, load_rps, plan, variants=names)
    options = {v.name: v.option() for v in plan.variants}
    return score(service, options, spec_problem(spec)).objective


def loading_cost(plan: Plan, current: Plan, spec: InferenceServiceSpec, startup_s: float = 4.0, amortise_s: float = 60.0) -> float:
    """The make-before-break cost of the variants ``plan`` loads, in objective units.

    A new variant's instance costs its cores for ``load_time_s + startup_s`` before it serves, while the
    old plan keeps running: ``α/B · Σ cores · cold_start / amortise_s`` (the solver's β term only ranks
    reloads; this prices them). Zero for in-place resizes of running variants.
    """
    running = {v.name for v in current.variants}
    core_seconds = sum(v.total_cpu * (spec.variant(v.name).load_time_s + startup_s) for v in plan.variants if v.name not in running)
    return spec.objective.cost_weight / spec.budget.cpu * core_seconds / amortise_s
