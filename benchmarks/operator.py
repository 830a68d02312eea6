"""The operator at scale on a real control plane (tests/cluster): N InferenceServices. Prints one JSON object.

    .venv/bin/python benchmarks/operator.py [--services 100] [--steady-s 60] [--interval-s 30]
    .venv/bin/python benchmarks/operator.py --baseline --services 1000   # the control plane alone, for comparison

etcd, kube-apiserver, controller-manager, scheduler and kwok (scripts/build-control-plane.sh) run on loopback,
a real Prometheus scrapes a router-shaped exporter (5 rps per service), and the operator runs as its own
process with the chart's ServiceAccount. Measured: time until every InferenceService reports Ready=True,
the operator's API requests per second per InferenceService at steady state (reads and writes, from the
apiserver's audit log), and the operator's resident memory (VmRSS, sampled; peak and end).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ready_count(admin: Any, namespaces: list[str]) -> int:
    ready = 0
    for namespace in namespaces:
        listed = admin.custom.list_namespaced_custom_object("infadapter.io", "v1alpha1", namespace, "inferenceservices")
        for item in listed["items"]:
            conditions = item.get("status", {}).get("conditions", [])
            ready += any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return ready


def status_patches(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The status each status patch of the audit log wrote."""
    out = []
    for event in events:
        body = event.get("requestObject") or {}
        if (event.get("objectRef") or {}).get("subresource") == "status" and isinstance(body, dict):
            out.append(body.get("status") or {})
    return out


def status_fields(events: list[dict[str, Any]]) -> dict[str, int]:
    """What the steady-state status patches changed: top-level status keys, conditions by type."""
    names = [
        name
        for status in status_patches(events)
        for key, value in status.items()
        for name in ([f"conditions.{c.get('type')}" for c in value] if key == "conditions" and isinstance(value, list) else [key])
    ]
    return dict(sorted(collections.Counter(names).items()))


def condition_states(events: list[dict[str, Any]]) -> dict[str, int]:
    """What the steady-state status patches said: how often each (condition, status, reason) was written."""
    said = [f"{c.get('type')}={c.get('status')}/{c.get('reason')}" for status in status_patches(events) for c in status.get("conditions") or []]
    return dict(sorted(collections.Counter(said).items()))


def create_services(admin: Any, exporter: Any, count: int, interval_s: float) -> list[str]:
    from tests.cluster.kube import service_body

    namespaces = [admin.namespace("bench") for _ in range(max(1, count // 100))]

    def one(i: int) -> None:
        namespace = namespaces[i % len(namespaces)]
        name = f"svc-{i}"
        exporter.set_rate(namespace, name, 5.0)
        admin.put_profile(namespace, name)
        spec = service_body(name)["spec"] | {"adaptation": {"intervalSeconds": interval_s, "scaleDownStabilizationSeconds": 0}}
        admin.create_service(namespace, {**service_body(name), "spec": spec})

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))
    return namespaces


def run(args: argparse.Namespace) -> dict[str, Any]:
    from infadapter.runtime.local.prometheus import PrometheusProcess, ScrapeJob
    from tests.cluster.controlplane import WRITE_VERBS, count_requests, running_control_plane
    from tests.cluster.kube import CHART, RELEASE, RELEASE_NAMESPACE, Admin, ArrivalExporter, OperatorProcess, chart_values, helm_config

    work = Path(tempfile.mkdtemp(prefix="infadapter-bench-"))
    exporter = ArrivalExporter()
    with running_control_plane(work / "cp") as plane, contextlib.ExitStack() as stack:
        admin = Admin(plane)
        admin.create_fake_nodes(count=max(3, args.services // 100), cpu="1000", memory="4Ti", gpus=0)
        config = helm_config(plane)
        config.install(str(CHART), RELEASE, chart_values(), namespace=RELEASE_NAMESPACE, create_namespace=True, timeout=120)
        prom = stack.enter_context(PrometheusProcess(jobs=(ScrapeJob("router", honor_labels=True),), scrape_interval_s=5.0, die_with_parent=False))
        prom.set_targets("router", "exporter", [exporter.address], {})
        operator = OperatorProcess(plane, admin, prom.url, work, INFADAPTER_TIMER_RESOLUTION_S="1", INFADAPTER_SCRAPE_INTERVAL_S="5s").start()
        stack.callback(operator.stop)
        assert operator.process is not None
        started = time.monotonic()
        namespaces = create_services(admin, exporter, args.services, args.interval_s)
        created_s = time.monotonic() - started
        rss: list[float] = []
        ready = 0
        while time.monotonic() - started < args.timeout_s:
            ready = ready_count(admin, namespaces)
            rss.append(rss_mib(operator.process.pid))
            if ready == args.services:
                break
            time.sleep(1.0)
        all_ready_s = time.monotonic() - started if ready == args.services else None
        # steady state: the policy has seen its history window fill and stopped changing plans (three intervals)
        time.sleep(args.settle_s if args.settle_s is not None else 3 * args.interval_s)
        mark, steady_started = plane.audit_mark(), time.monotonic()
        while time.monotonic() - steady_started < args.steady_s:
            rss.append(rss_mib(operator.process.pid))
            time.sleep(2.0)
        window = time.monotonic() - steady_started
        events = plane.audit_since(mark, operator.user)
        counts = count_requests(events)
    exporter.close()
    reads = sum(n for (_, verb), n in counts.items() if verb not in WRITE_VERBS)
    writes = sum(n for (_, verb), n in counts.items() if verb in WRITE_VERBS)
    per_service = lambda n: round(n / window / args.services, 4)  # noqa: E731
    return {
        "services": args.services,
        "interval_s": args.interval_s,
        "created_s": round(created_s, 1),
        "all_ready_s": round(all_ready_s, 1) if all_ready_s is not None else None,
        "ready": ready,
        "steady_window_s": round(window, 1),
        "steady_reads_per_s_per_service": per_service(reads),
        "steady_writes_per_s_per_service": per_service(writes),
        "steady_requests_by_resource_verb": {f"{r} {v}": round(n / window, 3) for (r, v), n in sorted(counts.items())},
        "steady_status_patches_by_field": status_fields(events),
        "steady_conditions_written": condition_states(events),
        "operator_rss_mib_peak": round(max(rss), 1) if rss else None,
        "operator_rss_mib_end": round(rss[-1], 1) if rss else None,
    }


def first_objects(namespace: str, name: str) -> list[dict[str, Any]]:
    """What the operator creates for a new service (its plan for no load), without the owner reference (no custom
    resource owns them here: the garbage collector would delete them)."""
    from infadapter.planning import plan_for_load
    from infadapter.profiles import profile_from_dict
    from infadapter.runtime.kube.desired import desired_objects
    from infadapter.runtime.kube.objects import Images, Owner
    from infadapter.spec import parse_spec
    from tests.cluster.kube import PROFILE, service_body

    spec = parse_spec(service_body(name)["spec"])
    plan = plan_for_load(spec, profile_from_dict(PROFILE, "profile"), 0.0)
    sizes = {v.name: (plan.variant(v.name).cpu_cores, 0, plan.variant(v.name).replicas) if plan.variant(v.name) else (1.0, 0, 0) for v in spec.variants}
    weights = {v.name: (10_000 if plan.variant(v.name) else 0) for v in spec.variants}
    objects = desired_objects(Owner(name, namespace, "0"), spec, sizes, weights, Images(), disruption_budget=True)
    for obj in objects:
        obj["metadata"].pop("ownerReferences", None)
    return objects


def run_baseline(args: argparse.Namespace) -> dict[str, Any]:
    """The control plane alone: the same objects for N services created directly (8 threads, as the benchmark
    creates its services), timed until every Deployment that asks for replicas has them all ready."""
    from kubernetes import utils

    from tests.cluster.controlplane import running_control_plane
    from tests.cluster.kube import Admin

    work = Path(tempfile.mkdtemp(prefix="infadapter-bench-"))
    with running_control_plane(work / "cp") as plane:
        admin = Admin(plane)
        admin.create_fake_nodes(count=max(3, args.services // 100), cpu="1000", memory="4Ti", gpus=0)
        namespaces = [admin.namespace("base") for _ in range(max(1, args.services // 100))]
        started = time.monotonic()

        def one(i: int) -> None:
            namespace = namespaces[i % len(namespaces)]
            for obj in first_objects(namespace, f"svc-{i}"):
                utils.create_from_dict(admin.api, obj, namespace=namespace)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(args.services)))
        created_s = time.monotonic() - started
        ready_s = None
        while time.monotonic() - started < args.timeout_s:
            if all(_deployments_ready(admin, n) for n in namespaces):
                ready_s = time.monotonic() - started
                break
            time.sleep(1.0)
    return {
        "services": args.services,
        "baseline": "control plane alone",
        "created_s": round(created_s, 1),
        "all_ready_s": round(ready_s, 1) if ready_s else None,
    }


def _deployments_ready(admin: Any, namespace: str) -> bool:
    items = admin.apps.list_namespaced_deployment(namespace).items
    return all((d.status.ready_replicas or 0) >= (d.spec.replicas or 0) for d in items)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--steady-s", type=float, default=60.0)
    parser.add_argument("--interval-s", type=float, default=30.0)
    parser.add_argument("--timeout-s", type=float, default=600.0)
    parser.add_argument("--settle-s", type=float, default=None, help="wait after all Ready before measuring (default: 3 intervals)")
    parser.add_argument("--baseline", action="store_true", help="no operator: the same objects created directly, timed until ready")
    args = parser.parse_args()
    print(json.dumps(run_baseline(args) if args.baseline else run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
