"""The simulator: the adaptation loop over a trace, then every request through the serving queues.

Arrivals are open-loop (the trace), so a policy's decisions depend only on the trace and on its own
plans, never on latencies: the loop runs first, second by second, and produces a timeline of
instances (when each costs, serves, and changes size) and routing epochs (which instances get what
weight from when). Then every request is routed (smooth WRR per epoch) and served by its instance's
calibrated queue (:mod:`infadapter.sim.service`), vectorised per instance and size.

Actuation: a new variant, an extra replica, or a size change under ``resize="recreate"`` starts a new
instance that costs from the decision but serves only after ``load_time_s + startup_s``; the old
instances keep serving (and costing) until every new instance is ready, then the new weights apply
and the old instances go (make-before-break, the paper's §7). ``resize="in_place"`` changes an
instance's cores after ``in_place_delay_s`` with no cold start. A tick that falls during a
transition waits for its end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from infadapter.planning import Plan, VariantPlan
from infadapter.policies.base import Decision, Observation
from infadapter.profiles import Profile
from infadapter.sim.service import ServiceModel, serve
from infadapter.sim.traffic import route
from infadapter.spec import InferenceServiceSpec

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

STARTUP_S = 4.0
IN_PLACE_DELAY_S = 1.0


@dataclass
class Instance:
    """One serving instance (one replica of one variant)."""

    id: int
    variant: str
    accuracy: float
    sizes: list[tuple[float, float]]  # (from_s, cores), ascending
    cost_from_s: float
    serve_from_s: float
    end_s: float = math.inf

    def cores_at(self, t_s: float) -> float:
        cores = self.sizes[0][1]
        for start, value in self.sizes:
            if start <= t_s:
                cores = value
        return cores


@dataclass(frozen=True)
class Epoch:
    """From ``start_s`` on, the router sends to ``instances`` with ``weights``."""

    start_s: float
    instances: tuple[int, ...]
    weights: tuple[float, ...]


@dataclass(frozen=True)
class DecisionLog:
    t_s: float
    decision: Decision
    applied: bool
    describe: str


@dataclass
class Timeline:
    """What the adaptation loop did: instances, routing epochs, decisions."""

    instances: dict[int, Instance] = field(default_factory=dict)
    epochs: list[Epoch] = field(default_factory=list)
    decisions: list[DecisionLog] = field(default_factory=list)
    reconfigurations: int = 0
    forecast_rps: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class _Pending:
    """A transition under way: at ``switch_s`` the router moves to ``plan`` and ``removed`` go."""

    switch_s: float
    removed: list[int]
    plan: Plan
    serving: dict[str, list[int]]


class Loop:
    """Runs one policy over the trace and builds its :class:`Timeline`."""

    def __init__(self, spec: InferenceServiceSpec, profile: Profile, *, startup_s: float = STARTUP_S,
                 in_place_delay_s: float = IN_PLACE_DELAY_S) -> None:
        self.spec = spec
        self.profile = profile
        self.startup_s = startup_s
        self.in_place_delay_s = in_place_delay_s
        self.accuracy = {v.name: v.accuracy for v in spec.variants}

    def cold_start_s(self, variant: str) -> float:
        return self.spec.variant(variant).load_time_s + self.startup_s

    def run(self, policy: Any, history_rps: FloatArray, pre_s: int, duration_s: int, initial: Plan) -> Timeline:
        timeline = Timeline()
        self._next_id = 0
        serving: dict[str, list[int]] = {}
        for v in initial.variants:
            serving[v.name] = [self._new(timeline, v.name, v.cpu_cores, 0.0, 0.0) for _ in range(v.replicas)]
        timeline.epochs.append(self._epoch(0.0, initial, serving))
        current = initial
        state = policy.initial_state()
        next_tick = float(policy.first_tick_s)
        pending: _Pending | None = None
        replan = False
        for sec in range(duration_s):
            now = float(sec)
            if pending is not None and pending.switch_s <= now:
                current, serving = self._switch(timeline, pending)
                pending = None
            tick = now >= next_tick - 1e-9
            if pending is not None:
                continue  # a tick during a transition waits for its end
            obs = self._obs(history_rps, pre_s, now, current, timeline, serving)
            if not (tick or replan or policy.between_ticks(obs, state)):
                continue
            decision, state = policy.decide(obs, state)
            if tick:
                while next_tick <= now + 1e-9:
                    next_tick += policy.interval_s
            replan = decision.replan_now
            if not math.isnan(decision.forecast_rps):
                timeline.forecast_rps.append((now, decision.forecast_rps))
            plan = decision.plan
            applied = plan is not None and not (plan.same_config(current) and plan.weights() == current.weights())
            timeline.decisions.append(DecisionLog(now, decision, applied, plan.describe() if plan is not None else ""))
            if plan is None or not applied:
                continue
            if not plan.same_config(current):
                timeline.reconfigurations += 1
            pending = self._actuate(timeline, now, plan, decision, serving)
            if pending.switch_s <= now:
                current, serving = self._switch(timeline, pending)
                pending = None
        return timeline

    # ------------------------------------------------------------------ helpers
    def _new(self, timeline: Timeline, variant: str, cores: float, cost_from: float, serve_from: float) -> int:
        iid = self._next_id
        self._next_id += 1
        timeline.instances[iid] = Instance(iid, variant, self.accuracy[variant], [(cost_from, cores)], cost_from, serve_from)
        return iid

    @staticmethod
    def _epoch(start_s: float, plan: Plan, serving: dict[str, list[int]]) -> Epoch:
        ids: list[int] = []
        weights: list[float] = []
        for v in plan.variants:
            for iid in serving[v.name]:
                ids.append(iid)
                weights.append(v.weight / max(1, len(serving[v.name])))
        return Epoch(start_s, tuple(ids), tuple(weights))

    def _obs(self, history: FloatArray, pre_s: int, now: float, current: Plan, timeline: Timeline,
             serving: dict[str, list[int]]) -> Observation:
        capacity = 0.0
        for ids in serving.values():
            for iid in ids:
                inst = timeline.instances[iid]
                capacity += self.profile.capacity_rps(inst.variant, inst.cores_at(now))
        return Observation(now, history[:pre_s + int(now)], current, capacity)

    def _actuate(self, timeline: Timeline, now: float, plan: Plan, decision: Decision,
                 serving: dict[str, list[int]]) -> _Pending:
        new_serving: dict[str, list[int]] = {}
        removed: list[int] = []
        shrinks: list[tuple[int, float]] = []
        ready = now
        for v in plan.variants:
            old = serving.get(v.name, [])
            old_cores = timeline.instances[old[0]].cores_at(now + 1e9) if old else None
            ids: list[int] = []
            if old and old_cores is not None and (abs(old_cores - v.cpu_cores) < 1e-9 or decision.resize == "in_place"):
                ids = old[:v.replicas]
                removed += old[v.replicas:]
                if v.cpu_cores > old_cores + 1e-9:  # grow at once
                    at = now + self.in_place_delay_s
                    for iid in ids:
                        timeline.instances[iid].sizes.append((at, v.cpu_cores))
                    ready = max(ready, at)
                elif v.cpu_cores < old_cores - 1e-9:  # shrink only once the rest of the new plan serves
                    shrinks += [(iid, v.cpu_cores) for iid in ids]
            else:
                removed += old
            while len(ids) < v.replicas:
                start = now + self.cold_start_s(v.name)
                ids.append(self._new(timeline, v.name, v.cpu_cores, now, start))
                ready = max(ready, start)
            new_serving[v.name] = ids
        for name, ids in serving.items():
            if name not in new_serving:
                removed += ids
        if shrinks:
            at = max(ready, now + self.in_place_delay_s)
            for iid, cores in shrinks:
                timeline.instances[iid].sizes.append((at, cores))
            ready = max(ready, at) if ready > now else ready
        return _Pending(ready, removed, plan, new_serving)

    def _switch(self, timeline: Timeline, pending: _Pending) -> tuple[Plan, dict[str, list[int]]]:
        for iid in pending.removed:
            timeline.instances[iid].end_s = pending.switch_s
        timeline.epochs.append(self._epoch(pending.switch_s, pending.plan, pending.serving))
        return pending.plan, pending.serving


# --------------------------------------------------------------------------- serving the requests


@dataclass
class Served:
    """Per request: latency (s, NaN = dropped) and the accuracy of the variant that served it."""

    latency_s: FloatArray
    accuracy: FloatArray
    instance: IntArray


def serve_requests(timeline: Timeline, arrivals_s: FloatArray, model: ServiceModel) -> Served:
    n = arrivals_s.size
    target = np.full(n, -1, dtype=np.int64)
    starts = np.array([e.start_s for e in timeline.epochs])
    bounds = np.searchsorted(arrivals_s, starts, side="left")
    bounds = np.append(bounds, n)
    for k, epoch in enumerate(timeline.epochs):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        if hi <= lo or not epoch.instances:
            continue
        picks = route(hi - lo, np.asarray(epoch.weights))
        target[lo:hi] = np.asarray(epoch.instances, dtype=np.int64)[picks]
    latency = np.full(n, np.nan)
    accuracy = np.full(n, np.nan)
    order = np.argsort(target, kind="stable")
    sorted_target = target[order]
    edges = np.flatnonzero(np.diff(sorted_target)) + 1
    for group in np.split(order, edges):
        if group.size == 0 or target[group[0]] < 0:
            continue
        inst = timeline.instances[int(target[group[0]])]
        times = arrivals_s[group]
        accuracy[group] = inst.accuracy
        free: FloatArray | None = None
        changes = [s for s, _ in inst.sizes[1:]]
        cuts = np.searchsorted(times, changes, side="left") if changes else np.empty(0, dtype=np.int64)
        pieces = np.split(np.arange(times.size), cuts)
        for piece, (_, cores) in zip(pieces, inst.sizes, strict=True):
            if piece.size == 0:
                continue
            size = model.size(inst.variant, cores)
            lat, free = serve(times[piece], size, free)
            latency[group[piece]] = lat
    return Served(latency, accuracy, target)


def allocated_cores(timeline: Timeline, t_s: FloatArray) -> FloatArray:
    """Cores allocated (starting, serving or draining instances) at each time of ``t_s``."""
    total = np.zeros(t_s.size)
    for inst in timeline.instances.values():
        alive = (t_s >= inst.cost_from_s) & (t_s < inst.end_s)
        cores = np.full(t_s.size, inst.sizes[0][1])
        for start, value in inst.sizes[1:]:
            cores[t_s >= start] = value
        total += np.where(alive, cores, 0.0)
    return total


def average_cores(timeline: Timeline, duration_s: float) -> float:
    """Time-average of allocated cores over ``[0, duration_s)`` (exact integral of the step function)."""
    area = 0.0
    for inst in timeline.instances.values():
        bounds = [s for s, _ in inst.sizes] + [math.inf]
        for (start, cores), stop in zip(inst.sizes, bounds[1:], strict=True):
            lo = max(start, inst.cost_from_s, 0.0)
            hi = min(stop, inst.end_s, duration_s)
            if hi > lo:
                area += cores * (hi - lo)
    return area / duration_s if duration_s > 0 else 0.0


def provisioned_capacity(timeline: Timeline, profile: Profile, t_s: FloatArray) -> FloatArray:
    """Capacity at the SLO (profile figures) of the instances the router sends to, at each time."""
    out = np.zeros(t_s.size)
    starts = np.array([e.start_s for e in timeline.epochs])
    index = np.searchsorted(starts, t_s, side="right") - 1
    for k, epoch in enumerate(timeline.epochs):
        mask = index == k
        if not mask.any():
            continue
        for iid in epoch.instances:
            inst = timeline.instances[iid]
            for j in np.flatnonzero(mask):
                out[j] += profile.capacity_rps(inst.variant, inst.cores_at(float(t_s[j])))
    return out


def plan_of(variants: list[tuple[str, float]], spec: InferenceServiceSpec, profile: Profile) -> Plan:
    """A plan from ``[(variant, cores)]`` (equal weights) — for tests and start configurations."""
    items = tuple(VariantPlan(n, c, weight=1.0 / len(variants), capacity_rps=profile.capacity_rps(n, c),
                              accuracy=spec.variant(n).accuracy) for n, c in variants)
    return Plan(items, cost_cpu=sum(c for _, c in variants))
