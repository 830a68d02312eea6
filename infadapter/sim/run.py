"""``simulate(...)``: every named policy over one trace, with the measures of DESIGN.md.

* **SLO violation ratio** = (requests over the SLO latency + requests dropped) / requests sent;
* **cost** = time-average of allocated cores, starting and draining instances included (``avg_cpu``),
  of allocated GPUs of every type in their own unit (``avg_gpu``), and of both at the spec's prices
  (``avg_cost``: money-like, per unit of time the prices are given for);
* **accuracy** = request-weighted mean of the declared accuracy of the variant that served each request;
* ``p99_latency_ms`` over the served requests, ``dropped_ratio``, ``reconfigurations`` (applied plans
  that changed a variant or a size; weight-only changes are not counted).

All policies see the same arrivals (one draw per seed): differences are the policies', not noise.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from infadapter.control import Controller, Latencies, StartsOnAPlan, policy_options
from infadapter.planning import Plan, static_plan
from infadapter.planning.problem import variant_options
from infadapter.policies import make_policy
from infadapter.policies.sizes import ladder
from infadapter.profiles import Profile
from infadapter.sim.actuator import SimActuator
from infadapter.sim.engine import (
    FloatArray,
    Served,
    Timeline,
    allocated_cores,
    allocated_gpus,
    average_cores,
    average_cost,
    average_gpus,
    provisioned_capacity,
    serve_requests,
    variant_cores,
)
from infadapter.sim.machine import Machine, serve_on
from infadapter.sim.service import QUEUE_FACTOR, ServiceModel
from infadapter.sim.traffic import ArrivalMode, arrival_times, observed_counts
from infadapter.spec import InferenceServiceSpec

SUMMARY_KEYS = ("slo_violation_ratio", "avg_cpu", "avg_gpu", "avg_cost", "avg_accuracy", "p99_latency_ms", "dropped_ratio", "reconfigurations")
BIN_S = 10
#: settles at one instant at most (each one should end a wait, e.g. for a split confirmed at once)
STEPS_PER_INSTANT = 4
#: ``progress(policy, what it does, fraction of that policy's run done)``: the control loop is the first
#: CONTROL_SHARE of a run, serving the requests the rest (reported when each starts and ends)
Progress = Callable[[str, str, float], None]
CONTROL_SHARE = 0.6
#: trace seconds between two progress reports of the control loop
PROGRESS_EVERY_S = 10

#: the policies the budget cap (with the spec's surge) applies to as they run in the operator (``replay``
#: replays plans the operator's own controller decided, under that cap)
OWN_POLICIES = frozenset({"ours", "oracle", "replay"})
#: the baselines as they ran, with no quota: a surge that holds a replaced replica of any size
BASELINE_SURGE = 1.0


@dataclass
class PolicyRun:
    """One policy's outcome: the summary, the per-second series, what the loop did."""

    name: str
    summary: dict[str, float]
    series: dict[str, FloatArray]
    timeline: Timeline
    notes: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    warnings: list[str] = field(default_factory=list)


def default_start(spec: InferenceServiceSpec, profile: Profile) -> Plan | None:
    """The most accurate variant on the most the spec gives it (the paper's start: ResNet152@20).

    That is its largest CPU size (one replica up to ``maxCpu``, then replicas, within the budget), or,
    for a variant measured only on GPUs, one replica of its smallest GPU option; None when no variant fits.
    """
    for v in sorted(spec.variants, key=lambda v: (-v.accuracy, v.name)):
        rungs = ladder(spec, v.name)
        if profile.runs_on_cpu(v.name) and rungs:
            top = rungs[-1]
            return static_plan(spec, profile, {v.name: top.cpu_cores}, replicas={v.name: top.replicas})
        gpu = [o for o in variant_options(spec, profile, v.name, profile.capacity_rps) if o.gpus > 0]
        if gpu:
            first = min(gpu, key=lambda o: (o.replicas, o.gpus))
            return static_plan(spec, profile, {v.name: first.cpu_cores}, replicas={v.name: first.replicas}, gpus={v.name: first.gpus})
    return None


def size_warnings(name: str, timeline: Timeline, profile: Profile) -> list[str]:
    """Once per variant: a size the policy ran that the profile did not measure (its capacity is assumed)."""
    seen: dict[str, str] = {}
    for inst in sorted(timeline.instances.values(), key=lambda i: i.id):
        for _, cores in inst.sizes:
            why = profile.unmeasured(inst.variant, cores, inst.gpus)
            if why is not None and inst.variant not in seen:
                seen[inst.variant] = f"{name}: {why} (hint: profile that size, or bound spec.resources.maxCpu by it)"
    return list(seen.values())


def run_controller(
    controller: Controller, actuator: SimActuator, history_rps: FloatArray, pre_s: int, duration_s: int, on_second: Callable[[float], None] | None = None
) -> None:
    """Step ``controller`` every ``Latencies.step_s`` of the window, and settle it at the instants it expects a change.

    The mode's observer reports a second ``observe_s`` after it ends (``Latencies.observe_s``): the loop
    steps at ``k + phase`` (``phase`` = its fraction; ``k`` every ``step_s`` from 0, floored to a second) with
    the seconds that ended ``floor(observe_s)`` s before ``k``. ``on_second(t)`` is called every
    :data:`PROGRESS_EVERY_S` trace seconds (progress)."""
    timeline = actuator.timeline
    state = controller.initial_state()
    observe_s = max(0.0, controller.latencies.observe_s)
    lag = math.floor(observe_s)
    phase = observe_s - lag
    every = controller.latencies.step_s
    t, tick, steps, again, report_at = phase, 0, 0, 0, 0.0  # ``tick``: the second of the next step, at ``tick + phase``
    while t < duration_s:
        if on_second is not None and t >= report_at:
            on_second(t)
            report_at += PROGRESS_EVERY_S
        if again or t != tick + phase:
            step, state = controller.settle(state, t, actuator.state(t))
        else:
            step, state = controller.step(state, t, history_rps[: max(0, pre_s + tick - lag)], actuator.state(t))
            steps += 1
            tick = math.floor(steps * every + 1e-9)
        if step.action is not None:
            actuator.execute(step.action, t)
        if step.record is not None:
            timeline.records.append(step.record)
        timeline.reconfigurations += int(step.reconfigured)
        if step.wake_s <= t and again < STEPS_PER_INSTANT:
            again += 1  # settle again now: e.g. a split the router confirms at once lets a leaving variant go
        else:
            again = 0
            next_step = tick + phase
            t = step.wake_s if t < step.wake_s < next_step else next_step


def _loop_progress(report: Progress, name: str, duration_s: int) -> Callable[[float], None]:
    return lambda t: report(name, f"control loop {t:.0f}/{duration_s} s", CONTROL_SHARE * t / max(1, duration_s))


def summarise(served: Served, timeline: Timeline, slo_s: float, duration_s: float, spec: InferenceServiceSpec) -> dict[str, float]:
    n = served.latency_s.size
    dropped = np.isnan(served.latency_s)
    ok = ~dropped
    over = int(np.count_nonzero(served.latency_s[ok] > slo_s))
    return {
        "slo_violation_ratio": (over + int(dropped.sum())) / n if n else 0.0,
        "avg_cpu": average_cores(timeline, duration_s),
        "avg_gpu": average_gpus(timeline, duration_s),
        "avg_cost": average_cost(timeline, duration_s, spec.prices),
        "avg_accuracy": float(served.accuracy[ok].mean()) if ok.any() else math.nan,
        "p99_latency_ms": float(np.percentile(served.latency_s[ok], 99) * 1000.0) if ok.any() else math.nan,
        "dropped_ratio": float(dropped.mean()) if n else 0.0,
        "reconfigurations": float(timeline.reconfigurations),
    }


def series_of(served: Served, arrivals_s: FloatArray, timeline: Timeline, profile: Profile, trace_rps: FloatArray, slo_s: float) -> dict[str, FloatArray]:
    """Per-second series for the report (latency and violations per ``BIN_S``-second bin, held)."""
    duration = trace_rps.size
    t = np.arange(duration, dtype=np.float64)
    second = np.minimum(arrivals_s.astype(np.int64), duration - 1)
    ok = ~np.isnan(served.latency_s)
    counts = np.bincount(second[ok], minlength=duration).astype(np.float64)
    acc_sum = np.bincount(second[ok], weights=served.accuracy[ok], minlength=duration)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(counts > 0, acc_sum / np.maximum(counts, 1), np.nan)
    p99 = np.full(duration, np.nan)
    violation = np.full(duration, np.nan)
    bins = second // BIN_S
    order = np.argsort(bins, kind="stable")
    edges = np.flatnonzero(np.diff(bins[order])) + 1
    for group in np.split(order, edges):
        if group.size == 0:
            continue
        b = int(bins[group[0]])
        lat = served.latency_s[group]
        good = lat[~np.isnan(lat)]
        lo, hi = b * BIN_S, min(duration, (b + 1) * BIN_S)
        if good.size:
            p99[lo:hi] = np.percentile(good, 99) * 1000.0
        violation[lo:hi] = (np.count_nonzero(good > slo_s) + (lat.size - good.size)) / lat.size
    forecast = np.full(duration, np.nan)
    for when, value in timeline.forecast_rps:
        forecast[int(when) :] = value
    per_variant = variant_cores(timeline, t + 0.5)
    return {
        "t_s": t,
        "load_rps": np.nan_to_num(trace_rps, nan=0.0),
        "forecast_rps": forecast,
        "capacity_rps": provisioned_capacity(timeline, profile, t + 0.5),
        "cpu_cores": allocated_cores(timeline, t + 0.5),
        "gpus": allocated_gpus(timeline, t + 0.5),
        "accuracy": accuracy,
        "p99_ms": p99,
        "violation_ratio": violation,
        **{f"cores:{name}": values for name, values in sorted(per_variant.items())},
    }


def _arrivals(trace: FloatArray, seed: int, arrivals: ArrivalMode | FloatArray) -> FloatArray:
    if isinstance(arrivals, str):
        return arrival_times(trace, np.random.default_rng(seed), arrivals)
    times = np.sort(np.asarray(arrivals, dtype=np.float64))
    return times[(times >= 0.0) & (times < trace.size)]


def simulate(
    spec: InferenceServiceSpec,
    profile: Profile,
    trace_rps: FloatArray,
    policies: Sequence[str],
    *,
    pre_history_rps: FloatArray | None = None,
    seed: int = 0,
    arrivals: ArrivalMode | FloatArray = "poisson",
    start: Plan | Literal["cold"] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    latencies: Latencies | None = None,
    machine: Machine | None = None,
    queue_factor: float = QUEUE_FACTOR,
    with_series: bool = False,
    progress: Progress | None = None,
    observed_rps: FloatArray | None = None,
) -> dict[str, PolicyRun]:
    """Run every policy in ``policies`` over ``trace_rps`` (per-second arrivals from t = 0).

    ``arrivals``: a mode of :func:`~infadapter.sim.traffic.arrival_times`, or the requests' own send times
    (seconds from the window's start; e.g. a measured run's, to replay exactly what it sent).
    ``start``: what runs, ready, when the window begins — by default the paper's start (the most
    accurate variant on the whole budget); ``"cold"``: nothing (the controller's cold start, as for a
    new service). A policy that starts on its own plan (static, VPA) starts on it. ``machine``: the servers
    share it with other processes (:mod:`infadapter.sim.machine`; none: they are alone). ``queue_factor``: a
    server drops a request that would wait longer than this many capacity-seconds of work (the paper's
    TF-Serving queue, 1.25); ``math.inf`` for servers without a queue limit (Triton as InfAdapter deploys it:
    a late request is late, not dropped). ``progress``: see :data:`Progress`. ``observed_rps``: what the
    controllers observe each second of the window (e.g. what a measured run's observer read from Prometheus,
    to replay its decisions' input too); by default the counts of the requests sent.
    """
    report: Progress = progress or (lambda name, what, done: None)
    trace = np.asarray(trace_rps, dtype=np.float64)
    pre = np.asarray(pre_history_rps if pre_history_rps is not None else np.empty(0), dtype=np.float64)
    times = _arrivals(trace, seed, arrivals)
    # the controllers see what was sent (the counts' noise included), as a mode's observer counts it
    seen = observed_counts(times, trace) if observed_rps is None else np.asarray(observed_rps, dtype=np.float64)
    if seen.shape != trace.shape:
        raise ValueError(f"observed_rps: {seen.size} seconds for a {trace.size}-second window; give one value per second")
    history = np.concatenate((pre, seen))
    model = ServiceModel(profile, spec.slo.latency_ms, spec.slo.percentile, queue_factor, seed)
    slo_s = spec.slo.latency_ms / 1000.0
    latencies = latencies or Latencies()
    begin = default_start(spec, profile) if start is None else start
    runs: dict[str, PolicyRun] = {}
    for name in policies:
        clock = time.perf_counter()
        extra = {**policy_options(name, latencies), **(options or {}).get(name, {})}
        if name == "oracle":
            extra.setdefault("future_rps", trace)
        policy = make_policy(name, spec, profile, **extra)
        timeline = Timeline()
        actuator = SimActuator(spec, latencies, timeline, machine.ready_s if machine is not None else None)
        if isinstance(policy, StartsOnAPlan):
            actuator.deploy(policy.initial_plan())
        elif isinstance(begin, Plan):
            actuator.deploy(begin)
        # the paper's baselines ran without a quota: they replace single replicas, which no small surge holds
        surge = None if name in OWN_POLICIES else BASELINE_SURGE
        controller = Controller(spec, profile, policy, latencies=latencies, name=name, surge_ratio=surge)
        run_controller(controller, actuator, history, pre.size, trace.size, _loop_progress(report, name, trace.size))
        report(name, f"serving {times.size:,} requests", CONTROL_SHARE)
        served = serve_requests(timeline, times, model) if machine is None else serve_on(machine, timeline, times, model, profile, trace)
        summary = summarise(served, timeline, slo_s, float(trace.size), spec)
        series = series_of(served, times, timeline, profile, trace, slo_s) if with_series else {}
        runs[name] = PolicyRun(
            name, summary, series, timeline, list(getattr(policy, "notes", [])), time.perf_counter() - clock, size_warnings(name, timeline, profile)
        )
        report(name, "done", 1.0)
    return runs
