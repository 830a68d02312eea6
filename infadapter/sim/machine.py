"""The machine the servers share with the load generator, the router and the metrics (the embedded mode).

The servers' CPU quotas sum to at most the budget, but on one machine the load generator, Envoy, Prometheus
and the controller run beside them without a quota. While the servers are busy with more than the cores
those leave, every server runs slower than its quota: the scheduler shares the machine. :func:`speeds`
gives, per second, the share of its quota a server gets::

    busy(t)   = Σ over instances: while it starts, what its cgroup allows (max(its quota, ``Machine.startup_cores``):
                the embedded runtime lets a starting server use a whole core) over the last startup_cpu_s / that
                seconds before it is ready (``Machine.startup_cpu_s``: the CPU one start measurably takes), nothing
                earlier (all its start where that CPU is not known); its quota x min(1, its routed load / its
                capacity) while it serves; 0 otherwise
    others(t) = base_cpu + cpu_per_rps x load(t)
    speed(t)  = min(1, (cores - others(t)) / busy(t))

A server at speed s serves at s times its capacity (its service time / s, the same workers and queue).
``Machine.speed`` scales every step: the host's mean speed relative to the one the profile was measured
at (``benchmarks/speedprobe.py`` measures both; runs measured here at 0.96-1.01x their profile's), or, where
the host's speed was measured second by second while the window ran, ``Machine.speed_by_second`` does
(a burst's backlog grows with the shortfall of the capacity below the load, so a few slow seconds in a
burst change its late requests much more than the run's mean speed says).

The routed load is only an estimate of what a server is busy with: a server with a backlog works at its
whole quota whatever its load, and one that left the plan still drains its queue. :func:`serve_on` therefore
serves the requests, measures from them what every server was busy with (:func:`busy_serving`: the requests
in it over its workers, at its quota), and serves them again at the speeds that follows, a fixed number of times.
``benchmarks/fidelity.py`` measures ``base_cpu`` and ``cpu_per_rps`` (the CPU every process but the
servers took during a run); without a :class:`Machine` the servers are alone on it (speed 1).

The host itself may not run at one speed: a machine that shares its physical cores with others (a
cloud VM) runs the same work 25 % faster or slower from one second to the next. ``Machine.jitter`` holds
such swings as measured (``benchmarks/hostspeed.py``: relative speeds, one per 1 / :data:`SAMPLES_PER_S`
s, mean 1, since the profile measured every capacity at the host's mean speed); :func:`speeds`
multiplies every step by them, replayed in blocks of :data:`JITTER_BLOCK` consecutive windows from
offsets drawn with ``Machine.seed``, so that a slow stretch lasts as long as it did when measured. Then
a server loaded below its capacity still builds a queue in the host's slow stretches. Off unless given:
on the fidelity benchmark's batches the swings added late requests to the burst, which the simulator
already over-estimates, and none to the steady state (``docs/simulator.md``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from infadapter.profiles import Profile
from infadapter.sim.engine import FloatArray, Served, SimInstance, Timeline, epoch_index, epochs, serve_requests
from infadapter.sim.service import ServiceModel

#: speeds are kept to this resolution (each distinct one splits the servers' queues once)
SPEED_STEP = 0.01
#: the least share of its quota a server is given (a scheduler never starves a runnable cgroup)
MIN_SPEED = 0.05
#: instants a second at which :func:`busy_serving` counts the requests inside each server
SAMPLES_PER_S = 4
#: serve, measure what the servers were busy with, serve again: this many passes in all
PASSES = 3
#: the host's measured speeds are replayed in runs of this many consecutive windows (10 s: measured here, a slow stretch lasts seconds)
JITTER_BLOCK = 40
JITTER_SEED = 20260512


@dataclass(frozen=True)
class Machine:
    """``cores`` shared by the servers and processes that take ``base_cpu + cpu_per_rps x load`` cores."""

    cores: float
    base_cpu: float = 0.0
    cpu_per_rps: float = 0.0
    #: the host's relative speeds, one per 1 / SAMPLES_PER_S s, in the order measured (empty: a steady host)
    jitter: tuple[float, ...] = ()
    seed: int = JITTER_SEED
    #: the host's mean speed relative to the profile's (above 1: faster than when the profile was measured)
    speed: float = 1.0
    #: the host's speed relative to the profile's in each second from the window's start, as measured while the
    #: window ran (``benchmarks/speedprobe.py``); :attr:`speed` in the seconds after its end (empty: ``speed`` throughout)
    speed_by_second: tuple[float, ...] = ()
    #: the cores a starting server may use while it loads its model, if more than its quota (the embedded
    #: runtime's start-up boost: 1 core)
    startup_cores: float = 0.0
    #: per variant, the CPU seconds one start of its server takes, measured (``benchmarks/fidelity.py``: 0.5-1.6 s
    #: here, over starts of 1.8-2.9 s, 90-94 % of them at the whole boost in the stretch just before it is ready)
    startup_cpu_s: Mapping[str, float] = field(default_factory=dict)
    #: per variant, the seconds from a server's launch to its first answer, measured (``benchmarks/fidelity.py``:
    #: 1.8-3.2 s here, 5 s in a crowded burst, where the spec's load time plus the mode's start-up gives 3.5-6 s); a new replica serves
    #: that long after it is asked for, whatever the controller planned with (a variant not in it: as planned)
    ready_s: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if any(not (math.isfinite(x) and x > 0.0) for x in self.jitter):
            raise ValueError("Machine.jitter: every relative speed must be a finite number above 0")
        if not (math.isfinite(self.speed) and self.speed > 0.0):
            raise ValueError(f"Machine.speed: {self.speed} must be a finite number above 0")
        if any(not (math.isfinite(x) and x > 0.0) for x in self.speed_by_second):
            raise ValueError("Machine.speed_by_second: every relative speed must be a finite number above 0")
        if not (math.isfinite(self.startup_cores) and 0.0 <= self.startup_cores <= self.cores):
            raise ValueError(f"Machine.startup_cores: {self.startup_cores} must be a number from 0 to the machine's {self.cores} cores")
        for variant, seconds in self.startup_cpu_s.items():
            if not (math.isfinite(seconds) and seconds >= 0.0):
                raise ValueError(f"Machine.startup_cpu_s[{variant!r}]: {seconds} must be a finite number of seconds, 0 or more")
        for variant, seconds in self.ready_s.items():
            if not (math.isfinite(seconds) and seconds > 0.0):
                raise ValueError(f"Machine.ready_s[{variant!r}]: {seconds} must be a finite number of seconds above 0")

    def starting(self, inst: SimInstance, quota: FloatArray, t_s: FloatArray, step_s: float) -> FloatArray:
        """The cores ``inst`` is busy with while it starts, over the steps of ``step_s`` seconds centred on ``t_s``
        (``quota``: its quota then): all its cgroup allows where the start's CPU is unknown, else what its start
        measurably takes, at all its cgroup allows, in the stretch just before it is ready. Measured here: a
        tritonserver takes about 0.1 CPU s at launch, then next to none for about a second, then loads its model at
        its whole start-up core until it answers (a start's CPU spread over it read a 0.24-core load where a 1-core
        one ran, and a server serving beside two starts lost up to a third of its quota with none of it simulated)."""
        allowed = np.maximum(quota, self.startup_cores)
        seconds = self.startup_cpu_s.get(inst.variant)
        window = inst.serve_from_s - inst.cost_from_s
        if seconds is None or not window > 0.0:
            return allowed
        burst = np.minimum(seconds / np.maximum(allowed, 1e-9), window)
        overlap = np.minimum(t_s + step_s / 2.0, inst.serve_from_s) - np.maximum(t_s - step_s / 2.0, inst.serve_from_s - burst)
        out: FloatArray = allowed * np.clip(overlap, 0.0, step_s) / step_s
        return out

    def host_speeds(self, steps: int) -> FloatArray:
        """``steps`` windows of the host's speed: :attr:`jitter` in blocks from seeded offsets (ones without it)."""
        if not self.jitter or steps <= 0:
            return np.ones(max(0, steps))
        measured = np.asarray(self.jitter, dtype=np.float64)
        block = min(JITTER_BLOCK, measured.size)
        starts = np.random.default_rng(self.seed).integers(0, measured.size - block + 1, size=-(-steps // block))
        out: FloatArray = measured[(starts[:, None] + np.arange(block)[None, :]).reshape(-1)[:steps]]
        return out

    def speeds_by_second(self, seconds: int) -> FloatArray:
        """The host's speed relative to the profile's in each of ``seconds`` seconds: :attr:`speed_by_second`, then :attr:`speed`."""
        out = np.full(max(0, seconds), self.speed)
        known = min(out.size, len(self.speed_by_second))
        out[:known] = self.speed_by_second[:known]
        return out

    def others(self, load_rps: FloatArray) -> FloatArray:
        out: FloatArray = self.base_cpu + self.cpu_per_rps * np.asarray(load_rps, dtype=np.float64)
        return out


def busy_cores(timeline: Timeline, profile: Profile, trace_rps: FloatArray, machine: Machine | None = None) -> FloatArray:
    """Per second of the trace, the cores the servers are busy with (see the module docstring)."""
    duration = trace_rps.size
    mid = np.arange(duration, dtype=np.float64) + 0.5
    busy = np.zeros(duration)
    shares = _routed_shares(timeline, mid)
    unrouted = np.zeros(duration)
    for inst in timeline.instances.values():
        share = shares.get(inst.id, unrouted)
        alive = np.flatnonzero((mid >= inst.cost_from_s) & (mid < inst.end_s))
        quotas = inst.cores_over(mid[alive])
        loading = mid[alive] < inst.serve_from_s
        busy[alive[loading]] += _starting(machine, inst, quotas[loading], mid[alive[loading]], 1.0)
        for k, quota in zip(alive[~loading].tolist(), quotas[~loading].tolist(), strict=True):
            capacity = profile.capacity_rps(inst.variant, quota, 1, inst.gpus)
            routed = float(trace_rps[k]) * share[k]
            busy[k] += quota * (min(1.0, routed / capacity) if capacity > 0 else 1.0)
    return busy


def _starting(machine: Machine | None, inst: SimInstance, quota: FloatArray, t_s: FloatArray, step_s: float) -> FloatArray:
    return quota if machine is None else machine.starting(inst, quota, t_s, step_s)


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


def busy_serving(timeline: Timeline, arrivals_s: FloatArray, served: Served, duration_s: int, machine: Machine | None = None) -> FloatArray:
    """The cores the servers were busy with when ``served`` was, every 1 / :data:`SAMPLES_PER_S` s (at the
    middle of each step): an instance starting, what its start takes (:meth:`Machine.starting`; without a
    ``machine``, its quota); else its quota x min(1, requests inside it /
    its workers), a backlog drained after it left the plan included. Servers that are busy at once share the
    machine at that instant, not on a second's average."""
    t = (np.arange(duration_s * SAMPLES_PER_S, dtype=np.float64) + 0.5) / SAMPLES_PER_S
    busy = np.zeros(t.size)
    inside = ~np.isnan(served.queue_s)
    order = np.argsort(np.where(inside, served.instance, -1), kind="stable")
    ids = np.where(inside, served.instance, -1)[order]
    for inst in timeline.instances.values():
        lo, hi = np.searchsorted(ids, inst.id, side="left"), np.searchsorted(ids, inst.id, side="right")
        arrived = arrivals_s[order[lo:hi]]
        done = np.sort(arrived + served.queue_s[order[lo:hi]])
        count = np.searchsorted(arrived, t, side="right") - np.searchsorted(done, t, side="right")
        quota = inst.cores_over(t)
        working = quota * np.minimum(1.0, count / np.maximum(1.0, np.rint(quota)))
        loading = (t >= inst.cost_from_s) & (t < inst.serve_from_s)
        busy += np.where(loading, _starting(machine, inst, quota, t, 1.0 / SAMPLES_PER_S), working)
    return busy


def serve_on(machine: Machine, timeline: Timeline, arrivals_s: FloatArray, model: ServiceModel, profile: Profile, trace_rps: FloatArray) -> Served:
    """Every request served on ``machine``: first at the speeds of the routed loads' estimate, then
    :data:`PASSES` - 1 times at the speeds of what the previous pass's servers were busy with."""
    served = serve_requests(timeline, arrivals_s, model, speeds(timeline, profile, trace_rps, machine))
    for _ in range(PASSES - 1):
        busy = busy_serving(timeline, arrivals_s, served, trace_rps.size, machine)
        served = serve_requests(timeline, arrivals_s, model, speeds(timeline, profile, trace_rps, machine, busy))
    return served


def speeds(timeline: Timeline, profile: Profile, trace_rps: FloatArray, machine: Machine, busy: FloatArray | None = None) -> list[tuple[float, float]]:
    """The servers' speed as ``(from_s, speed)`` steps (the first at 0), from ``busy`` cores (by default
    :func:`busy_cores`, per second; any whole number of equal steps a second) and ``machine``; with the host's
    swings (``Machine.jitter``), :data:`SAMPLES_PER_S` steps a second, above 1 where the host ran fast."""
    rates = np.nan_to_num(np.asarray(trace_rps, dtype=np.float64), nan=0.0)
    busy = busy_cores(timeline, profile, rates, machine) if busy is None else busy
    per_s = max(1, busy.size // max(1, rates.size))
    free = np.repeat(np.maximum(machine.cores - machine.others(rates), 0.0), per_s)[: busy.size]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(busy > 0, free / np.maximum(busy, 1e-12), 1.0)
    speed = np.minimum(ratio, 1.0) * np.repeat(machine.speeds_by_second(-(-busy.size // per_s)), per_s)[: busy.size]
    if machine.jitter:  # the host's own swings, at SAMPLES_PER_S steps a second
        repeat = SAMPLES_PER_S // per_s if SAMPLES_PER_S % per_s == 0 else 1
        speed = np.repeat(speed, repeat)
        per_s *= repeat
        speed = speed * machine.host_speeds(speed.size)
    speed = np.maximum(np.floor(speed / SPEED_STEP) * SPEED_STEP, MIN_SPEED)
    steps: list[tuple[float, float]] = [(0.0, round(float(speed[0]), 6) if speed.size else 1.0)]
    for k, value in enumerate(speed.tolist()):
        if abs(value - steps[-1][1]) > 1e-9:
            steps.append((k / per_s, round(value, 6)))
    return steps
