"""Fidelity: what ``simulate`` predicts against what the embedded mode measures, on the same scenario.

Scenario: the spec (``examples/demo.yaml`` by default), its profile (the one ``infadapter run`` measures and
caches on this machine, or ``--profile``), and the trace window ``infadapter run`` replays, scaled the same
way (no history before it). Each of ``--runs`` runs:

* **measured**: :class:`~infadapter.embedded.EmbeddedRun` (real tritonservers in cgroups, Envoy, Prometheus,
  the open-loop load generator, the controller) with ``--policy``;
* **simulated**: :func:`~infadapter.sim.run.simulate` over the same per-second rates with the embedded
  mode's actuation latencies (``simulate --latencies embedded``), starting on the plan the measured run
  had when its load began (the embedded cold start settles before the load), arrivals seeded by the run.

Besides the five measures of each side, every run reports what the simulator's calibration is checked
against: the servers' measured cold starts (``ready`` events) beside the spec's load time + the mode's
start-up, and the client's latency percentiles. Prints one JSON object on stdout (progress on stderr)::

    {"scenario": {...}, "simulated": {...}, "measured": {...}, "spread": {...}, "errors": {...},
     "targets": {...}, "runs": [...]}

``simulated``/``measured``: means over the runs; ``spread``: each measure's min and max over the runs;
``errors``: simulated − measured (violations in points, cores and p99 relative); ``targets``: violations
within ±0.5 points, cores within 10 %, p99 within 25 %.

    .venv/bin/python benchmarks/fidelity.py [--runs 3] [--duration 180] [-f examples/demo.yaml] [--profile P]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import re
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402

from infadapter.cli.run import PEAK_SHARE, cached_profile, max_capacity_rps, pick_trace  # noqa: E402
from infadapter.control import MODE_LATENCIES  # noqa: E402
from infadapter.embedded import EmbeddedRun  # noqa: E402
from infadapter.planning import cpu_grid  # noqa: E402
from infadapter.profiles import load_profile  # noqa: E402
from infadapter.serving.profiler import spec_models  # noqa: E402
from infadapter.sim.run import simulate  # noqa: E402
from infadapter.spec import load_resource  # noqa: E402

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


def _latency_quantiles(run: EmbeddedRun) -> dict[str, float]:
    ok = np.array([r.latency_ms for r in run.requests if r.ok])
    if ok.size == 0:
        return {}
    return {f"p{q}_ms": round(float(np.percentile(ok, q)), 1) for q in (50, 90, 99)}


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


def _clean(value: Any) -> Any:
    """JSON without NaN: an unknown measure is null."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-f", "--file", type=Path, default=ROOT / "examples" / "demo.yaml")
    parser.add_argument("--profile", type=Path, default=None, help="profile file (default: measured here at --sizes, cached)")
    parser.add_argument("--sizes", choices=("grid", "ends"), default="grid", help="measure every size of the spec's grid, or its ends as run does")
    parser.add_argument("--duration", type=int, default=180, help="seconds of trace per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--policy", default="ours")
    args = parser.parse_args()
    if not 1 <= args.runs <= 20 or not 10 <= args.duration <= 3600:
        parser.error("--runs must be 1..20 and --duration 10..3600")
    logging.basicConfig(level=logging.WARNING)
    console = Console(stderr=True, width=200)
    resource = load_resource(args.file)
    spec = resource.spec
    models = spec_models(spec)
    # every planned size measured: the simulator then believes no interpolated capacity the servers do not have
    sizes = tuple(sorted({c for v in spec.variants for c in cpu_grid(spec, v.name)})) if args.sizes == "grid" else None
    profile = load_profile(args.profile) if args.profile is not None else cached_profile(spec, models, console, sizes)
    raw, described = pick_trace(None, None, args.duration)
    factor = PEAK_SHARE * max_capacity_rps(spec, profile) / float(np.nanmax(raw))
    rates = np.nan_to_num(raw * factor, nan=0.0)
    latencies = MODE_LATENCIES["embedded"]

    runs: list[dict[str, Any]] = []
    for k in range(args.runs):
        console.print(f"== run {k + 1}/{args.runs}: embedded", highlight=False)
        started = time.monotonic()
        run = EmbeddedRun(spec, profile, models, rates, policy=args.policy, name=resource.metadata.name, console=console, live=False)
        measured = run.run().to_json()
        start = next((s.plan for s in run.samples if s.plan is not None), None)
        console.print(f"== run {k + 1}/{args.runs}: simulated from {start.describe() if start else 'nothing'}", highlight=False)
        sim = simulate(spec, profile, rates, [args.policy], seed=k, start=start if start is not None else "cold", latencies=latencies)[args.policy]
        runs.append(
            {
                "measured": _measures(measured),
                "simulated": _measures(sim.summary),
                "measured_requests": measured.get("requests"),
                "measured_errors": measured.get("errors"),
                "measured_latency": _latency_quantiles(run),
                "cold_starts_s": _cold_starts(run),
                "start_plan": start.describe() if start else None,
                "wall_s": round(time.monotonic() - started, 1),
            }
        )
    simulated, measured_mean = _mean([r["simulated"] for r in runs]), _mean([r["measured"] for r in runs])
    errors = _errors(simulated, measured_mean)
    out = {
        "scenario": {
            "spec": str(args.file.relative_to(ROOT) if args.file.is_relative_to(ROOT) else args.file),
            "trace": described,
            "scale": round(factor, 4),
            "duration_s": args.duration,
            "mean_rps": round(float(rates.mean()), 1),
            "peak_rps": round(float(rates.max()), 1),
            "policy": args.policy,
            "profile": str(args.profile) if args.profile is not None else f"measured here at {args.sizes} sizes",
            "latencies": dataclasses.asdict(latencies),
            "load_time_s": {v.name: v.load_time_s for v in spec.variants},
        },
        "simulated": simulated,
        "measured": measured_mean,
        "spread": {"simulated": _spread([r["simulated"] for r in runs]), "measured": _spread([r["measured"] for r in runs])},
        "errors": errors,
        "targets": {
            "violations_within_0.5_points": abs(errors["violations_points"]) <= 0.5,
            "cpu_within_10pct": abs(errors["cpu_relative"]) <= 0.10,
            "p99_within_25pct": abs(errors["p99_relative"]) <= 0.25,
        },
        "runs": runs,
    }
    print(json.dumps(_clean(out), allow_nan=False))


if __name__ == "__main__":
    main()
