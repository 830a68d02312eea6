"""The embedded benchmark: one fixed ``infadapter run`` scenario, ``ours`` against two static plans.

Scenario: ``examples/demo.yaml`` on this machine (real tritonservers in cgroups, Envoy, Prometheus), the
Twitter window ``infadapter run`` uses by default (a synthetic bursty trace without ../shared/data),
scaled the same way, replayed open-loop through the router. Policies, each in a fresh runtime:

* ``ours`` (the default policy, spec's interval and forecast settings);
* static max-accuracy: the most accurate variant given the whole budget (the paper's baseline);
* static min-cost: the least accurate (cheapest) variant at the smallest size whose profiled capacity
  covers the trace's mean load.

Measured at the client (violation ratio = over-SLO + failed over sent, p99, errors) and the runtime
(average allocated cores, accuracy of the variants that served). Prints one JSON object.

    .venv/bin/python benchmarks/embedded.py [--duration 120] [--policies ours,max-accuracy,min-cost]
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402

from infadapter.cli.run import PEAK_SHARE, cached_profile, max_capacity_rps, pick_trace  # noqa: E402
from infadapter.embedded import EmbeddedRun  # noqa: E402
from infadapter.planning import cpu_grid  # noqa: E402
from infadapter.serving.profiler import spec_models  # noqa: E402
from infadapter.spec import load_resource  # noqa: E402


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # the runs' cleanup (finally) stops every child


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-f", "--file", type=Path, default=ROOT / "examples" / "demo.yaml")
    parser.add_argument("--duration", type=int, default=120, help="seconds of trace per policy")
    parser.add_argument("--policies", default="ours,max-accuracy,min-cost")
    parser.add_argument("--report", type=Path, default=None, help="write each run's report under this directory")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    console = Console(stderr=True, width=200)
    resource = load_resource(args.file)
    spec = resource.spec
    models = spec_models(spec)
    profile = cached_profile(spec, models, console)
    raw, described = pick_trace(None, None, args.duration)
    factor = PEAK_SHARE * max_capacity_rps(spec, profile) / float(np.nanmax(raw))
    rates = np.nan_to_num(raw * factor, nan=0.0)

    accurate = max(spec.variants, key=lambda v: v.accuracy).name
    cheap = min(spec.variants, key=lambda v: v.accuracy).name
    big = spec.budget.cpu
    small = next((c for c in sorted(cpu_grid(spec, cheap)) if profile.capacity_rps(cheap, c) >= rates.mean()), max(cpu_grid(spec, cheap)))
    names = {"ours": "ours", "max-accuracy": f"static:{accurate}@{big:g}", "min-cost": f"static:{cheap}@{small:g}"}

    results: dict[str, dict[str, object]] = {}
    for label in [p.strip() for p in args.policies.split(",") if p.strip()]:
        policy = names.get(label, label)
        console.print(f"== {label}: {policy}", highlight=False)
        started = time.monotonic()
        run = EmbeddedRun(
            spec,
            profile,
            models,
            rates,
            policy=policy,
            namespace=resource.metadata.namespace or "default",
            name=resource.metadata.name,
            console=console,
            live=False,
        )
        summary = run.run()
        if args.report is not None:
            run.write_report(args.report / label, summary, notes=f"{described}, x{factor:.3g}; policy {policy}")
        results[label] = {"policy": policy, **summary.to_json(), "accuracy_source": summary.accuracy_source, "wall_s": round(time.monotonic() - started, 1)}
    out: dict[str, object] = {
        "scenario": {
            "spec": str(args.file.relative_to(ROOT) if args.file.is_relative_to(ROOT) else args.file),
            "trace": described,
            "scale": round(factor, 4),
            "duration_s": args.duration,
            "mean_rps": round(float(rates.mean()), 1),
            "peak_rps": round(float(rates.max()), 1),
            "slo_ms": spec.slo.latency_ms,
            "budget_cpu": spec.budget.cpu,
        },
        "results": results,
    }
    if {"ours", "max-accuracy", "min-cost"} <= set(results):
        ours, high, low = results["ours"], results["max-accuracy"], results["min-cost"]
        out["checks"] = {
            "ours_fewer_violations_than_min_cost": float(ours["slo_violation_ratio"]) < float(low["slo_violation_ratio"]),  # type: ignore[arg-type]
            "ours_fewer_cores_than_max_accuracy": float(ours["avg_cpu"]) < float(high["avg_cpu"]),  # type: ignore[arg-type]
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
