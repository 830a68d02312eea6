"""The figures ``benchmarks/fidelity.py`` prints: the measures of a summary, their means, spreads and errors over
the runs, and the simulations beside the headline one (measured observations or plans replayed, a steady host,
the host's measured speed), each with its errors against the measured mean.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
from pathlib import Path
from typing import Any

import hostspeed  # beside this file
import numpy as np
import numpy.typing as npt
from fidelity_host import slow_host_of

from infadapter.control import MODE_LATENCIES
from infadapter.profiles import Profile
from infadapter.sim.machine import Machine
from infadapter.spec import InferenceServiceSpec

ROOT = Path(__file__).resolve().parents[1]

MEASURES = ("slo_violation_ratio", "avg_cpu", "avg_accuracy", "p99_latency_ms", "reconfigurations")


def measures(summary: dict[str, Any]) -> dict[str, float]:
    return {k: (math.nan if summary.get(k) is None else float(summary[k])) for k in MEASURES}


def mean_of(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.fmean(r[k] for r in rows), 6) for k in MEASURES}


def spread(rows: list[dict[str, float]]) -> dict[str, list[float]]:
    return {k: [round(min(r[k] for r in rows), 6), round(max(r[k] for r in rows), 6)] for k in MEASURES}


def errors_of(sim: dict[str, float], real: dict[str, float]) -> dict[str, float]:
    def relative(key: str) -> float:
        return round((sim[key] - real[key]) / real[key], 4) if real[key] else math.nan

    return {
        "violations_points": round(100.0 * (sim["slo_violation_ratio"] - real["slo_violation_ratio"]), 3),
        "cpu_relative": relative("avg_cpu"),
        "p99_relative": relative("p99_latency_ms"),
    }


#: The issue's targets: each error's key, its name in ``targets`` and how far from the measured mean it may be.
TARGETS = (("violations_points", "violations_within_0.5_points", 0.5), ("cpu_relative", "cpu_within_10pct", 0.10), ("p99_relative", "p99_within_25pct", 0.25))


def targets_met(errors: dict[str, float]) -> dict[str, bool]:
    """The issue's targets on :func:`errors_of`'s errors: violations within ±0.5 points, cores within 10 %, p99 within 25 %."""
    return {name: abs(errors[key]) <= tolerance for key, name, tolerance in TARGETS}


def exact_chance(standard_errors: dict[str, float]) -> dict[str, float]:
    """How often a simulator that predicts the mean of many runs exactly would meet each target against a mean of
    runs with these standard errors (:func:`standard_error`): P(|N(0, se)| <= tolerance) = erf(tolerance / (se √2)).

    A target's miss on one batch says little where this is far below 1: on this 2-core host three runs measured
    the violations with standard errors of 0.05-1.5 points, so an exact simulator would meet ±0.5 points on 0.27-1.0
    of such batches. NaN where the standard error is unknown (one run)."""

    def chance(key: str, tolerance: float) -> float:
        se = standard_errors.get(key, math.nan)
        if se is None or math.isnan(se):
            return math.nan
        return 1.0 if se <= 0 else round(math.erf(tolerance / (se * math.sqrt(2.0))), 3)

    return {name: chance(key, tolerance) for key, name, tolerance in TARGETS}


def standard_error(rows: list[dict[str, float]]) -> dict[str, float]:
    """How far the measured mean over the runs may itself be from the mean of many runs: the sample standard
    deviation over the runs / sqrt(runs), in the units of :func:`errors_of` (NaN with one run). On batches R and
    S (2026-12-05) it was 1.2 and 2.1 points of violations: a ±0.5-point target is within a 3-run mean's noise."""
    if len(rows) < 2:
        return dict.fromkeys(("violations_points", "cpu_relative", "p99_relative"), math.nan)

    def se(key: str) -> float:
        return statistics.stdev(r[key] for r in rows) / math.sqrt(len(rows))

    def relative(key: str) -> float:
        mean = statistics.fmean(r[key] for r in rows)
        return round(se(key) / mean, 4) if mean else math.nan

    return {"violations_points": round(100.0 * se("slo_violation_ratio"), 3), "cpu_relative": relative("avg_cpu"), "p99_relative": relative("p99_latency_ms")}


def clean(value: Any) -> Any:
    """JSON without NaN: an unknown measure is null."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def as_counted(observed: npt.NDArray[np.float64] | None) -> npt.NDArray[np.float64] | None:
    """What the observer read, per second it counted: the rate read at the end of second ``k`` of the load
    (``RouterView``) holds second ``k - 1``'s requests (least error against the requests sent on batches J
    and K: 1.6-2.3 rps a second), which the simulator's history holds at index ``k - 1``."""
    if observed is None:
        return None
    return np.append(observed[1:], np.nan)


def observation_noise(observed: npt.NDArray[np.float64] | None, sent_s: npt.NDArray[np.float64], duration_s: int) -> dict[str, float]:
    """How far what the observer read from Prometheus strays from the requests sent, second by second (``observed``: :func:`as_counted`)."""
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


#: the simulations beside the headline one, in the order printed: the measured observations, and the measured
#: plans, replayed; a host at one speed (the model before the host's swings); each run at the profile's speed (the
#: headline's being the host's measured speed over the run, :mod:`speedprobe`), at the mode's mean observer delay
#: (the headline's being the run's own loop phase) and at the host's speed second by second, also with the
#: measured plans; a start taking its whole core throughout; a new server serving when planned, not when measured
BESIDE = (
    "simulated_as_observed",
    "simulated_as_decided",
    "simulated_steady_host",
    "simulated_at_profile_speed",
    "simulated_at_mean_delay",
    "simulated_as_decided_at_profile_speed",
    "simulated_at_measured_host",
    "simulated_as_decided_at_measured_host",
    "simulated_start_whole_core",
    "simulated_start_as_planned",
)


def beside(runs: list[dict[str, Any]], measured: dict[str, float]) -> dict[str, Any]:
    """Each simulation of :data:`BESIDE` that every run has, its mean over the runs and its errors
    (``simulated_X`` beside ``errors_X``)."""
    out: dict[str, Any] = {}
    for model in BESIDE:
        rows = [r[model] for r in runs if model in r]
        if rows and len(rows) == len(runs):
            out[model] = mean = mean_of(rows)
            out[model.replace("simulated", "errors", 1)] = errors_of(mean, measured)
    return out


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
    #: the host as :mod:`speedprobe` read it while the profile was measured (empty: not known)
    profile_probe: dict[str, float]


def one_figure(profile: Profile) -> Profile:
    """The profile without its medians: the simulator's one-figure model (every tail taken for queueing)."""
    points = {v: tuple(dataclasses.replace(p, p50_ms=None) for p in pts) for v, pts in profile.points.items()}
    return Profile(profile.slo_ms, points, profile.percentile, profile.source, profile.serving)


def output(args: argparse.Namespace, sc: Scenario, runs: list[dict[str, Any]], machine: Machine, start_shape: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The JSON object the benchmark prints: the scenario, the simulated and measured means, the simulations
    beside them, the spreads, the errors against the targets and every run."""
    simulated, measured = mean_of([r["simulated"] for r in runs]), mean_of([r["measured"] for r in runs])
    errors, standard_errors = errors_of(simulated, measured), standard_error([r["measured"] for r in runs])
    profile = str(args.from_runs or args.profile or f"measured here at {args.sizes} sizes, {args.profile_seconds:g} s per step")
    if getattr(args, "profile_of", None) is not None:
        profile = f"{profile}, simulated with the profile of {args.profile_of}"
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
            "machine": {
                "cores": machine.cores,
                "base_cpu": machine.base_cpu,
                "cpu_per_rps": machine.cpu_per_rps,
                "startup_cores": machine.startup_cores,
                "startup_cpu_s": dict(machine.startup_cpu_s),
                "startup_shape": start_shape or "not measured (runs replayed from a file)",
                "ready_s": dict(machine.ready_s),
            },
            "host_speed": hostspeed.summary(list(machine.jitter)) if machine.jitter else "steady (--host-seconds 0)",
            "profile_probe": sc.profile_probe or "not measured (a given or cached profile without its probe)",
            "runs_host_speed": [r.get("host_speed") for r in runs],
            "load_time_s": {v.name: v.load_time_s for v in sc.spec.variants},
        },
        "simulated": simulated,
        "measured": measured,
        "simulated_one_figure": mean_of([r["simulated_one_figure"] for r in runs]),
        **beside(runs, measured),
        "spread": {"simulated": spread([r["simulated"] for r in runs]), "measured": spread([r["measured"] for r in runs])},
        "errors": errors,
        "measured_standard_error": standard_errors,
        "targets": targets_met(errors),
        "targets_exact_chance": exact_chance(standard_errors),
        "measured_slow_host": slow_host_of(runs),
        "runs": runs,
    }
