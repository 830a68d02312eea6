"""Faults with real processes: a tritonserver, Envoy or Prometheus killed under load.

Each test reports what the client saw (``print``: run with ``-s`` to read the fault table).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest
import requests

from infadapter.loadgen import LoadGenerator
from infadapter.serving.cpulimit import CpuCgroup
from tests.runtime.conftest import make_plan, services_group

pytestmark = pytest.mark.timeout(240)


def _services_pids(rt: Any) -> list[int]:
    group = services_group(rt)
    return CpuCgroup(group.name).pids() if group is not None else []


def _wait(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _load(rt: Any, rate_rps: float = 40.0) -> LoadGenerator:
    gen = LoadGenerator(rt.url, "resnet", slo_ms=1000, timeout_s=20)
    gen.start([rate_rps] * 600)
    time.sleep(1.5)
    return gen


def test_killed_tritonserver_is_restarted_and_traffic_moves_to_healthy_instances(runtime_factory: Any) -> None:
    rt = runtime_factory(with_prometheus=False)
    rt.apply(make_plan(resnet18=(0.5, 1, 0.5), resnet34=(0.5, 1, 0.5)))
    # each server's measured start (what benchmarks/fidelity.py checks the simulator's start-up against)
    assert _wait(lambda: len([e for e in rt.events if e.kind == "ready"]) == 2, 5.0), rt.events  # said just after routing
    starts = [e.detail for e in rt.events if e.kind == "ready"]
    assert sorted(d.split("#")[0] for d in starts) == ["resnet18", "resnet34"], rt.events
    assert all(0.0 < float(d.split(" after ")[1].removesuffix(" s")) < 120.0 for d in starts), starts
    gen = _load(rt)
    victim = next(i for i in rt.ready_instances() if i.variant == "resnet34")
    old_pid = victim.triton.pid
    killed_at = gen.elapsed_s
    os.killpg(old_pid, signal.SIGKILL)  # the server and its model stubs
    assert _wait(lambda: any(e.kind == "crash" for e in rt.events), 5.0)
    down_since = gen.elapsed_s
    assert _wait(lambda: any(e.kind == "restarted" for e in rt.events), 60.0), rt.events
    back_at = gen.elapsed_s
    time.sleep(2.0)
    gen.stop()
    report = gen.join()
    assert victim.triton.pid != old_pid and victim.triton.is_alive() and victim.routed
    assert rt.envoy.runtime_weights() == {"resnet18": 5000, "resnet34": 5000}
    outage = gen.report(down_since, back_at)
    print(
        f"\nFAULT tritonserver SIGKILL: crash seen in {down_since - killed_at:.2f}s, restarted after {back_at - killed_at:.1f}s; "
        f"client: sent {report.sent}, errors {report.errors} {report.error_kinds}; during the outage sent {outage.sent}, ok {outage.ok}"
    )
    assert outage.sent > 0 and outage.errors == 0, "requests sent while the instance was down must be served by the others"
    assert report.errors <= 5, report.error_kinds  # only requests in flight at the kill may fail


def test_killed_envoy_is_restarted_with_its_weights(runtime_factory: Any) -> None:
    rt = runtime_factory(with_prometheus=False)
    rt.apply(make_plan(resnet18=(0.5, 1, 0.8), resnet34=(0.5, 1, 0.2)))
    gen = _load(rt)
    port = rt.envoy.listen_port
    killed_at = gen.elapsed_s
    os.kill(rt.envoy.pid, signal.SIGKILL)
    assert _wait(lambda: any(e.kind == "envoy_restarted" for e in rt.events), 20.0), rt.events
    back_at = gen.elapsed_s
    time.sleep(2.0)
    gen.stop()
    report = gen.join()
    after = gen.report(back_at + 0.5, None)
    assert rt.envoy.listen_port == port
    assert rt.envoy.runtime_weights() == {"resnet18": 8000, "resnet34": 2000}
    assert not rt.use_cgroup or rt.envoy.pid in _services_pids(rt), "the restarted router runs ahead of the servers too"
    print(
        f"\nFAULT envoy SIGKILL: restarted after {back_at - killed_at:.2f}s; client: sent {report.sent}, errors {report.errors} "
        f"{report.error_kinds}; after the restart: sent {after.sent}, errors {after.errors}"
    )
    assert after.errors == 0
    # bounded: only requests in flight at the kill or arriving before the restart may fail
    assert report.errors <= 40.0 * (back_at - killed_at + 0.5), report.error_kinds


def test_killed_prometheus_is_restarted_on_the_same_address(runtime_factory: Any) -> None:
    rt = runtime_factory()
    rt.apply(make_plan(resnet18=(0.5, 1, 1.0)))
    rt.prometheus.wait_for_targets("envoy")
    url = rt.prometheus_url
    rt.prometheus.process.kill()
    assert _wait(lambda: any(e.kind == "prometheus_restarted" for e in rt.events), 30.0), rt.events
    assert rt.prometheus_url == url
    assert requests.get(f"{url}/-/ready", timeout=5).status_code == 200
    rt.prometheus.wait_for_targets("envoy")
    assert not rt.use_cgroup or rt.prometheus.process.pid in _services_pids(rt), "the restarted Prometheus runs ahead of the servers too"
    print(f"\nFAULT prometheus SIGKILL: restarted on {url}; events {[e.kind for e in rt.events]}")
