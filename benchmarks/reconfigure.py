"""Reconfigurations under steady load in the embedded runtime: does any request get lost?

The demo spec (``examples/demo.yaml``: ResNet-18/50 at 112 px) served by the local runtime (real
tritonservers in cgroup quotas behind Envoy, no Prometheus) under a steady open-loop Poisson load
(:class:`~infadapter.loadgen.LoadGenerator`) through the router. Three phases, one after another:

* ``steady``: the first variant at ``--switch-cores``, nothing changes (``--steady-s`` seconds);
* ``switches``: ``--switches`` variant switches, alternating between the two ``--variants`` (each a new
  server started, the split moved once it is ready, the old one drained and stopped);
* ``resizes``: ``--resizes`` in-place resizes of the variant serving then (the first after an even
  number of switches), cycling through ``--sizes`` with a size equal to the one before skipped (each a
  cgroup quota write; the server's process must stay).

Plans are applied by :func:`infadapter.runtime.local.reconfigure.reconfigure` (the slow test's code),
``--gap-s`` apart. Per phase (the requests sent within it): sent, succeeded, failed (by kind), p50/p99/max
latency from the scheduled send time; per phase the reconfigurations' durations; and Envoy's own counts
over the run (answers by class, retries to another server). Prints one JSON object on stdout; progress
goes to stderr.

    .venv/bin/python benchmarks/reconfigure.py [--rate 10] [--switches 20] [--resizes 20]
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import signal
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infadapter.loadgen import LoadGenerator, LoadReport  # noqa: E402
from infadapter.planning import Plan, VariantPlan  # noqa: E402
from infadapter.runtime.local.actuator import LocalRuntime  # noqa: E402
from infadapter.runtime.local.reconfigure import Reconfiguration, reconfigure  # noqa: E402
from infadapter.serving.profiler import spec_models  # noqa: E402
from infadapter.spec import load_spec  # noqa: E402


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # the runtime's cleanup (finally) stops every child


def progress(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def plan_of(variant: str, cores: float) -> Plan:
    return Plan((VariantPlan(variant, cores, 1, weight=1.0),))


def resize_plans(variant: str, sizes: list[float], from_cores: float, count: int) -> list[Plan]:
    """``count`` plans cycling through ``sizes``, each another size than the one before it (a real resize)."""
    if not any(abs(size - from_cores) > 1e-9 for size in sizes) or (count > 1 and len(set(sizes)) < 2):
        raise SystemExit(f"--sizes {sizes}: give at least two sizes, one of them other than {from_cores:g}")
    plans: list[Plan] = []
    current, cycle = from_cores, itertools.cycle(sizes)
    while len(plans) < count:
        size = next(cycle)
        if abs(size - current) > 1e-9:
            plans.append(plan_of(variant, size))
            current = size
    return plans


def router_counts(admin_url: str) -> dict[str, int]:
    """Envoy's own counts: requests it answered by class, and retries (a reset or refused connection to a
    server that was leaving is retried on another; a loss the client never sees is counted here)."""
    import requests

    text = requests.get(f"{admin_url}/stats", params={"filter": r"downstream_rq_(total|2xx|4xx|5xx|timeout)$|upstream_rq_retry(_success)?$"}, timeout=5.0).text
    counts: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if name.startswith("http.ingress.downstream_rq_"):
            key = name.removeprefix("http.ingress.")
        elif name.startswith("cluster.") and ".upstream_rq_retry" in name:
            key = name[name.index(".upstream_rq_retry") + 1 :]
        else:
            continue
        if value.strip().isdigit():
            counts[key] = counts.get(key, 0) + int(value)
    return counts


def phase(report: LoadReport, steps: list[Reconfiguration]) -> dict[str, Any]:
    """One phase's figures: its requests (by send time) and its reconfigurations."""
    applied = [s.ended_s - s.began_s for s in steps]
    return {
        "sent": report.sent,
        "succeeded": report.ok,
        "failed": report.errors,
        "error_kinds": report.error_kinds,
        "p50_ms": round(report.p50_ms, 1),
        "p99_ms": round(report.p99_ms, 1),
        "max_ms": round(report.max_ms, 1),
        "reconfigurations": len(steps),
        "changed": sum(1 for s in steps if s.changes.changed),
        "started": sum(len(s.changes.started) for s in steps),
        "resized_in_place": sum(len(s.changes.resized) for s in steps),
        "restarted_by_a_resize": sum(len(s.restarted) for s in steps),
        "apply_median_s": round(statistics.median(applied), 2) if applied else None,
        "apply_max_s": round(max(applied), 2) if applied else None,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    spec = load_spec(args.file)
    first, second = args.variants.split(",")
    sizes = [float(x) for x in args.sizes.split(",")]
    models = spec_models(spec)
    switches = [plan_of(second if k % 2 == 0 else first, args.switch_cores) for k in range(args.switches)]
    resized_variant = switches[-1].variants[0].name if switches else first  # the one serving after the switches
    resizes = resize_plans(resized_variant, sizes, args.switch_cores, args.resizes)
    load_before = os.getloadavg()
    with LocalRuntime(spec, models, with_prometheus=False) as runtime:
        progress(f"starting {first} at {args.switch_cores:g} cores")
        runtime.apply(plan_of(first, args.switch_cores), timeout_s=180)
        gen = LoadGenerator(runtime.url, spec.model_name, slo_ms=spec.slo.latency_ms, timeout_s=args.timeout_s)
        gen.start([args.rate] * 24 * 3600)

        def clock() -> float:  # the load generator's: a phase is a window of its send times
            return gen.elapsed_s

        while gen.started_monotonic is None:
            time.sleep(0.05)
        progress(f"load: {args.rate:g} rps through {runtime.url}; steady for {args.steady_s:g} s")
        time.sleep(args.steady_s)
        t_switch = clock()
        progress(f"{len(switches)} variant switches {first} <-> {second}")
        switched = reconfigure(runtime, switches, gap_s=args.gap_s, clock=clock, timeout_s=180)
        t_resize = clock()
        progress(f"{len(resizes)} in-place resizes of {resized_variant} through {sizes}")
        resized = reconfigure(runtime, resizes, gap_s=args.gap_s, clock=clock)
        gen.stop()
        t_end = clock()
        total = gen.join()
        router = router_counts(runtime.envoy.admin_url)
    progress("done")
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["benchmarks/reconfigure.py", *sys.argv[1:]]),
        "spec": str(args.file),
        "cores": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "rate_rps": args.rate,
        "slo_ms": spec.slo.latency_ms,
        "client_timeout_s": args.timeout_s,
        "phases": {
            "steady": phase(gen.report(0.0, t_switch), []),
            "switches": phase(gen.report(t_switch, t_resize), switched),
            "resizes": phase(gen.report(t_resize, t_end), resized),
        },
        "total": {"sent": total.sent, "succeeded": total.ok, "failed": total.errors, "seconds": round(t_end, 1)},
        "router": router,  # Envoy's counters over the whole run (the load generator's metadata request included)
    }


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-f", "--file", type=Path, default=ROOT / "examples" / "demo.yaml")
    parser.add_argument("--rate", type=float, default=10.0, help="requests/s, open loop (Poisson)")
    parser.add_argument("--switches", type=int, default=20)
    parser.add_argument("--resizes", type=int, default=20)
    parser.add_argument("--variants", default="resnet50,resnet18", help="FIRST,SECOND: switches alternate; FIRST is resized")
    parser.add_argument("--switch-cores", type=float, default=1.0, help="cores of either variant during the switches")
    parser.add_argument("--sizes", default="0.5,1.5,0.75,1.25,1", help="cores the resizes cycle through")
    parser.add_argument("--gap-s", type=float, default=1.0, help="seconds between reconfigurations")
    parser.add_argument("--steady-s", type=float, default=10.0)
    parser.add_argument("--timeout-s", type=float, default=10.0, help="a request not answered by then is failed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    print(json.dumps(run(args)))


if __name__ == "__main__":
    main()
