"""``ours``: the project's default policy.

``ours`` is a fast, lean control loop: a forecast for the next seconds, an exact plan on the real
capacities, and a reactive layer that fixes what the forecast misses within a couple of seconds.

1. **Forecast** (every ``interval_s`` = 10 s): the project's ``ours`` forecaster (calibrated log-linear
   peak model), the ``quantile`` (default: the median) of the peak over the next ``horizon_s`` = 20 s,
   never below the highest second of the last ``floor_s`` = 30 s.
2. **Reactive layer** (every second, between ticks): the burst detector compares the newest seconds
   with the provisioned capacity; at 90 % utilisation or a rising trend that would cross it, ours
   re-plans at once for the observed (trend-projected) peak, growing the running variants **in
   place**. When they cannot reach the load but can add capacity in place, that growth is applied as a
   stop-gap and the full plan (which may cold-start a variant, make-before-break) follows a second
   later (a stop-gap that needs new replicas would only delay it: they cold-start too). The detector's
   trigger is the margin: no multiplicative headroom (``burst_headroom`` = 0).
3. **Exact plan** (``plan_for_load``: the checked MILP) on the profile's real capacities with the spec's
   objective. The running plan is kept while it serves the load and the optimum beats it by less than
   ``resize_tolerance`` plus the **price of loading** its new variants: their cores during the cold start
   (make-before-break keeps the old plan running meanwhile), ``α/B · Σ cores · (load_time + startup_s) /
   amortise_s``. The solver's β term ranks reloads but, at 0.001, never prices them.
4. **Live re-weighting**: between ticks the router weights are re-split for the load expected now (the
   newest 5-s peak + 10 %), most accurate variant first up to its capacity, so headroom sits on the
   cheaper variant until the load needs it (weight changes are live, no reconfiguration).
5. **Scale-down stabilisation**: the planned load is the highest target of the last ``stabilisation_s``
   (30 s, or the spec's value if shorter): with 1-s in-place resizes a long hold only costs cores.
6. Options: ``keep_warm=<variant>`` keeps a variant always on (no cold start when a burst needs it, at
   the price of its minimum size); ``load_aware_cost`` scales α by (day-mean load / planned load).

Why the median and no margin: with a ~2-s reaction time, forecast errors cost a second or two of
tight capacity, not minutes; on the paper's window and ten more a 95 % quantile or a 15 % burst margin
bought no fewer violations (≈ 0.1 % either way) but more cores and, when the budget binds, less
accuracy (headroom has to come from cheaper variants). See ``docs/simulator.md``.

``oracle`` (:mod:`infadapter.policies.oracle`) is what ``ours`` is measured against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from infadapter.forecast import detect_burst, make_forecaster
from infadapter.planning import Plan
from infadapter.policies.base import Decision, FloatArray, Observation, Resize, StateDict, recent_observed
from infadapter.policies.exact import PlanCache, fits, loading_cost, objective_of, resize_mode, serves
from infadapter.profiles import Profile
from infadapter.spec import InferenceServiceSpec

#: plan memos kept per distinct cost weight (a load-aware weight moves with the load): the newest are kept
MAX_COST_WEIGHTS = 16


def _replicas(plan: Plan, name: str) -> int:
    running = plan.variant(name)
    return running.replicas if running is not None else 0


@dataclass(frozen=True)
class OursState(StateDict):
    """Targets of the stabilisation window ((time, load) pairs) and the load of the applied plan."""

    targets: tuple[tuple[float, float], ...] = ()
    planned_rps: float = 0.0
    last_full_s: float = -1e18

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> OursState:
        return cls(tuple((float(t), float(v)) for t, v in raw.get("targets", [])), float(raw.get("planned_rps", 0.0)), float(raw.get("last_full_s", -1e18)))


class NoReactiveLayer:
    """What the oracle and the static policies share: the state ``ours`` keeps, and no reaction between ticks."""

    def initial_state(self) -> OursState:
        return OursState()

    def state_from_dict(self, raw: dict[str, Any]) -> OursState:
        return OursState.from_dict(raw)

    def between_ticks(self, obs: Observation, state: OursState) -> bool:
        return False


def split_weights(plan: Plan, load_rps: float) -> Plan:
    """``plan`` with its weights re-split for ``load_rps``: most accurate first up to each capacity,
    any excess spread by capacity (the solver's split, for the load expected now rather than planned)."""
    order = sorted(plan.variants, key=lambda v: (-v.accuracy, v.name))
    remaining = max(0.0, load_rps)
    shares: dict[str, float] = {}
    for v in order:
        shares[v.name] = min(v.capacity_rps, remaining)
        remaining -= shares[v.name]
    total_capacity = sum(v.capacity_rps for v in plan.variants)
    if remaining > 0 and total_capacity > 0:
        for v in plan.variants:
            shares[v.name] += remaining * v.capacity_rps / total_capacity
    total = sum(shares.values())
    if total <= 0:
        return plan
    return replace(plan, variants=tuple(replace(v, weight=shares[v.name] / total) for v in plan.variants))


def weights_differ(a: Plan, b: Plan, tolerance: float) -> bool:
    wa, wb = a.weights(), b.weights()
    return any(abs(wa.get(k, 0.0) - wb.get(k, 0.0)) > tolerance for k in set(wa) | set(wb))


class OursPolicy:
    """``ours`` (see the module docstring)."""

    def __init__(
        self,
        spec: InferenceServiceSpec,
        profile: Profile,
        *,
        interval_s: float | None = None,
        quantile: float | None = None,
        horizon_s: float | None = None,
        floor_s: int = 30,
        stabilisation_s: float | None = None,
        keep_warm: str | None = None,
        burst: bool | None = None,
        burst_window_s: int = 2,
        burst_headroom: float = 0.0,
        first_tick_s: float = 0.0,
        reweight: bool = True,
        split_window_s: int = 5,
        split_headroom: float = 0.1,
        weight_tolerance: float = 0.02,
        load_aware_cost: bool = False,
        reference_s: int = 86400,
        resize_tolerance: float = 0.0005,
        startup_s: float = 4.0,
        amortise_s: float = 60.0,
    ) -> None:
        if keep_warm is not None:
            variants = [
                v.model_copy(update={"resources": v.resources.model_copy(update={"min_replicas": 1})}) if v.name == keep_warm else v for v in spec.variants
            ]
            spec = spec.model_copy(update={"variants": variants})
        self.name = "ours"
        self.keep_warm = keep_warm
        self.spec = spec
        self.profile = profile
        # the spec's settings unless overridden (the simulator's paper scenario passes the project defaults)
        self.interval_s = float(interval_s if interval_s is not None else spec.adaptation.interval_s)
        self.first_tick_s = float(first_tick_s)
        self.quantile = float(quantile if quantile is not None else spec.forecast.quantile)
        self.horizon_s = float(horizon_s if horizon_s is not None else spec.forecast.horizon_s)
        self.floor_s = int(floor_s)
        self.stabilisation_s = float(stabilisation_s if stabilisation_s is not None else spec.adaptation.scale_down_stabilisation_s)
        self.resize_tolerance = float(resize_tolerance)
        self.startup_s = float(startup_s)
        self.amortise_s = float(amortise_s)
        self.burst = spec.adaptation.burst_replan if burst is None else bool(burst)
        self.burst_window_s = int(burst_window_s)
        self.burst_headroom = float(burst_headroom)
        self.resize: Resize = resize_mode(spec)
        self.reweight = bool(reweight)
        self.split_window_s = int(split_window_s)
        self.split_headroom = float(split_headroom)
        self.weight_tolerance = float(weight_tolerance)
        self.load_aware_cost = bool(load_aware_cost)
        self.reference_s = int(reference_s)
        self._caches: dict[float, PlanCache] = {}
        self.plans = self.cache(spec.objective.cost_weight)
        self.notes: list[str] = []
        self._forecaster = make_forecaster("ours", quantile=self.quantile)

    def initial_state(self) -> OursState:
        return OursState()

    def state_from_dict(self, raw: dict[str, Any]) -> OursState:
        return OursState.from_dict(raw)

    def _burst(self, obs: Observation) -> tuple[bool, float]:
        signal = detect_burst(obs.history_rps[-20:], obs.provisioned_capacity_rps, window_s=self.burst_window_s, headroom_ratio=self.burst_headroom)
        return signal.replan, signal.suggested_rps

    def between_ticks(self, obs: Observation, state: OursState) -> bool:
        if obs.current is None:
            return False
        if self.burst and self._burst(obs)[0]:
            return True
        return self.reweight and weights_differ(self.resplit(obs, obs.current), obs.current, self.weight_tolerance)

    def resplit(self, obs: Observation, plan: Plan) -> Plan:
        """Weights for the load expected in the next seconds (the newest peak plus headroom)."""
        if not self.reweight:
            return plan
        recent = recent_observed(obs.history_rps, self.split_window_s)
        expected = float(recent.max()) * (1.0 + self.split_headroom) if recent.size else plan.load_rps
        return split_weights(plan, expected)

    def forecast(self, obs: Observation) -> float:
        self._forecaster.update(obs.history_rps, now_s=obs.now_s)
        return float(self._forecaster.predict(self.horizon_s).quantile(self.quantile))

    def decide(self, obs: Observation, state: OursState) -> tuple[Decision, OursState]:
        recent = recent_observed(obs.history_rps, self.floor_s)
        if recent.size == 0:
            return Decision(None, resize=self.resize), state
        observed = float(recent[-1])
        bursting = False
        suggested = 0.0
        if self.burst and obs.current is not None:
            bursting, suggested = self._burst(obs)
        full = bursting or obs.current is None or obs.now_s >= state.last_full_s + self.interval_s - 1e-6
        if not full:  # between ticks: only re-split the traffic of what runs
            assert obs.current is not None
            moved = self.resplit(obs, obs.current)
            changed = weights_differ(moved, obs.current, self.weight_tolerance)
            return Decision(moved if changed else None, state.planned_rps, observed, resize=self.resize), state
        target = max(self.forecast(obs), float(recent.max()), suggested)
        horizon = obs.now_s - self.stabilisation_s
        targets = (*tuple((t, v) for t, v in state.targets if t > horizon), (obs.now_s, target))
        load = max(v for _, v in targets)
        plan, stopgap = self.choose(load, obs.current, bursting, self.cost_weight(obs.history_rps, load))
        # after a stop-gap (grow in place now), the full plan follows at the next second
        new_state = OursState(targets, load, obs.now_s - self.interval_s if stopgap else obs.now_s)
        if plan is None or plan.same_config(obs.current):
            assert obs.current is not None
            moved = self.resplit(obs, obs.current)
            changed = weights_differ(moved, obs.current, self.weight_tolerance)
            return Decision(moved if changed else None, load, observed, resize=self.resize), new_state
        return Decision(self.resplit(obs, plan), load, observed, replan_now=stopgap, resize=self.resize), new_state

    def loading_cost(self, plan: Plan, current: Plan, spec: InferenceServiceSpec) -> float:
        return loading_cost(plan, current, spec, self.startup_s, self.amortise_s)

    def cache(self, cost_weight: float) -> PlanCache:
        """Plans under ``cost_weight`` (one memo per weight; the least recently used weights go first, as a
        load-aware weight takes a new value with every load level)."""
        found = self._caches.pop(cost_weight, None)
        if found is None:
            objective = self.spec.objective.model_copy(update={"cost_weight": cost_weight})
            found = PlanCache(self.spec.model_copy(update={"objective": objective}), self.profile)
        self._caches[cost_weight] = found  # newest last
        while len(self._caches) > MAX_COST_WEIGHTS:
            del self._caches[next(iter(self._caches))]
        return found

    def cost_weight(self, history_rps: FloatArray, load_rps: float) -> float:
        """The spec's cost weight, scaled by (reference load / planned load) when ``load_aware_cost``.

        The measures are a *request-weighted* accuracy and a *time-averaged* cost: a tick at load ``L``
        carries ``L / L_ref`` times the average tick's share of the accuracy but the same share of the
        cost, so maximising the run's ``accuracy − α·cost/B`` tick by tick means weighing cost by
        ``α·L_ref/L`` (``L_ref``: the mean rate of the last ``reference_s``). The ratio is clipped to
        [1/4, 4] and rounded to quarter powers of two so plans stay cached.
        """
        base = self.spec.objective.cost_weight
        if not self.load_aware_cost or load_rps <= 0:
            return base
        window = history_rps[-self.reference_s :]
        observed = window[~np.isnan(window)]
        if observed.size < 3600:
            return base
        ratio = float(observed.mean()) / load_rps
        exponent = round(4.0 * math.log2(min(4.0, max(0.25, ratio)))) / 4.0
        return float(base * 2.0**exponent)

    def choose(self, load_rps: float, current: Plan | None, bursting: bool, cost_weight: float | None = None) -> tuple[Plan | None, bool]:
        """(the plan to apply for ``load_rps`` or None to keep the current one, whether it is a stop-gap).

        Under a burst the running variants are grown in place first (no cold start). When they cannot
        reach the load but can add capacity in place, that growth is applied at once as a stop-gap and
        the full plan (which may load new variants, make-before-break) follows at the next second.
        """
        plans = self.cache(cost_weight if cost_weight is not None else self.spec.objective.cost_weight)
        if current is not None and not serves(current, load_rps) and self.resize == "in_place":
            running = tuple(sorted(v.name for v in current.variants))
            quick = plans.plan(load_rps, current, running)
            if serves(quick, load_rps) and bursting:
                return quick, False
            best = plans.plan(load_rps, current)
            adds = {v.name for v in best.variants} - set(running)
            # a stop-gap helps only when it is quick: more replicas cold-start like the full plan, and the
            # controller would hold the full plan until they serve (replica-bound specs: 4.7 % -> 2.8 %)
            grows_in_place = all(v.replicas <= _replicas(current, v.name) for v in quick.variants)
            if adds and grows_in_place and quick.capacity_rps > current.capacity_rps + 1e-6:
                return quick, True
            return best, False
        best = plans.plan(load_rps, current)
        warm = self.keep_warm is None or (current is not None and current.variant(self.keep_warm) is not None)
        if current is not None and warm and serves(current, load_rps) and fits(current, plans.spec) and best.status == "optimal":
            # a change that loads a new variant must be worth it; an in-place resize is cheap
            tolerance = self.resize_tolerance + self.loading_cost(best, current, plans.spec)
            if objective_of(plans.spec, self.profile, current, load_rps) >= best.objective - tolerance:
                return None, False
        return best, False
