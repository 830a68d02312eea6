"""Fidelity: what ``simulate`` predicts against what the embedded mode measures, on the same scenario.

Scenario: the spec (``examples/demo.yaml`` by default), its profile (the one ``infadapter run`` measures and
caches on this machine, or ``--profile``), and the trace window ``infadapter run`` replays, scaled the same
way (no history before it). Each of ``--runs`` runs:

* **measured**: :class:`~infadapter.embedded.EmbeddedRun` (real tritonservers in cgroups, Envoy, Prometheus,
  the open-loop load generator, the controller) with ``--policy``;
* **simulated**: :func:`~infadapter.sim.run.simulate` over the very requests the measured run sent (their
  send times replayed: the load generator's Poisson counts, which its controller observed, are the
  simulated controller's too) with the embedded mode's control-loop delays (``simulate --latencies
  embedded``), starting on the plan the measured run had when its load began (the embedded cold start
  settles before the load).

The simulator is calibrated from measurements, not assumptions: the profile is measured on this machine at
every size of the spec's grid (``--sizes grid``: no interpolated capacity), and the CPU that the load
generator, the controller, Envoy and Prometheus take beside the servers is measured once a second during the
embedded runs and fitted as ``base + per_rps x load`` (:class:`~infadapter.sim.machine.Machine`), then every
run is simulated on that machine, with servers that drop nothing (Triton as the runtime configures it has no
queue limit: a late request is late, not dropped, and counts in the p99). Each run also reports the servers' measured cold starts (``ready`` events,
to compare with the spec's load time + the mode's start-up) and the client's latency percentiles. Prints
one JSON object on stdout (progress on stderr)::

    {"scenario": {...}, "simulated": {...}, "measured": {...}, "spread": {...}, "errors": {...},
     "targets": {...}, "runs": [...]}

``simulated``/``measured``: means over the runs (``simulated_one_figure``: the simulator's model of a size
measured without its median, every tail taken for queueing, for comparison; ``simulated_as_observed``: the
controller fed what the measured observer read; ``simulated_as_decided``: the measured run's plans replayed at the
seconds they were decided, so the server model is compared on the very plans the real servers ran, each
with its ``errors_as_...``); ``spread``: each measure's min and max over the runs;
``errors``: simulated − measured (violations in points, cores and p99 relative); ``targets``: violations
within ±0.5 points, cores within 10 %, p99 within 25 %.

    .venv/bin/python benchmarks/fidelity.py [--runs 3] [--duration 180] [-f examples/demo.yaml] [--profile P]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import json
import logging
import math
import os
import re
import signal
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402

from infadapter.cache import cache_root  # noqa: E402
from infadapter.cli.run import PEAK_SHARE, cached_profile, max_capacity_rps, pick_trace, profile_cpus, profile_key  # noqa: E402
from infadapter.control import MODE_LATENCIES, ControlState, Step  # noqa: E402
from infadapter.embedded import EmbeddedRun  # noqa: E402
from infadapter.errors import MetricsUnavailable  # noqa: E402
from infadapter.metrics import Observer  # noqa: E402
from infadapter.planning import Plan, cpu_grid  # noqa: E402
from infadapter.policies import Resize  # noqa: E402
from infadapter.profiles import Profile, load_profile, save_profile  # noqa: E402
from infadapter.serving.profiler import Profiler, largest_planned_cores, spec_models  # noqa: E402
from infadapter.sim.machine import Machine  # noqa: E402
from infadapter.sim.run import BIN_S, simulate  # noqa: E402
from infadapter.spec import InferenceServiceSpec, load_resource  # noqa: E402

MEASURES = ("slo_violation_ratio", "avg_cpu", "avg_accuracy", "p99_latency_ms", "reconfigurations")
READY = re.compile(r"^(?P<variant>[^#]+)#\S+ after (?P<s>[0-9.]+) s$")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # the run's cleanup (finally) stops every child


def _measures(summary: dict[str, Any]) -> dict[str, float]:
    return {k: (math.nan if summary.get(k) is None else float(summary[k])) for k in MEASURES}


def _cold_starts(run: EmbeddedRun) -> dict[str, list[float]]:
    """Seconds from a server's launch to its first ready answer, per variant (the runtime's ``ready`` events)."""
    out: dict[str, list[float]] = {}
    for event in run.events:
        match = READY.match(event.detail) if event.kind == "ready" else None
        if match:
            out.setdefault(match["variant"], []).append(round(float(match["s"]), 2))
    return out


class OthersCpu:
    """Once a second during a run, the CPU every process but the servers took: this one (the load generator,
    the controller, the observer), Envoy and Prometheus — what :class:`~infadapter.sim.machine.Machine` models."""

    def __init__(self, run: EmbeddedRun) -> None:
        self.run = run
        self.samples: list[tuple[float, float]] = []  # (Unix time, CPU-seconds so far)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fidelity-cpu", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            rt = self.run.runtime
            if rt is None or self.run.load_started_wall_s is None:
                continue
            pids = [rt.envoy.pid, rt.prometheus.process.pid if rt.prometheus and rt.prometheus.process else None]
            self.samples.append((time.time(), time.process_time() + sum(_process_cpu_s(p) for p in pids if p)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def per_second(self, rates: npt.NDArray[np.float64]) -> tuple[list[float], list[float]]:
        """(load, cores taken) for every second of the load the samples cover."""
        start = self.run.load_started_wall_s or 0.0
        loads, cores = [], []
        for (t0, c0), (t1, c1) in itertools.pairwise(self.samples):
            second = int((t0 + t1) / 2 - start)
            if 0 <= second < rates.size and t1 > t0:
                loads.append(float(rates[second]))
                cores.append((c1 - c0) / (t1 - t0))
        return loads, cores


class Decided:
    """The plans a measured run's controller decided, as ``replay``'s schedule: (seconds since the load began,
    plan, resize), one entry each time its target changed after the load began."""

    def __init__(self, run: EmbeddedRun) -> None:
        self.run = run
        self.raw: list[tuple[float, Plan, Resize]] = []  # on the run's clock
        step = run.controller.step

        def recorded(state: ControlState, now_s: float, history: Any, actuator: Any) -> tuple[Step, ControlState]:
            out = step(state, now_s, history, actuator)
            target = out[1].target
            if target is not None and (not self.raw or self.raw[-1][1] is not target):
                self.raw.append((now_s, target, "in_place" if out[1].in_place else "recreate"))
            return out

        run.controller.step = recorded  # type: ignore[method-assign]

    def schedule(self) -> list[tuple[float, Plan, Resize]]:
        offset = self.run.load_offset_s
        return [(t - offset, plan, resize) for t, plan, resize in self.raw if t > offset]


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fit_machine(loads: list[float], cores: list[float]) -> Machine:
    """``cores taken = base + per_rps x load`` by least squares over the runs' seconds (both kept >= 0)."""
    x, y = np.asarray(loads), np.asarray(cores)
    if x.size < 2 or np.ptp(x) == 0:
        return Machine(float(len(os.sched_getaffinity(0))), float(y.mean()) if y.size else 0.0, 0.0)
    per_rps, base = np.polyfit(x, y, 1)
    if base < 0:
        base, per_rps = 0.0, float(np.dot(x, y) / np.dot(x, x))
    return Machine(float(len(os.sched_getaffinity(0))), round(max(0.0, float(base)), 4), round(max(0.0, float(per_rps)), 6))


def _latency_quantiles(run: EmbeddedRun) -> dict[str, float]:
    ok = np.array([r.latency_ms for r in run.requests if r.ok])
    if ok.size == 0:
        return {}
    return {f"p{q}_ms": round(float(np.percentile(ok, q)), 1) for q in (50, 90, 99)}


def _late_by_bin(run: EmbeddedRun, slo_ms: float, duration_s: int) -> list[float]:
    """The share of requests late or failed, per ``BIN_S`` seconds of the load (where the two sides differ)."""
    sent = np.array([r.send_s for r in run.requests])
    late = np.array([not r.ok or r.latency_ms > slo_ms for r in run.requests])
    bins = np.minimum(sent.astype(np.int64), duration_s - 1) // BIN_S
    count = np.bincount(bins, minlength=-(-duration_s // BIN_S))
    over = np.bincount(bins, weights=late.astype(np.float64), minlength=count.size)
    return [round(float(o / c), 3) if c else 0.0 for o, c in zip(over, count, strict=True)]


def _client_lag(run: EmbeddedRun, slo_ms: float) -> dict[str, float]:
    """How late the load generator itself began its requests, and the late share without that delay."""
    lag = np.array([r.send_lag_ms for r in run.requests])
    if lag.size == 0:
        return {}
    late = np.array([not r.ok or r.latency_ms - r.send_lag_ms > slo_ms for r in run.requests])
    return {
        "send_lag_p50_ms": round(float(np.percentile(lag, 50)), 1),
        "send_lag_p99_ms": round(float(np.percentile(lag, 99)), 1),
        "send_lag_max_ms": round(float(lag.max()), 1),
        "late_without_send_lag": round(float(late.mean()), 5),
    }


class RouterView:
    """What Envoy saw of the same run, read from Prometheus before the runtime stops: the share of requests
    over the SLO at the router (downstream, by completion time), over the run and per ``BIN_S`` seconds —
    the client's figures less the client's own delays."""

    def __init__(self, slo_ms: float, duration_s: int) -> None:
        self.slo_ms, self.duration_s = slo_ms, duration_s
        self.figures: dict[str, Any] = {}
        self.observed: npt.NDArray[np.float64] | None = None

    def __call__(self, run: EmbeddedRun, runtime: Any) -> None:
        start = run.load_started_wall_s
        if start is None:
            return
        observer = Observer(runtime.prometheus_url, timeout_s=5.0, retries=1)
        time.sleep(2.0)  # the last answers' scrape
        try:
            self._read(observer, run, start)
        except MetricsUnavailable as exc:
            self.figures = {"error": str(exc)}
        finally:
            observer.close()

    def _read(self, observer: Observer, run: EmbeddedRun, start: float) -> None:
        ns, name, now = run.namespace, run.name, time.time()
        whole = observer.slo_violation_ratio(ns, name, self.slo_ms, window_s=now - start + 1.0, at_s=now)
        bins = []
        for k in range(-(-self.duration_s // BIN_S)):
            end = start + (k + 1) * BIN_S
            bins.append(round(observer.slo_violation_ratio(ns, name, self.slo_ms, window_s=BIN_S, at_s=end), 3) if end <= now else math.nan)
        self.figures = {"router_violation_ratio": round(whole, 5), "router_late_by_10s": bins}
        # what the controller's observer read for second k of the load: the rate at its end
        self.observed = observer.arrival_history_rps(ns, name, start + 1.0, start + self.duration_s)


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.fmean(r[k] for r in rows), 6) for k in MEASURES}


def _spread(rows: list[dict[str, float]]) -> dict[str, list[float]]:
    return {k: [round(min(r[k] for r in rows), 6), round(max(r[k] for r in rows), 6)] for k in MEASURES}


def _errors(sim: dict[str, float], real: dict[str, float]) -> dict[str, float]:
    def relative(key: str) -> float:
        return round((sim[key] - real[key]) / real[key], 4) if real[key] else math.nan

    return {
        "violations_points": round(100.0 * (sim["slo_violation_ratio"] - real["slo_violation_ratio"]), 3),
        "cpu_relative": relative("avg_cpu"),
        "p99_relative": relative("p99_latency_ms"),
    }


def _measured_profile(spec: Any, models: dict[str, Path], console: Console, sizes: tuple[float, ...] | None, seconds: float) -> Profile:
    """The profile at ``sizes`` with ``seconds`` per load step (cached beside run's, keyed by both)."""
    if seconds <= 2.0:
        return cached_profile(spec, models, console, sizes)
    cpus = sizes or profile_cpus(spec)
    path = cache_root() / "profiles" / f"{spec.model_name}-{profile_key(spec, models, cpus)}-{seconds:g}s.yaml"
    if path.is_file():
        return load_profile(path)
    console.print(f"profile: measuring {len(models)} variants x {len(cpus)} sizes, {seconds:g} s per step (cached in {path})", highlight=False)
    profiler = Profiler(spec.slo.latency_ms, spec.slo.percentile, duration_s=seconds, max_steps=5, tolerance=0.1)
    profile, _ = profiler.profile(models, spec.model_name, cpus, largest_planned_cores(spec))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_profile(profile, path)
    return profile


def _clean(value: Any) -> Any:
    """JSON without NaN: an unknown measure is null."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True)
class Scenario:
    """What both sides run: the spec, its models and profile, the scaled trace."""

    name: str
    spec: InferenceServiceSpec
    models: dict[str, Path]
    profile: Profile
    rates: npt.NDArray[np.float64]
    described: str
    factor: float


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-f", "--file", type=Path, default=ROOT / "examples" / "demo.yaml")
    parser.add_argument("--profile", type=Path, default=None, help="profile file (default: measured here at --sizes, cached)")
    parser.add_argument("--sizes", choices=("grid", "ends"), default="grid", help="measure every size of the spec's grid, or its ends as run does")
    parser.add_argument(
        "--profile-seconds", type=float, default=6.0, help="seconds per load step when profiling (run's profile: 2, too short for a queue to build)"
    )
    parser.add_argument("--duration", type=int, default=180, help="seconds of trace per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--policy", default="ours")
    args = parser.parse_args()
    if not 1 <= args.runs <= 20 or not 10 <= args.duration <= 3600:
        parser.error("--runs must be 1..20 and --duration 10..3600")
    return args


def _scenario(args: argparse.Namespace, console: Console) -> Scenario:
    resource = load_resource(args.file)
    spec = resource.spec
    models = spec_models(spec)
    # every planned size measured: the simulator then believes no interpolated capacity the servers do not have
    sizes = tuple(sorted({c for v in spec.variants for c in cpu_grid(spec, v.name)})) if args.sizes == "grid" else None
    profile = load_profile(args.profile) if args.profile is not None else _measured_profile(spec, models, console, sizes, args.profile_seconds)
    raw, described = pick_trace(None, None, args.duration)
    factor = PEAK_SHARE * max_capacity_rps(spec, profile) / float(np.nanmax(raw))
    return Scenario(resource.metadata.name, spec, models, profile, np.nan_to_num(raw * factor, nan=0.0), described, factor)


def _measured_runs(args: argparse.Namespace, sc: Scenario, console: Console) -> tuple[list[dict[str, Any]], Machine]:
    """The embedded runs, and the machine fitted to what the other processes took over all of them."""
    rows: list[dict[str, Any]] = []
    loads: list[float] = []
    taken: list[float] = []
    for k in range(args.runs):
        console.print(f"== run {k + 1}/{args.runs}: embedded", highlight=False)
        started = time.monotonic()
        router = RouterView(sc.spec.slo.latency_ms, sc.rates.size)
        run = EmbeddedRun(sc.spec, sc.profile, sc.models, sc.rates, policy=args.policy, name=sc.name, console=console, live=False)
        run.before_stop = functools.partial(router, run)
        others = OthersCpu(run)
        decided = Decided(run)
        try:
            summary = run.run().to_json()
        finally:
            others.stop()
        x, y = others.per_second(sc.rates)
        loads += x
        taken += y
        rows.append(
            {
                "measured": _measures(summary),
                "measured_requests": summary.get("requests"),
                "measured_errors": summary.get("errors"),
                "measured_latency": _latency_quantiles(run),
                "measured_late_by_10s": _late_by_bin(run, sc.spec.slo.latency_ms, sc.rates.size),
                "measured_client": _client_lag(run, sc.spec.slo.latency_ms),
                "measured_router": router.figures,
                "observed_rps": router.observed,
                "sent_s": [r.send_s for r in run.requests],
                "cold_starts_s": _cold_starts(run),
                "others_cores_mean": round(statistics.fmean(y), 3) if y else None,
                "start": next((s.plan for s in run.samples if s.plan is not None), None),
                "decided": decided.schedule(),
                "wall_s": round(time.monotonic() - started, 1),
            }
        )
    return rows, fit_machine(loads, taken)


def _simulated_runs(args: argparse.Namespace, sc: Scenario, rows: list[dict[str, Any]], machine: Machine, console: Console) -> list[dict[str, Any]]:
    """Each measured run simulated from the plan it started on, with its own arrival seed."""
    runs: list[dict[str, Any]] = []
    for k, row in enumerate(rows):
        start: Plan | None = row.pop("start")
        console.print(f"== run {k + 1}/{args.runs}: simulated from {start.describe() if start else 'nothing'}", highlight=False)
        begin: Plan | Literal["cold"] = start if start is not None else "cold"
        latencies = MODE_LATENCIES["embedded"]
        sent = np.asarray(row.pop("sent_s"))  # the very requests the run sent, replayed
        observed = row.pop("observed_rps")
        rows_of: dict[str, Any] = {"observed_vs_sent": _observation_noise(observed, sent, sc.rates.size)}
        # the simulator as a user runs it (its observer counts the requests sent), the one-figure server model,
        # the decisions' input replayed (what the measured run's observer read), and the measured run's own plans
        # replayed (``replay``: the servers and the actuation alone, no control loop to diverge)
        models: list[tuple[str, Profile, Any]] = [("simulated", sc.profile, None), ("simulated_one_figure", _one_figure(sc.profile), None)]
        if observed is not None:
            models.append(("simulated_as_observed", sc.profile, observed))
        decided = row.pop("decided")
        models.append(("simulated_as_decided", sc.profile, None))
        for model, profile, seen in models:
            policy = "replay" if model == "simulated_as_decided" else args.policy
            sim = simulate(
                *(sc.spec, profile, sc.rates, [policy]),
                seed=k,
                arrivals=sent,
                start=begin,
                latencies=latencies,
                machine=machine,
                queue_factor=math.inf,
                with_series=True,
                observed_rps=seen,
                options={"replay": {"schedule": decided}},
            )
            rows_of[model] = _measures(sim[policy].summary)
            if model != "simulated_one_figure":
                late = np.nan_to_num(sim[policy].series["violation_ratio"][::BIN_S])
                rows_of[f"{model}_late_by_10s"] = [round(float(v), 3) for v in late]
        runs.append({**row, **rows_of, "start_plan": start.describe() if start else None})
    return runs


def _observation_noise(observed: npt.NDArray[np.float64] | None, sent_s: npt.NDArray[np.float64], duration_s: int) -> dict[str, float]:
    """How far what the observer read from Prometheus strays from the requests sent, second by second."""
    if observed is None:
        return {}
    sent = np.bincount(np.minimum(sent_s.astype(np.int64), duration_s - 1), minlength=duration_s).astype(np.float64)
    known = ~np.isnan(observed)
    if not known.any():
        return {}
    gap = observed[known] - sent[known]
    return {
        "seconds_unknown": int((~known).sum()),
        "mean_abs_rps": round(float(np.abs(gap).mean()), 2),
        "max_over_rps": round(float(gap.max()), 1),
        "max_under_rps": round(float(-gap.min()), 1),
    }


def _one_figure(profile: Profile) -> Profile:
    """The profile without its medians: the simulator's one-figure model (every tail taken for queueing)."""
    points = {v: tuple(dataclasses.replace(p, p50_ms=None) for p in pts) for v, pts in profile.points.items()}
    return Profile(profile.slo_ms, points, profile.percentile, profile.source, profile.serving)


def _output(args: argparse.Namespace, sc: Scenario, runs: list[dict[str, Any]], machine: Machine) -> dict[str, Any]:
    simulated, measured = _mean([r["simulated"] for r in runs]), _mean([r["measured"] for r in runs])
    errors = _errors(simulated, measured)
    profile = str(args.profile) if args.profile is not None else f"measured here at {args.sizes} sizes, {args.profile_seconds:g} s per step"
    return {
        "scenario": {
            "spec": str(args.file.relative_to(ROOT) if args.file.is_relative_to(ROOT) else args.file),
            "trace": sc.described,
            "scale": round(sc.factor, 4),
            "duration_s": args.duration,
            "mean_rps": round(float(sc.rates.mean()), 1),
            "peak_rps": round(float(sc.rates.max()), 1),
            "policy": args.policy,
            "profile": profile,
            "latencies": dataclasses.asdict(MODE_LATENCIES["embedded"]),
            "machine": dataclasses.asdict(machine),
            "load_time_s": {v.name: v.load_time_s for v in sc.spec.variants},
        },
        "simulated": simulated,
        "measured": measured,
        "simulated_one_figure": _mean([r["simulated_one_figure"] for r in runs]),
        **_as_replayed(runs, measured),
        "spread": {"simulated": _spread([r["simulated"] for r in runs]), "measured": _spread([r["measured"] for r in runs])},
        "errors": errors,
        "targets": {
            "violations_within_0.5_points": abs(errors["violations_points"]) <= 0.5,
            "cpu_within_10pct": abs(errors["cpu_relative"]) <= 0.10,
            "p99_within_25pct": abs(errors["p99_relative"]) <= 0.25,
        },
        "runs": runs,
    }


def _as_replayed(runs: list[dict[str, Any]], measured: dict[str, float]) -> dict[str, Any]:
    """The simulations with the measured observations, and with the measured plans, replayed, and their errors
    (each where every run has one)."""
    out: dict[str, Any] = {}
    for what in ("observed", "decided"):
        rows = [r[f"simulated_as_{what}"] for r in runs if f"simulated_as_{what}" in r]
        if len(rows) == len(runs):
            out[f"simulated_as_{what}"] = mean = _mean(rows)
            out[f"errors_as_{what}"] = _errors(mean, measured)
    return out


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    args = _arguments()
    logging.basicConfig(level=logging.WARNING)
    console = Console(stderr=True, width=200)
    scenario = _scenario(args, console)
    # the embedded runs first: the machine's other processes are measured over all of them, then simulated
    rows, machine = _measured_runs(args, scenario, console)
    runs = _simulated_runs(args, scenario, rows, machine, console)
    print(json.dumps(_clean(_output(args, scenario, runs, machine)), allow_nan=False))


if __name__ == "__main__":
    main()
