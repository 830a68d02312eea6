"""The actuator's side of the controller: what it reports, what it is told, and make-before-break.

An actuator (simulated servers, local processes, Kubernetes objects) reports an :class:`ActuatorState`
— per variant the size and replicas it converges to and the cores of each ready replica, and the split
the router applies — and executes an :class:`Action`: the variants that should run and the router's
split. It knows nothing about plans or policies. The make-before-break rule is here, once
(:func:`actuation`), for every mode:

* planned variants get their size and replicas at once (new replicas cold-start; a size change is in
  place or, when the actuator replaces replicas, each old replica stays until its replacement is ready);
  in place a variant has one size, so until the plan serves it keeps the larger of its running and
  planned sizes (new replicas start at it) and all its running replicas;
* whatever removes capacity — a variant leaving the plan, fewer replicas, a smaller in-place size — waits
  until every planned variant's ready capacity covers its share of the planned load, and also until the
  router confirms the split that no longer needs it: a leaving variant gets no more traffic, a planned
  one no more than its planned share (:func:`relieved`; with instant resizes the split and the resize go
  together, :func:`resized`);
* meanwhile the split follows ready capacity: a planned variant gets its share of the planned load up
  to what its ready replicas serve, the rest goes to spare ready capacity (leaving variants, sizes not
  yet reduced) in proportion to it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from infadapter.planning import Plan, VariantPlan
from infadapter.profiles import Profile
from infadapter.spec import InferenceServiceSpec

#: weights closer than this are the same split (the router's resolution is 1/10,000)
WEIGHT_EPS = 1e-4
#: a planned variant whose applied share exceeds its planned share by at most this part of the load is relieved
#: (the router's integer weights round, and a split confirmed by several router pods is merged)
SHARE_SLACK = 0.01


@dataclass(frozen=True)
class VariantState:
    """One variant as the actuator reports it.

    ``cpu_cores`` (and ``gpus``) per replica and ``replicas``: what it converges to (0 replicas: being
    removed); ``ready_cores``: one entry per replica that can serve now, its effective cores (an
    in-place resize shows here once it took effect; a replica being replaced keeps serving at its old size).
    """

    name: str
    cpu_cores: float
    replicas: int
    ready_cores: tuple[float, ...] = ()
    gpus: int = 0


@dataclass(frozen=True)
class ActuatorState:
    """What runs: ``variants`` (those with replicas wanted or still serving), the router's applied split
    (``weights``, shares that sum to 1; empty before the first), and whether sizes can change in place."""

    variants: tuple[VariantState, ...] = ()
    weights: Mapping[str, float] = field(default_factory=dict)
    in_place: bool = True

    def variant(self, name: str) -> VariantState | None:
        return next((v for v in self.variants if v.name == name), None)

    @property
    def running(self) -> tuple[VariantState, ...]:
        """The variants with replicas wanted or serving."""
        return tuple(v for v in self.variants if v.replicas > 0 or v.ready_cores)


@dataclass(frozen=True)
class VariantTarget:
    """What one variant should run: ``replicas`` x ``cpu_cores`` (+ ``gpus``).

    ``in_place``: a size change of running replicas is a resize in place; otherwise they are replaced,
    each one removed once a replacement is ready (a Deployment's rolling update with maxUnavailable 0).
    """

    name: str
    cpu_cores: float
    replicas: int
    gpus: int = 0
    in_place: bool = True


@dataclass(frozen=True)
class Action:
    """What the actuator makes real: ``variants`` should run (a variant absent here is drained and
    removed) and the router sends ``weights`` (shares summing to 1, only to variants that can serve)."""

    variants: tuple[VariantTarget, ...]
    weights: Mapping[str, float]

    def variant(self, name: str) -> VariantTarget | None:
        return next((v for v in self.variants if v.name == name), None)


def _replica_rps(profile: Profile | None, name: str, cores: float, gpus: int) -> float:
    """A replica's capacity at the SLO: the profile's, or one unit when capacities are unknown."""
    return profile.capacity_rps(name, cores, 1, gpus) if profile is not None else 1.0


def ready_capacity_rps(profile: Profile | None, state: VariantState) -> float:
    """What the ready replicas of ``state`` serve at the SLO (profile figures; ready replicas without one)."""
    return sum(_replica_rps(profile, state.name, cores, state.gpus) for cores in state.ready_cores)


def provisioned_capacity_rps(profile: Profile, state: ActuatorState) -> float:
    """What every ready replica the router may send to serves at the SLO."""
    return sum(ready_capacity_rps(profile, v) for v in state.variants)


def same_weights(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    return all(abs(a.get(k, 0.0) - b.get(k, 0.0)) <= WEIGHT_EPS for k in set(a) | set(b))


def _planned_rps(profile: Profile | None, v: VariantPlan) -> float:
    return v.capacity_rps if profile is not None else float(v.replicas)


def planned_load_rps(plan: Plan, profile: Profile | None) -> float:
    """The load ``plan`` was made for; a plan made for none (a static plan, zero load) serves its capacity."""
    if profile is not None and plan.load_rps > 0:
        return plan.load_rps
    return sum(_planned_rps(profile, v) for v in plan.variants)


def coverage(plan: Plan, state: ActuatorState, profile: Profile | None) -> dict[str, float]:
    """Per planned variant, the part of its share of the planned load its ready replicas serve (0..1)."""
    load = planned_load_rps(plan, profile)
    out: dict[str, float] = {}
    for v in plan.variants:
        running = state.variant(v.name)
        ready = ready_capacity_rps(profile, running) if running is not None else 0.0
        need = min(_planned_rps(profile, v), v.weight * load)
        out[v.name] = 1.0 if need <= 1e-9 else min(1.0, ready / need)
    return out


def covered(plan: Plan, state: ActuatorState, profile: Profile | None) -> bool:
    """Every planned variant's ready capacity covers its share: capacity may now be removed."""
    return all(part >= 1.0 - 1e-9 for part in coverage(plan, state, profile).values())


def converged(plan: Plan, state: ActuatorState) -> bool:
    """The actuator runs exactly ``plan``: every replica ready at its size, nothing else running."""
    wanted = {v.name: v for v in plan.variants if v.replicas > 0}
    for running in state.running:
        v = wanted.get(running.name)
        if v is None or running.replicas != v.replicas or abs(running.cpu_cores - v.cpu_cores) > 1e-9:
            return False
        if len(running.ready_cores) != v.replicas or any(abs(c - v.cpu_cores) > 1e-9 for c in running.ready_cores):
            return False
    return all(state.variant(name) is not None for name in wanted)


def split(plan: Plan, state: ActuatorState, profile: Profile | None) -> dict[str, float]:
    """The router's split now: the plan's once it is covered, else its shares as far as ready capacity serves them.

    In requests per second of the planned load: each planned variant takes its share up to its ready
    capacity; what is left goes to the spare ready capacity — leaving variants, planned variants held
    at a larger size — in proportion to it.
    """
    load = planned_load_rps(plan, profile)
    ready = {v.name: ready_capacity_rps(profile, v) for v in state.running}
    if covered(plan, state, profile):
        shares = {v.name: v.weight for v in plan.variants}
    else:
        shares = {v.name: min(v.weight * load, ready.get(v.name, 0.0)) for v in plan.variants}
        spare = {k: c - shares.get(k, 0.0) for k, c in ready.items() if c - shares.get(k, 0.0) > 1e-9}
        rest = load - sum(shares.values())
        if rest > 1e-9 and spare:
            total = sum(spare.values())
            for k, c in spare.items():
                shares[k] = shares.get(k, 0.0) + rest * c / total
    total = sum(shares.values())
    if total <= 0:  # nothing serves yet: the plan's split, for when it does
        return {v.name: v.weight for v in plan.variants if v.weight > 0}
    return {k: w / total for k, w in shares.items() if w > 0}


def resized(state: ActuatorState, targets: Iterable[VariantTarget], *, instant: bool) -> ActuatorState:
    """``state`` once the in-place resizes ``targets`` ask of its ready replicas took effect, for an actuator whose
    resizes act ``instant``-ly (the embedded runtime writes a cgroup quota); else ``state`` itself, which shows
    a resize once it took effect. The split sent with an action is computed on it: a variant shrunk in place
    must not be sent the share of its old size while it runs at the new one (it was, for the second until the
    next step: a server at half its size sent nine tenths of a burst)."""
    wanted = {t.name: t for t in targets if t.in_place}
    if not instant or not state.in_place or not wanted:
        return state
    variants = []
    for v in state.variants:
        t = wanted.get(v.name)
        variants.append(v if t is None else replace(v, ready_cores=tuple(t.cpu_cores for _ in v.ready_cores)))
    return replace(state, variants=tuple(variants))


def relieved(v: VariantPlan, state: ActuatorState) -> bool:
    """The router applies no more than ``v``'s planned share to it, so its capacity may shrink to the planned size.

    A reduction that takes effect while the router still sends the share of the larger size overloads what is
    left until the new split arrives: with the operator's delays (a resize acknowledged in 2 s, weights at
    Envoy in 3 s) a shrink sent with the new split landed a second before it, and one sent a resize ahead of the
    new capacity three seconds before it."""
    return state.weights.get(v.name, 0.0) <= v.weight + SHARE_SLACK


def actuation(plan: Plan, state: ActuatorState, profile: Profile | None, *, in_place: bool, shrink: bool = False, instant: bool = False) -> Action:
    """What to run now to reach ``plan`` from ``state``, make-before-break (see the module docstring).

    ``profile`` None: capacities are unknown (a plan made by hand); every replica then counts as one
    unit, so make-before-break waits for the planned replicas themselves.
    ``shrink``: in-place reductions may go now although the new capacity is not ready yet — the
    controller says so one resize latency before the latencies say it will be, so that they take
    effect together (only where a split acts at once). The split is the one for what runs once the
    action's resizes took effect (:func:`resized`: at once with ``instant``). Without ``instant`` a
    planned variant's capacity goes only once the router confirms its new share (:func:`relieved`).
    """
    ready = covered(plan, state, profile)
    targets: list[VariantTarget] = []
    for v in plan.variants:
        running = state.variant(v.name)
        cores, replicas = v.cpu_cores, v.replicas
        free = ready and (instant or relieved(v, state))  # capacity goes only once the new serves and the router moved on
        if running is not None and running.replicas > 0 and not free:
            if in_place:
                # one size per variant: while new replicas start, the running ones keep their larger size (the new
                # start at it too and shrink in place later); a replica goes only once the rest has grown and
                # the plan serves — resizing one replica up while deleting another would dip meanwhile
                cores = cores if shrink and not ready else max(cores, running.cpu_cores)
                replicas = max(replicas, running.replicas)
            elif abs(running.cpu_cores - cores) <= 1e-9:  # at another size the actuator replaces replicas, new first
                replicas = max(replicas, running.replicas)
        targets.append(VariantTarget(v.name, cores, replicas, v.gpus, in_place))
    weights = split(plan, resized(state, targets, instant=instant), profile)
    planned = {v.name for v in plan.variants}
    for running in state.running:
        if running.name in planned:
            continue
        routed = state.weights.get(running.name, 0.0) > WEIGHT_EPS
        if not ready or routed:  # still needed, or the router still sends to it
            targets.append(VariantTarget(running.name, running.cpu_cores, max(running.replicas, len(running.ready_cores)), running.gpus, in_place))
    return Action(tuple(targets), weights)


def plan_of_state(state: ActuatorState, spec: InferenceServiceSpec, profile: Profile) -> Plan | None:
    """The plan of what runs (an adopted deployment), or None when nothing runs."""
    variants = []
    for running in state.running:
        if running.replicas <= 0 or running.name not in spec.variant_names:
            continue
        capacity = profile.capacity_rps(running.name, running.cpu_cores, running.replicas, running.gpus)
        variants.append(
            VariantPlan(
                running.name,
                running.cpu_cores,
                running.replicas,
                running.gpus,
                state.weights.get(running.name, 0.0),
                capacity,
                spec.variant(running.name).accuracy,
            )
        )
    if not variants:
        return None
    total = sum(v.weight for v in variants)
    if total <= 0:  # no split known yet: by capacity
        total = sum(v.capacity_rps for v in variants) or 1.0
        variants = [VariantPlan(v.name, v.cpu_cores, v.replicas, v.gpus, v.capacity_rps / total, v.capacity_rps, v.accuracy) for v in variants]
    else:
        variants = [VariantPlan(v.name, v.cpu_cores, v.replicas, v.gpus, v.weight / total, v.capacity_rps, v.accuracy) for v in variants]
    accuracy = sum(v.accuracy * v.weight for v in variants)
    return Plan(tuple(variants), accuracy=accuracy, cost_cpu=sum(v.total_cpu for v in variants), cost_gpu=sum(v.gpus * v.replicas for v in variants))
