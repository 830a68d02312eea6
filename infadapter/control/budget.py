"""The budget is a cap, transitions included: what an action holds, and make-before-break staged to fit.

While a transition runs the actuator holds both what serves now and what starts (new variants, new
replicas, in-place growths): make-before-break keeps old capacity until the new serves. Unchecked, a switch
between two plans near the budget nearly doubled the cores for a cold start (``ours`` held 32 cores on the
paper scenario's 20-core budget), and on a cluster a ResourceQuota equal to the budget blocks the new pods.

The cap is ``budget.cpu · (1 + surge_ratio)`` cores and ``⌊(budget.gpu + Σ accelerators[].count) · (1 +
surge_ratio)⌋`` GPUs of every type together (:class:`Cap`): a ResourceQuota counts them so when the types share
one extended resource (``nvidia.com/gpu`` for a T4 and an A100 alike); each type's own count is the planner's.
What an action makes the actuator hold is counted as a ResourceQuota counts pods (:func:`footprint`): a replica
resized in place counts the larger of its current and new size until the resize has taken effect, a replica
being removed or replaced counts until it is gone, a new one from the moment it is asked for.

When make-before-break does not fit, the switch is **staged** (:func:`within_cap`), and the following steps
continue it as replicas become ready (the controller steps again one resize later):

1. **keep** — what runs is reduced to what its routed share of the planned load needs now: in place, a
   leaving variant, or a planned one above its planned size (not below it), goes to the smallest size of
   its grid that serves its share; replicas beyond the share go; nothing new starts;
2. **grow** — the room left under the cap goes to the plan's growth, the smallest first (a variant that
   reaches its planned size covers its share, and what it replaces can go): a new variant starts at its
   planned size or, in place, at the largest size that fits and grows in place later; replicas that
   replace ones of another size start only all at their planned size;
3. **make room** — when nothing can grow and no cold start is under way, what runs beyond the plan shrinks
   in place for the next step: the new variants' cold starts together, at their planned sizes if what
   stays serves the planned load meanwhile, else at their smallest sizes; or a running variant's growth, by
   the largest step whose one-resize dip costs at most :data:`RESIZE_DIP_RATIO` of what serves, else by
   its smallest step. When nothing beyond the plan can shrink, a leaving variant is drained (the router
   sends its share to the rest) and removed once the router confirms.

A saturated switch therefore costs a short dip rather than never happening. Replacements (not in place:
the paper's adapter, VPA) that cannot fit wait, as a rolling update blocked by a quota does: they need a
surge of one replica's size. The split (:func:`~infadapter.control.actuation.split`) sends load to what
became ready; what runs then shrinks with its share and the rest grows, step by step, until the plan runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

from infadapter.control.actuation import (
    WEIGHT_EPS,
    Action,
    ActuatorState,
    VariantState,
    VariantTarget,
    planned_load_rps,
    resized,
    split,
)
from infadapter.planning import Plan, VariantPlan, cpu_grid
from infadapter.profiles import Profile
from infadapter.spec import InferenceServiceSpec

EPS = 1e-9
#: the surge a transition may use on top of the budget when the spec does not say (``budget.surge``)
DEFAULT_SURGE_RATIO = 0.25
#: a step between running variants may cost this share of what serves for one resize (the moved cores serve
#: nowhere meanwhile): smaller steps only spread the same dip, and a saturated switch would crawl
RESIZE_DIP_RATIO = 0.1


@dataclass(frozen=True)
class Cap:
    """The most an actuator may hold at any time: ``cpu`` cores and ``gpu`` GPUs."""

    cpu: float
    gpu: float

    @classmethod
    def of(cls, spec: InferenceServiceSpec, surge_ratio: float = 0.0) -> Cap:
        """The spec's budget plus ``surge_ratio`` of it (GPUs: whole ones, of every accelerator type together)."""
        factor = 1.0 + max(0.0, surge_ratio)
        devices = spec.budget.gpu + sum(a.count for a in spec.accelerators)
        return cls(spec.budget.cpu * factor, float(math.floor(devices * factor + EPS)))

    def holds(self, cpu: float, gpu: float) -> bool:
        return cpu <= self.cpu + EPS and gpu <= self.gpu + EPS


def _current(running: VariantState | None, in_place: bool) -> list[float]:
    """The cores each replica of ``running`` has now: the ready ones, then those starting (at the size they converge to)."""
    if running is None:
        return []
    ready = list(running.ready_cores)
    at_size = ready if in_place else [c for c in ready if abs(c - running.cpu_cores) <= EPS]
    return ready + [running.cpu_cores] * max(0, running.replicas - len(at_size))


def variant_footprint(running: VariantState | None, target: VariantTarget | None, in_place: bool) -> tuple[float, float]:
    """(cores, GPUs) one variant holds once ``target`` is asked of it (None: it is removed) — see the module docstring."""
    current = _current(running, in_place)
    gpus_now = running.gpus if running is not None else 0
    if target is None:
        return sum(current), float(len(current) * gpus_now)
    if target.in_place:
        kept, removed = current[: target.replicas], current[target.replicas :]
        new = max(0, target.replicas - len(current))
        cpu = sum(max(c, target.cpu_cores) for c in kept) + sum(removed) + new * target.cpu_cores
        gpu = len(kept) * max(gpus_now, target.gpus) + len(removed) * gpus_now + new * target.gpus
        return cpu, float(gpu)
    # replaced: every replica of another size stays until the new ones serve; the new ones start now
    new = max(0, target.replicas - sum(1 for c in current if abs(c - target.cpu_cores) <= EPS))
    return sum(current) + new * target.cpu_cores, float(len(current) * gpus_now + new * target.gpus)


def footprint(action: Action, state: ActuatorState, in_place: bool) -> tuple[float, float]:
    """(cores, GPUs) the actuator holds once ``action`` is executed, before anything new becomes ready."""
    cpu = gpu = 0.0
    for target in action.variants:
        c, g = variant_footprint(state.variant(target.name), target, in_place)
        cpu, gpu = cpu + c, gpu + g
    for running in state.running:
        if action.variant(running.name) is None:  # drained and removed: it counts until it is gone
            c, g = variant_footprint(running, None, in_place)
            cpu, gpu = cpu + c, gpu + g
    return cpu, gpu


def held(state: ActuatorState, in_place: bool) -> tuple[float, float]:
    """(cores, GPUs) the actuator holds now."""
    targets = tuple(VariantTarget(v.name, v.cpu_cores, v.replicas, v.gpus, in_place) for v in state.running if v.replicas > 0)
    return footprint(Action(targets, state.weights), state, in_place)


# ----------------------------------------------------------------------------------------- staging


@dataclass(frozen=True)
class _Stage:
    spec: InferenceServiceSpec
    profile: Profile | None
    state: ActuatorState
    in_place: bool

    def grid(self, name: str) -> list[float]:
        return cpu_grid(self.spec, name) if name in self.spec.variant_names else []

    def size_for(self, name: str, rps: float, replicas: int, gpus: int) -> float | None:
        """The smallest size of ``name``'s grid at which ``replicas`` serve ``rps`` (None: none does)."""
        if self.profile is None:
            return None
        for size in self.grid(name):
            if self.profile.capacity_rps(name, size, replicas, gpus) >= rps - EPS:
                return size
        return None

    def footprint(self, targets: Iterable[VariantTarget]) -> tuple[float, float]:
        return footprint(Action(tuple(targets), self.state.weights), self.state, self.in_place)

    def starting(self, name: str) -> bool:
        """``name`` does not serve yet, or some replica of it is still starting."""
        running = self.state.variant(name)
        return running is None or not running.ready_cores or len(running.ready_cores) < running.replicas


def _keep(stage: _Stage, target: VariantTarget, planned: VariantPlan | None, routed_rps: float) -> VariantTarget | None:
    """What of a running variant must stay to serve its routed share now (None: nothing runs yet)."""
    running = stage.state.variant(target.name)
    current = _current(running, target.in_place)
    if running is None or not current:
        return None
    replicas = min(target.replicas, len(current)) if planned is not None else len(current)
    if target.in_place:
        need = stage.size_for(target.name, routed_rps, replicas, running.gpus)
        floor = planned.cpu_cores if planned is not None else 0.0
        size = min(running.cpu_cores, max(floor, need if need is not None else running.cpu_cores))
        return VariantTarget(target.name, size, replicas, running.gpus, True)
    per_replica = stage.profile.capacity_rps(target.name, running.cpu_cores, 1, running.gpus) if stage.profile else 0.0
    needed = math.ceil(routed_rps / per_replica - EPS) if per_replica > 0 else replicas
    same_size = planned is not None and abs(planned.cpu_cores - running.cpu_cores) <= EPS
    floor_replicas = planned.replicas if planned is not None and same_size else 0
    return VariantTarget(target.name, running.cpu_cores, max(1, min(len(current), max(needed, floor_replicas))), running.gpus, False)


def _grow(stage: _Stage, want: VariantTarget, kept: VariantTarget | None, room_cpu: float, room_gpu: float) -> VariantTarget | None:
    """``kept`` (or nothing) grown towards ``want`` within the room; None when no step fits."""
    if want.in_place:
        base_size, base_replicas = (kept.cpu_cores, kept.replicas) if kept is not None else (0.0, 0)
        for replicas in range(max(want.replicas, base_replicas), 0, -1):
            extra = max(0, replicas - base_replicas)
            fitting = [
                s
                for s in stage.grid(want.name)
                if base_size - EPS <= s <= want.cpu_cores + EPS and base_replicas * (s - base_size) + extra * s <= room_cpu + EPS
            ]
            grown = VariantTarget(want.name, max(fitting), replicas, want.gpus, True) if fitting else None
            if grown is not None and extra * want.gpus <= room_gpu + EPS and grown != kept:
                return grown
        return None
    if kept is not None and abs(kept.cpu_cores - want.cpu_cores) <= EPS:  # more replicas of the same size
        extra = min(want.replicas - kept.replicas, math.floor((room_cpu + EPS) / max(want.cpu_cores, EPS)))
        return replace(kept, replicas=kept.replicas + extra) if extra > 0 else None
    # a new variant, or replicas of another size (the old ones serve until every new one does): all or nothing
    fits = want.replicas * want.cpu_cores <= room_cpu + EPS and want.replicas * want.gpus <= room_gpu + EPS
    return want if fits else None


def _short(kept: VariantTarget | None, want: VariantTarget) -> float:
    """The cores ``kept`` still lacks to be ``want`` (0: none)."""
    have = kept.cpu_cores * kept.replicas if kept is not None else 0.0
    return max(0.0, want.cpu_cores * want.replicas - have) if _grows(kept, want) else 0.0


def _grows(kept: VariantTarget | None, want: VariantTarget) -> bool:
    return kept is None or want.cpu_cores > kept.cpu_cores + EPS or want.replicas > kept.replicas


def _donate(
    stage: _Stage, keeps: dict[str, VariantTarget], growing: set[str], deficit: float, planned: dict[str, VariantTarget]
) -> tuple[dict[str, VariantTarget], float]:
    """Shrink in place what runs beyond the plan (leaving variants first, down to their smallest size; planned
    ones down to their planned size) by up to ``deficit`` cores; (keeps, cores still missing)."""
    out = dict(keeps)
    donors = sorted((k for k in keeps.values() if k.in_place and k.name not in growing), key=lambda k: (k.name in planned, -k.cpu_cores * k.replicas))
    for donor in donors:
        if deficit <= EPS:
            break
        floor = planned[donor.name].cpu_cores if donor.name in planned else min(stage.grid(donor.name), default=donor.cpu_cores)
        lower = [s for s in stage.grid(donor.name) if floor - EPS <= s < donor.cpu_cores - EPS]
        enough = [s for s in lower if (donor.cpu_cores - s) * donor.replicas >= deficit - EPS]
        smaller = max(enough) if enough else min(lower, default=donor.cpu_cores)
        deficit -= (donor.cpu_cores - smaller) * donor.replicas
        out[donor.name] = replace(donor, cpu_cores=smaller)
    return out, max(0.0, deficit)


def _serving_rps(stage: _Stage, keeps: dict[str, VariantTarget]) -> float:
    """What the ready replicas of ``keeps`` serve once their reductions took effect (a growth serves only later)."""
    if stage.profile is None:
        return 0.0
    total = 0.0
    for kept in keeps.values():
        running = stage.state.variant(kept.name)
        for cores in running.ready_cores[: kept.replicas] if running is not None else ():
            total += stage.profile.capacity_rps(kept.name, min(cores, kept.cpu_cores), 1, kept.gpus)
    return total


def _make_room(
    stage: _Stage, keeps: dict[str, VariantTarget], growth: list[VariantTarget], room_cpu: float, planned: dict[str, VariantTarget], load: float
) -> tuple[dict[str, VariantTarget], set[str]]:
    """Shrink what runs beyond the plan so that growth can start next; (keeps, variants to drain).

    The moved cores serve nowhere until the growth serves (a cold start, or one resize). New variants start
    together (one cold start, not one after the other): at their planned sizes when what stays still serves
    the planned load meanwhile, else at their smallest; then a running variant grows by the largest step
    whose dip still serves the load, else by its smallest. When even that cannot be freed, a leaving
    variant is drained (its share goes to the rest; it goes once the router confirms)."""
    starts = [t for t in growth if t.in_place and t.name not in keeps]
    serving = _serving_rps(stage, keeps)
    strict, one_resize = min(load, serving), min(load, (1.0 - RESIZE_DIP_RATIO) * serving)
    bundles: list[tuple[dict[str, float], float]] = []  # (variant -> size to reach, what must still be served meanwhile)
    if starts:
        smallest = {t.name: stage.grid(t.name)[0] for t in starts if stage.grid(t.name)}
        bundles += [({t.name: t.cpu_cores for t in starts}, strict), (smallest, strict)]
    for first in (t for t in growth if t.in_place and t.name in keeps):
        steps = [s for s in stage.grid(first.name) if keeps[first.name].cpu_cores + EPS < s <= first.cpu_cores + EPS]
        bundles += [({first.name: size}, one_resize) for size in reversed(steps)]
        bundles += [({first.name: steps[0]}, 0.0)] if steps else []
        break
    if starts:
        bundles.append((smallest, 0.0))
    for sizes, must_serve in bundles:
        deficit = -room_cpu
        for name, size in sizes.items():
            kept = keeps.get(name)
            deficit += (size - (kept.cpu_cores if kept else 0.0)) * (kept.replicas if kept else planned[name].replicas)
        shrunk, missing = _donate(stage, keeps, set(sizes), deficit, planned)
        if missing <= EPS and _serving_rps(stage, shrunk) >= must_serve - EPS:
            return shrunk, set()
    leaving = [k.name for k in sorted(keeps.values(), key=lambda k: -k.cpu_cores * k.replicas) if k.name not in planned]
    return keeps, set(leaving[:1])


def _drained(plan: Plan, state: ActuatorState, profile: Profile | None, names: set[str]) -> dict[str, float]:
    """The split with ``names`` sending nothing (their share goes to what else is ready)."""
    rest = ActuatorState(tuple(v for v in state.variants if v.name not in names), state.weights, state.in_place)
    return {k: w for k, w in split(plan, rest, profile).items() if k not in names}


def within_cap(
    action: Action,
    plan: Plan,
    state: ActuatorState,
    profile: Profile | None,
    spec: InferenceServiceSpec,
    cap: Cap,
    *,
    in_place: bool,
    instant: bool = False,
    weights_lag: bool = False,
) -> Action:
    """``action`` (make-before-break towards ``plan``) if what it holds fits ``cap``, else its stage that does, with
    the split for what runs once the stage's resizes took effect (:func:`~infadapter.control.actuation.resized`).
    ``weights_lag``: a new split reaches the router only later, so what runs keeps what the router applies now too."""
    if cap.holds(*footprint(action, state, in_place)) or not cap.holds(plan.cost_cpu, plan.cost_gpu):
        return action  # it fits, or the plan itself does not (nothing to stage towards)
    stage = _Stage(spec, profile, state, in_place)
    load = planned_load_rps(plan, profile)
    keeps: dict[str, VariantTarget] = {}
    routed = split(plan, state, profile)  # the shares what runs serves now (the action's are for its sizes, not the stage's)
    for target in action.variants:
        # until the split now sent arrives, the router may still send a variant a larger share: keep for it
        share = max(routed.get(target.name, 0.0), state.weights.get(target.name, 0.0)) if weights_lag else routed.get(target.name, 0.0)
        kept = _keep(stage, target, plan.variant(target.name), share * load)
        if kept is not None:
            keeps[target.name] = kept
    planned = {t.name: VariantTarget(p.name, p.cpu_cores, p.replicas, p.gpus, t.in_place) for t in action.variants if (p := plan.variant(t.name)) is not None}
    # the smallest growth first: a variant that reaches its planned size covers its share, and what it
    # replaces can go
    wanted = sorted(planned.values(), key=lambda t: (_short(keeps.get(t.name), t), t.name))
    cpu, gpu = stage.footprint(keeps.values())
    grown_any = False
    for want in wanted:
        grown = _grow(stage, want, keeps.get(want.name), cap.cpu - cpu, cap.gpu - gpu)
        if grown is None:
            continue
        trial = {**keeps, want.name: grown}
        trial_cpu, trial_gpu = stage.footprint(trial.values())
        if cap.holds(trial_cpu, trial_gpu):
            keeps, cpu, gpu, grown_any = trial, trial_cpu, trial_gpu, True
    growth = [t for t in wanted if _grows(keeps.get(t.name), t)]
    waiting = any(stage.starting(t.name) for t in wanted if t.name in keeps)  # a cold start under way: let it serve first
    drain: set[str] = set()
    if not grown_any and growth and not waiting:
        keeps, drain = _make_room(stage, keeps, growth, cap.cpu - cpu, planned, load)
        if any(t.gpus * t.replicas > cap.gpu - gpu + EPS for t in growth if t.name not in keeps):
            drain = {k.name for k in keeps.values() if k.name not in planned and k.gpus > 0}  # GPUs do not shrink in place
    after = resized(state, keeps.values(), instant=instant)
    if drain:
        weights = _drained(plan, after, profile, drain)
    else:
        weights = routed if after is state else split(plan, after, profile)  # no instant resize: what runs now is after
    gone = {name for name in drain if state.weights.get(name, 0.0) <= WEIGHT_EPS}  # drained: the router confirmed
    order = [t.name for t in action.variants]
    return Action(tuple(keeps[name] for name in order if name in keeps and name not in gone), weights)
