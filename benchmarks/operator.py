"""Operator at scale: N InferenceServices on the API emulator. Prints one JSON object.

    .venv/bin/python benchmarks/operator.py [--services 100] [--steady-s 30] [--interval-s 5]

The emulator and the fake Prometheus run in a child process, so the operator's process (this one,
running the real kopf operator through KopfRunner) is measured alone: time until every resource
reports Ready=True, tick latency (observe → decide → act → report, p50/p99 from the operator's own
timings), API requests, and the resident memory over a steady period (bounded = no growth).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serve(queue: Any, stop: Any, loads: dict[str, float]) -> None:
    """Child process: the emulated cluster and the fake Prometheus."""
    from tests.operator.harness import Cluster, FakePrometheus

    with Cluster(ready_delay_s=0.2) as cluster, FakePrometheus() as prometheus:
        prometheus.loads.update(loads)
        queue.put((cluster.url, prometheus.url))
        stop.wait()
        queue.put({"requests": sum(cluster.emulator.counts.values()), "by_verb": {f"{m} {p}": n for (m, p), n in sorted(cluster.emulator.counts.items())}})


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--steady-s", type=float, default=30.0)
    parser.add_argument("--interval-s", type=float, default=5.0)
    parser.add_argument("--timeout-s", type=float, default=240.0)
    args = parser.parse_args()

    names = [f"svc-{i:03d}" for i in range(args.services)]
    loads = {name: 2.0 + (i % 10) * 2.5 for i, name in enumerate(names)}
    ctx = multiprocessing.get_context("spawn")
    queue, stop = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=serve, args=(queue, stop, loads), daemon=True)
    child.start()
    kube_url, prom_url = queue.get(timeout=60)

    from infadapter.operator import handlers
    from tests.operator.harness import PROFILE, service, write_profile

    _ = PROFILE
    profile = write_profile(Path(tempfile.mkdtemp(prefix="infadapter-bench-")))
    os.environ.update(
        INFADAPTER_KUBE_SERVER=kube_url,
        INFADAPTER_PROMETHEUS_URL=prom_url,
        INFADAPTER_DEFAULT_PROFILE=str(profile),
        INFADAPTER_PROMETHEUS_TIMEOUT_S="5",
    )
    import logging

    from kopf.testing import KopfRunner

    logging.getLogger().setLevel(logging.WARNING)
    baseline_mib = rss_mib()
    session = requests.Session()
    result: dict[str, Any] = {"services": args.services, "interval_s": args.interval_s, "baseline_rss_mib": round(baseline_mib, 1)}
    with KopfRunner(["run", "-A", "--standalone", "--quiet", "-m", "infadapter.operator.handlers"], timeout=60):
        started = time.monotonic()
        for name in names:
            body = service(name, adaptation={"intervalSeconds": args.interval_s, "scaleDownStabilizationSeconds": 0})
            session.post(f"{kube_url}/apis/infadapter.io/v1alpha1/namespaces/default/inferenceservices", json=body, timeout=30).raise_for_status()
        created_s = time.monotonic() - started
        ready_at: dict[str, float] = {}
        while len(ready_at) < len(names) and time.monotonic() - started < args.timeout_s:
            items = session.get(f"{kube_url}/apis/infadapter.io/v1alpha1/inferenceservices", timeout=30).json()["items"]
            now = time.monotonic() - started
            for item in items:
                conditions = item.get("status", {}).get("conditions", [])
                if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                    ready_at.setdefault(item["metadata"]["name"], now)
            time.sleep(0.5)
        result.update(
            create_all_s=round(created_s, 2),
            ready=len(ready_at),
            time_to_all_ready_s=round(max(ready_at.values()), 2) if len(ready_at) == len(names) else None,
            time_to_ready_p50_s=round(statistics.median(ready_at.values()), 2) if ready_at else None,
            rss_at_ready_mib=round(rss_mib(), 1),
        )
        samples = []
        steady_start = time.monotonic()
        ticks_before = len(handlers.RUNTIMES[0].tick_seconds) if handlers.RUNTIMES else 0
        while time.monotonic() - steady_start < args.steady_s:
            time.sleep(2.0)
            samples.append(round(rss_mib(), 1))
        runtime = handlers.RUNTIMES[0]
        ticks = list(runtime.tick_seconds)
        steady = ticks[ticks_before:]
        result.update(
            ticks=len(ticks),
            ticks_per_s_steady=round(len(steady) / args.steady_s, 1),
            tick_p50_ms=round(percentile(ticks, 0.5) * 1000, 1),
            tick_p99_ms=round(percentile(ticks, 0.99) * 1000, 1),
            tick_max_ms=round(max(ticks) * 1000, 1) if ticks else None,
            steady_tick_p50_ms=round(percentile(steady, 0.5) * 1000, 1),
            steady_tick_p99_ms=round(percentile(steady, 0.99) * 1000, 1),
            step_p50_ms={k: round(percentile(v, 0.5) * 1000, 1) for k, v in runtime.step_seconds.items()},
            step_p99_ms={k: round(percentile(v, 0.99) * 1000, 1) for k, v in runtime.step_seconds.items()},
            rss_steady_mib={"first": samples[0], "last": samples[-1], "max": max(samples)} if samples else None,
            rss_growth_steady_mib=round(samples[-1] - samples[0], 1) if samples else None,
            rss_every_10s_mib=samples[::5],
            api_calls_by_operator=runtime.api.calls,
            api_retries=runtime.api.retried,
        )
    stop.set()
    result["emulator"] = queue.get(timeout=30)
    child.join(10)
    print(json.dumps(result, indent=1))
    return 0 if result["ready"] == args.services else 1


if __name__ == "__main__":
    sys.exit(main())
