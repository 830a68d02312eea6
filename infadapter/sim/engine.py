"""The simulated servers: what the adaptation loop left behind (a :class:`Timeline`) and every request through it.

Arrivals are open-loop (the trace), so decisions depend only on the trace and on the controller's own
plans, never on latencies: the loop (:mod:`infadapter.sim.run`, the controller stepped second by
second against :class:`~infadapter.sim.actuator.SimActuator`) runs first and leaves a timeline of
instances (when each costs, serves, changes size and goes) and of the router's splits. Then the
routing epochs are derived (:func:`epochs`: a split shared equally by the serving instances of each
variant), every request is routed (smooth WRR per epoch) and served by its instance's calibrated queue
(:mod:`infadapter.sim.service`), vectorised per instance and size.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from infadapter.control import DecisionRecord
from infadapter.profiles import Profile
from infadapter.sim.service import ServiceModel, queue, resize_free, spread_delays
from infadapter.sim.traffic import route

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass
class SimInstance:
    """One simulated serving instance (one replica of one variant) on ``gpus`` GPUs besides its cores.

    Its cores may change in place; its GPUs never do (a replica moves to other hardware by replacement).
    """

    id: int
    variant: str
    accuracy: float
    sizes: list[tuple[float, float]]  # (from_s, cores), ascending
    cost_from_s: float
    serve_from_s: float
    end_s: float = math.inf
    gpus: int = 0

    def cores_at(self, t_s: float) -> float:
        cores = self.sizes[0][1]
        for start, value in self.sizes:
            if start <= t_s:
                cores = value
        return cores

    def cores_over(self, t_s: FloatArray) -> FloatArray:
        """:meth:`cores_at` at every time of ``t_s`` at once."""
        starts = np.array([start for start, _ in self.sizes])
        values = np.array([value for _, value in self.sizes], dtype=np.float64)
        out: FloatArray = values[np.maximum(np.searchsorted(starts, t_s, side="right") - 1, 0)]
        return out

    @property
    def final_cores(self) -> float:
        return self.sizes[-1][1]

    def serves_at(self, t_s: float) -> bool:
        return self.serve_from_s <= t_s < self.end_s


@dataclass(frozen=True)
class Epoch:
    """From ``start_s`` on, the router sends to ``instances`` with ``weights``."""

    start_s: float
    instances: tuple[int, ...]
    weights: tuple[float, ...]


@dataclass
class Timeline:
    """What the adaptation loop did: instances, the router's splits (time, shares), decisions."""

    instances: dict[int, SimInstance] = field(default_factory=dict)
    splits: list[tuple[float, Mapping[str, float]]] = field(default_factory=list)
    records: list[DecisionRecord] = field(default_factory=list)
    reconfigurations: int = 0

    def split_at(self, t_s: float) -> Mapping[str, float]:
        """The split the router applies at ``t_s`` (empty before the first)."""
        current: Mapping[str, float] = {}
        for start, weights in self.splits:
            if start > t_s:
                break
            current = weights
        return current

    @property
    def forecast_rps(self) -> list[tuple[float, float]]:
        """(time, planned load) of every decision that forecast one."""
        return [(r.now_s, r.forecast_rps) for r in self.records if not math.isnan(r.forecast_rps)]


def epochs(timeline: Timeline) -> list[Epoch]:
    """The routing epochs: at every split, instance start and end, each variant's share over its serving instances.

    A variant with a share but no serving instance gives it up to the others (the router's fallback);
    serving instances of a variant with a zero share are listed (they count as capacity) but get nothing.
    """
    times = {0.0} | {t for t, _ in timeline.splits}
    for inst in timeline.instances.values():
        times.add(inst.serve_from_s)
        if math.isfinite(inst.end_s):
            times.add(inst.end_s)
    out: list[Epoch] = []
    split: Mapping[str, float] = {}
    pending = iter(timeline.splits)
    upcoming = next(pending, None)
    for t in sorted(times):
        while upcoming is not None and upcoming[0] <= t:
            split, upcoming = upcoming[1], next(pending, None)
        serving: dict[str, list[int]] = {}
        for inst in timeline.instances.values():
            if inst.serves_at(t):
                serving.setdefault(inst.variant, []).append(inst.id)
        shares = {v: w for v, w in split.items() if serving.get(v)}
        if sum(shares.values()) <= 0:  # nothing routed can serve: every serving instance alike
            shares = dict.fromkeys(serving, 1.0)
        total = sum(shares.values())
        ids = tuple(i for v in sorted(shares) for i in sorted(serving[v]))
        weights = tuple(shares[v] / total / len(serving[v]) for v in sorted(shares) for _ in serving[v])
        if out and out[-1].instances == ids and out[-1].weights == weights:
            continue
        out.append(Epoch(t, ids, weights))
    return out


# --------------------------------------------------------------------------- serving the requests


@dataclass
class Served:
    """Per request: latency (s, NaN = dropped), the accuracy of the variant that served it, the instance (id,
    -1 unrouted) and the part of the latency it spent in the instance's queue and workers (``queue_s``)."""

    latency_s: FloatArray
    accuracy: FloatArray
    instance: IntArray
    queue_s: FloatArray


def serve_requests(timeline: Timeline, arrivals_s: FloatArray, model: ServiceModel, speeds: Sequence[tuple[float, float]] = ()) -> Served:
    """Route and serve every request; ``speeds``: ``(from_s, speed)`` steps of the share of its quota every server
    gets (a machine shared with other processes, :mod:`infadapter.sim.machine`); none: always all of it."""
    n = arrivals_s.size
    target = np.full(n, -1, dtype=np.int64)
    routing = epochs(timeline)
    starts = np.array([e.start_s for e in routing])
    bounds = np.searchsorted(arrivals_s, starts, side="left")
    bounds = np.append(bounds, n)
    for k, epoch in enumerate(routing):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        if hi <= lo or not epoch.instances:
            continue
        picks = route(hi - lo, np.asarray(epoch.weights))
        target[lo:hi] = np.asarray(epoch.instances, dtype=np.int64)[picks]
    order, first = _group(target)
    grouped = arrivals_s if order is None else arrivals_s[order]
    served = np.full(n, np.nan)
    queued = np.full(n, np.nan)
    for iid in np.flatnonzero(np.diff(first)):  # instances that got requests (id -1, unrouted, first)
        if iid == 0:
            continue
        inst = timeline.instances[int(iid) - 1]
        lo, hi = int(first[iid]), int(first[iid + 1])
        queued[lo:hi], served[lo:hi] = _serve_instance(inst, grouped[lo:hi], model, _pieces(inst, speeds))
    latency, in_queue = (served, queued) if order is None else (np.empty(n), np.empty(n))
    if order is not None:
        latency[order], in_queue[order] = served, queued
    by_id = np.full(max(timeline.instances, default=-1) + 2, np.nan)
    for inst in timeline.instances.values():
        by_id[inst.id + 1] = inst.accuracy
    return Served(latency, by_id[target + 1], target, in_queue)


def _serve_instance(inst: SimInstance, times: FloatArray, model: ServiceModel, pieces: list[tuple[float, float, float]]) -> tuple[FloatArray, FloatArray]:
    """(wait + service, and that plus the spread's delay) of the requests ``times`` routed to ``inst``, each
    served at the size and speed in force when it *starts* (``pieces``), not when it arrived: a server resized
    up drains the backlog it queued before at its new speed, as a real one does (an in-place resize changes the
    cgroup's quota at once), and one resized down serves its backlog slower. A request already in service when
    the size changes keeps its service time."""
    queued, served = np.full(times.size, np.nan), np.full(times.size, np.nan)
    rng = model.rng_for(inst.id)
    free: FloatArray | None = None
    pos = 0  # the first request not started yet (FIFO: every one before it started or was dropped)
    for k, (begin, cores, speed) in enumerate(pieces):
        until = pieces[k + 1][0] if k + 1 < len(pieces) else math.inf
        end = int(np.searchsorted(times, until, side="left"))  # the requests that arrived before the next piece
        if end <= pos:
            continue
        size = model.size(inst.variant, cores, inst.gpus).at_speed(speed)
        if free is not None:  # workers this size adds are free from its start, not from a queued request's arrival
            free = resize_free(free, size.servers, begin)
        latency, after = queue(times[pos:end], size, free)
        starts = times[pos:end] + latency - size.service_s
        later = np.flatnonzero(starts >= until)  # NaN (dropped) compares false: decided at arrival, kept
        done = end - pos if later.size == 0 else int(later[0])
        if done < end - pos:  # the rest start in a later piece: the workers' free times after those served here
            latency, after = queue(times[pos : pos + done], size, free)
        queued[pos : pos + done] = latency[:done]
        served[pos : pos + done] = latency[:done] + spread_delays(size, done, rng)
        free, pos = after, pos + done
    return queued, served


def _pieces(inst: SimInstance, speeds: Sequence[tuple[float, float]]) -> list[tuple[float, float, float]]:
    """``(from_s, cores, speed)``: where the instance's size or the machine's speed changes (the first from -inf)."""
    changes = sorted({s for s, _ in inst.sizes[1:]} | {s for s, _ in speeds[1:]})
    out = [(-math.inf, inst.sizes[0][1], speeds[0][1] if speeds else 1.0)]
    step_starts = [s for s, _ in speeds]
    for t in changes:
        k = bisect.bisect_right(step_starts, t) - 1  # the step in force at t
        piece = (t, inst.cores_at(t), speeds[k][1] if k >= 0 else 1.0)
        if piece[1:] != out[-1][1:]:
            out.append(piece)
    return out


def _group(target: IntArray) -> tuple[IntArray | None, IntArray]:
    """(the stable order that groups requests by instance, None when they are already grouped; where each
    id's group starts, indexed by id + 1, with one extra end entry).

    Instance ids are small: a 16-bit key makes the stable sort a radix sort (10x faster than on int64).
    """
    keys = target + 1
    counts = np.bincount(keys, minlength=1) if keys.size else np.zeros(1, dtype=np.int64)
    first: IntArray = np.concatenate(([0], np.cumsum(counts)))
    if np.count_nonzero(counts) <= 1:
        return None, first
    small = keys.astype(np.int16 if counts.size < 2**15 else np.int32)
    order: IntArray = np.argsort(small, kind="stable")
    return order, first


def allocated_cores(timeline: Timeline, t_s: FloatArray) -> FloatArray:
    """Cores allocated (starting, serving or draining instances) at each time of ``t_s``."""
    total = np.zeros(t_s.size)
    for inst in timeline.instances.values():
        total += _instance_cores(inst, t_s)
    return total


def _instance_cores(inst: SimInstance, t_s: FloatArray) -> FloatArray:
    alive = (t_s >= inst.cost_from_s) & (t_s < inst.end_s)
    cores = np.full(t_s.size, inst.sizes[0][1])
    for start, value in inst.sizes[1:]:
        cores[t_s >= start] = value
    out: FloatArray = np.where(alive, cores, 0.0)
    return out


def allocated_gpus(timeline: Timeline, t_s: FloatArray) -> FloatArray:
    """GPUs allocated (starting, serving or draining instances) at each time of ``t_s``."""
    total = np.zeros(t_s.size)
    for inst in timeline.instances.values():
        if inst.gpus:
            total += np.where((t_s >= inst.cost_from_s) & (t_s < inst.end_s), float(inst.gpus), 0.0)
    return total


def variant_cores(timeline: Timeline, t_s: FloatArray) -> dict[str, FloatArray]:
    """Per variant, the cores allocated at each time of ``t_s``."""
    out: dict[str, FloatArray] = {}
    for inst in timeline.instances.values():
        out[inst.variant] = out.get(inst.variant, np.zeros(t_s.size)) + _instance_cores(inst, t_s)
    return out


def _core_seconds(inst: SimInstance, duration_s: float) -> float:
    """The instance's allocated cores integrated over ``[0, duration_s)`` (exact: a step function)."""
    area = 0.0
    bounds = [s for s, _ in inst.sizes] + [math.inf]
    for (start, cores), stop in zip(inst.sizes, bounds[1:], strict=True):
        lo = max(start, inst.cost_from_s, 0.0)
        hi = min(stop, inst.end_s, duration_s)
        if hi > lo:
            area += cores * (hi - lo)
    return area


def _gpu_seconds(inst: SimInstance, duration_s: float) -> float:
    return inst.gpus * max(0.0, min(inst.end_s, duration_s) - max(inst.cost_from_s, 0.0))


def average_cores(timeline: Timeline, duration_s: float) -> float:
    """Time-average of allocated cores over ``[0, duration_s)``."""
    area = sum(_core_seconds(inst, duration_s) for inst in timeline.instances.values())
    return area / duration_s if duration_s > 0 else 0.0


def average_gpus(timeline: Timeline, duration_s: float) -> float:
    """Time-average of allocated GPUs (of every type) over ``[0, duration_s)`` (GPU cost in its own unit, DESIGN.md)."""
    area = sum(_gpu_seconds(inst, duration_s) for inst in timeline.instances.values())
    return area / duration_s if duration_s > 0 else 0.0


def average_cost(timeline: Timeline, duration_s: float, prices: Callable[[str], tuple[float, float]]) -> float:
    """Time-average of the money-like cost: ``prices(variant)`` = (per core, per device of its GPUs)."""
    area = 0.0
    for inst in timeline.instances.values():
        per_core, per_device = prices(inst.variant)
        area += per_core * _core_seconds(inst, duration_s) + per_device * _gpu_seconds(inst, duration_s)
    return area / duration_s if duration_s > 0 else 0.0


def epoch_index(routing: list[Epoch], t_s: FloatArray) -> IntArray:
    """For each time of ``t_s``, the index of the routing epoch in force (-1 before the first)."""
    index: IntArray = np.searchsorted(np.array([e.start_s for e in routing]), t_s, side="right") - 1
    return index


def provisioned_capacity(timeline: Timeline, profile: Profile, t_s: FloatArray) -> FloatArray:
    """Capacity at the SLO (profile figures) of the instances the router sends to, at each time."""
    out = np.zeros(t_s.size)
    routing = epochs(timeline)
    index = epoch_index(routing, t_s)
    for k, epoch in enumerate(routing):
        mask = index == k
        if not mask.any():
            continue
        for iid in epoch.instances:
            inst = timeline.instances[iid]
            for j in np.flatnonzero(mask):
                out[j] += profile.capacity_rps(inst.variant, inst.cores_at(float(t_s[j])), 1, inst.gpus)
    return out
