"""The machine the servers share with the load generator, the router and the metrics (the embedded mode).

The servers' CPU quotas sum to at most the budget, but on one machine the load generator, Envoy, Prometheus
and the controller run beside them without a quota. While the servers are busy with more than the cores
those leave, every server runs slower than its quota: the scheduler shares the machine. :func:`speeds`
gives, per second, the share of its quota a server gets::

    busy(t)   = Σ over instances: its quota while it starts (loading a model is CPU-bound), its quota x
                min(1, its routed load / its capacity) while it serves, 0 otherwise
    others(t) = base_cpu + cpu_per_rps x load(t)
    speed(t)  = min(1, (cores - others(t)) / busy(t))

A server at speed s serves at s times its capacity (its service time / s, the same workers and queue).
``benchmarks/fidelity.py`` measures ``base_cpu`` and ``cpu_per_rps`` (the CPU every process but the
servers took during a run); without a :class:`Machine` the servers are alone on it (speed 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infadapter.profiles import Profile
from infadapter.sim.engine import FloatArray, Timeline, epoch_index, epochs

#: speeds are kept to this resolution (each distinct one splits the servers' queues once)
SPEED_STEP = 0.01
#: the least share of its quota a server is given (a scheduler never starves a runnable cgroup)
MIN_SPEED = 0.05


@dataclass(frozen=True)
class Machine:
    """``cores`` shared by the servers and processes that take ``base_cpu + cpu_per_rps x load`` cores."""

    cores: float
    base_cpu: float = 0.0
    cpu_per_rps: float = 0.0

    def others(self, load_rps: FloatArray) -> FloatArray:
        out: FloatArray = self.base_cpu + self.cpu_per_rps * np.asarray(load_rps, dtype=np.float64)
        return out


def busy_cores(timeline: Timeline, profile: Profile, trace_rps: FloatArray) -> FloatArray:
    """Per second of the trace, the cores the servers are busy with (see the module docstring)."""
    duration = trace_rps.size
    mid = np.arange(duration, dtype=np.float64) + 0.5
    busy = np.zeros(duration)
    shares = _routed_shares(timeline, mid)
    unrouted = np.zeros(duration)
    for inst in timeline.instances.values():
        share = shares.get(inst.id, unrouted)
        for k in np.flatnonzero((mid >= inst.cost_from_s) & (mid < inst.end_s)):
            t = float(mid[k])
            quota = inst.cores_at(t)
            if t < inst.serve_from_s:
                busy[k] += quota
                continue
            capacity = profile.capacity_rps(inst.variant, quota, 1, inst.gpus)
            routed = float(trace_rps[k]) * share[k]
            busy[k] += quota * (min(1.0, routed / capacity) if capacity > 0 else 1.0)
    return busy


def _routed_shares(timeline: Timeline, t_s: FloatArray) -> dict[int, FloatArray]:
    """Per instance, its share of the requests at each time of ``t_s`` (the routing epochs')."""
    routing = epochs(timeline)
    index = epoch_index(routing, t_s)
    out: dict[int, FloatArray] = {}
    for k, epoch in enumerate(routing):
        mask = index == k
        for iid, weight in zip(epoch.instances, epoch.weights, strict=True):
            out.setdefault(iid, np.zeros(t_s.size))[mask] = weight
    return out


def speeds(timeline: Timeline, profile: Profile, trace_rps: FloatArray, machine: Machine) -> list[tuple[float, float]]:
    """The servers' speed as ``(from_s, speed)`` steps (the first at 0), from :func:`busy_cores` and ``machine``."""
    rates = np.nan_to_num(np.asarray(trace_rps, dtype=np.float64), nan=0.0)
    busy = busy_cores(timeline, profile, rates)
    free = np.maximum(machine.cores - machine.others(rates), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(busy > 0, free / np.maximum(busy, 1e-12), 1.0)
    speed = np.clip(np.floor(ratio / SPEED_STEP) * SPEED_STEP, MIN_SPEED, 1.0)
    steps: list[tuple[float, float]] = [(0.0, round(float(speed[0]), 6) if speed.size else 1.0)]
    for k, value in enumerate(speed.tolist()):
        if abs(value - steps[-1][1]) > 1e-9:
            steps.append((float(k), round(value, 6)))
    return steps
