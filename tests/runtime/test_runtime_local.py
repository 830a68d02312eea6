"""The local runtime with real tritonservers, Envoy and Prometheus: the actuator's report, weights, quotas,
make-before-break, cleanup."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from infadapter.control import Action, VariantTarget
from infadapter.loadgen import LoadGenerator
from infadapter.serving.cpulimit import SERVICE_SHARES, CpuCgroup
from tests.runtime.conftest import alive, closed_loop_rps, make_plan, served_count, services_group

pytestmark = pytest.mark.timeout(240)


def test_execute_returns_at_once_and_the_state_shows_the_server_once_it_serves(runtime_factory: Any) -> None:
    rt = runtime_factory(with_prometheus=False)
    began = time.monotonic()
    changes = rt.execute(Action((VariantTarget("resnet18", 0.5, 1),), {"resnet18": 1.0}))
    assert time.monotonic() - began < 2.0 and len(changes.started) == 1, "servers start in the background"
    (starting,) = rt.state().variants
    assert (starting.name, starting.cpu_cores, starting.replicas, starting.ready_cores) == ("resnet18", 0.5, 1, ())
    deadline = time.monotonic() + 60
    while not rt.state().variants[0].ready_cores and time.monotonic() < deadline:
        time.sleep(0.1)
    state = rt.state()
    assert state.variants[0].ready_cores == (0.5,) and state.weights == {"resnet18": 1.0}
    assert state.in_place == rt.use_cgroup
    again = rt.execute(Action((VariantTarget("resnet18", 0.5, 1),), {"resnet18": 1.0}))
    assert not again.changed, "the same action twice starts nothing"


def test_requests_split_by_planned_weights_within_five_percent(runtime_factory: Any) -> None:
    rt = runtime_factory(with_prometheus=False)
    rt.apply(make_plan(resnet18=(0.5, 1, 0.6), resnet34=(0.5, 1, 0.4)))
    before = {i.variant: served_count(i.triton.metrics_url) for i in rt.ready_instances()}
    _, errors = closed_loop_rps(rt.url, seconds=4.0, threads=4)
    after = {i.variant: served_count(i.triton.metrics_url) for i in rt.ready_instances()}
    served = {v: after[v] - before[v] for v in after}
    total = sum(served.values())
    assert errors == 0
    assert total >= 200, f"too few requests to judge a split: {served}"
    # Envoy picks a weighted cluster at random per request: the share is binomial, so the bound is 5 points or
    # 4 standard deviations of that noise, whichever is wider (a 3-sigma miss at ~800 requests failed once)
    bound = max(0.05, 4.0 * math.sqrt(0.6 * 0.4 / total))
    assert abs(served["resnet18"] / total - 0.6) <= bound, served
    assert abs(served["resnet34"] / total - 0.4) <= bound, served


def test_raising_a_cpu_quota_raises_throughput_in_place(runtime_factory: Any) -> None:
    rt = runtime_factory(with_prometheus=False)
    if not rt.use_cgroup:
        pytest.skip("cgroup v1 cpu controller not writable: quotas cannot be resized in place")
    rt.apply(make_plan(resnet34=(0.25, 1, 1.0)))
    (inst,) = rt.ready_instances()
    pid = inst.triton.pid
    slow_rps, _ = closed_loop_rps(inst.triton.url, seconds=3.0)
    result = rt.apply(make_plan(resnet34=(1.0, 1, 1.0)))
    assert result.resized and not result.started and not result.removed
    fast_rps, _ = closed_loop_rps(inst.triton.url, seconds=3.0)
    assert inst.triton.pid == pid and inst.triton.is_alive(), "an in-place resize must not restart the server"
    assert inst.cgroup is not None and inst.cgroup.cores == pytest.approx(1.0)
    assert fast_rps > 1.8 * slow_rps, (slow_rps, fast_rps)


PLANS = [
    make_plan(resnet18=(0.5, 1, 0.5), resnet34=(0.5, 1, 0.5)),
    make_plan(resnet18=(0.75, 1, 0.7), resnet34=(0.25, 1, 0.3)),  # in place
    make_plan(resnet18=(0.5, 2, 1.0)),  # variant removed, a replica added
    make_plan(resnet18=(0.5, 1, 0.6), resnet34=(0.5, 1, 0.4)),  # replica removed, variant added
    make_plan(resnet34=(1.0, 1, 1.0)),  # variant swap
    make_plan(resnet18=(0.25, 1, 0.2), resnet34=(0.75, 1, 0.8)),
]


def _reconfigure_under_load(rt: Any, count: int, rate_rps: float = 40.0, gap_s: float = 0.5) -> tuple[Any, list[Any]]:
    from infadapter.runtime.local.reconfigure import reconfigure

    rt.apply(PLANS[0])
    gen = LoadGenerator(rt.url, "resnet", slo_ms=1000, timeout_s=20)
    gen.start([rate_rps] * 600)
    time.sleep(1.0)  # the load runs before the first change
    results = reconfigure(rt, [PLANS[1 + k % (len(PLANS) - 1)] for k in range(count)], gap_s=gap_s)
    gen.stop()
    assert not [r.restarted for r in results if r.restarted], "an in-place resize must keep the server's process"
    return gen.join(), [r.changes for r in results]


def test_five_reconfigurations_under_steady_load_lose_no_request(runtime_factory: Any) -> None:
    rt = runtime_factory(with_prometheus=False)
    report, results = _reconfigure_under_load(rt, 6)
    assert sum(1 for r in results if r.changed) >= 5
    assert any(r.resized for r in results) and any(r.started for r in results) and any(r.removed for r in results)
    assert report.sent > 100
    assert report.errors == 0, report.error_kinds


@pytest.mark.slow
def test_twenty_reconfigurations_under_steady_load_lose_no_request(runtime_factory: Any) -> None:
    rt = runtime_factory(with_prometheus=False)
    report, results = _reconfigure_under_load(rt, 20, gap_s=0.3)
    assert sum(1 for r in results if r.changed) >= 20
    assert report.errors == 0, report.error_kinds


def test_stop_leaves_no_process_and_no_cgroup(runtime_factory: Any) -> None:
    rt = runtime_factory()
    rt.apply(make_plan(resnet18=(0.5, 2, 0.5), resnet34=(0.5, 1, 0.5)))
    rt.prometheus.wait_for_targets("triton", count=3)
    pids = rt.child_pids()
    stubs = [p for i in rt.ready_instances() for p in _group(i.triton.pid)]
    assert len(pids) == 5
    groups = rt.servers.cgroups()
    assert len(groups) == 4, groups  # three servers' and the services'
    services = services_group(rt)
    assert services is not None and sorted(CpuCgroup(services.name).pids()) == sorted([rt.envoy.pid, rt.prometheus.process.pid]), "router and Prometheus"
    assert int((services / "cpu.shares").read_text()) == SERVICE_SHARES
    work_dir = rt.work_dir
    rt.stop()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(p) for p in pids + stubs):
        time.sleep(0.1)
    assert not [p for p in pids + stubs if alive(p)]
    assert rt.servers.cgroups() == []
    assert not Path(work_dir).exists()


def _group(pgid: int | None) -> list[int]:
    import os

    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def test_prometheus_scrapes_router_and_every_server(runtime_factory: Any) -> None:
    rt = runtime_factory()
    rt.apply(make_plan(resnet18=(0.5, 1, 0.5), resnet34=(0.5, 1, 0.5)))
    rt.prometheus.wait_for_targets("triton", count=2)
    rt.prometheus.wait_for_targets("envoy", count=1)
    closed_loop_rps(rt.url, seconds=2.0, threads=2)
    deadline = time.monotonic() + 10
    variants: set[str] = set()
    while time.monotonic() < deadline and variants != {"resnet18", "resnet34"}:
        query = 'sum by (variant) (envoy_cluster_upstream_rq_total{namespace="default",name="resnet"})'
        r = requests.get(f"{rt.prometheus_url}/api/v1/query", params={"query": query}, timeout=5)
        variants = {s["metric"].get("variant") for s in r.json()["data"]["result"] if float(s["value"][1]) > 0}
        time.sleep(0.5)
    assert variants == {"resnet18", "resnet34"}


class _FakeRuntime:
    """Applies plans by changing pids as told: a stand-in for LocalRuntime in :func:`reconfigure`."""

    def __init__(self) -> None:
        self.pid = 100
        self.retired = False

    def ready_instances(self) -> list[Any]:
        from types import SimpleNamespace

        return [SimpleNamespace(key="resnet18#0.1", triton=SimpleNamespace(pid=self.pid))]

    def apply(self, plan: Any, timeout_s: float) -> Any:
        from infadapter.runtime.local.servers import LocalChanges

        if plan.variants[0].cpu_cores == 1.0:  # this "resize" restarts the server: what the check must catch
            self.pid += 1
        return LocalChanges(0.5, resized=("resnet18#0.1",))

    def wait_retired(self) -> None:
        self.retired = True


def test_reconfigure_records_each_plan_on_the_callers_clock_and_catches_a_resize_that_restarted() -> None:
    from infadapter.runtime.local.reconfigure import reconfigure

    ticks = iter(range(100))
    waited: list[float] = []
    rt = _FakeRuntime()
    plans = [make_plan(resnet18=(0.5, 1, 1.0)), make_plan(resnet18=(1.0, 1, 1.0)), make_plan(resnet18=(0.75, 1, 1.0))]
    done = reconfigure(rt, plans, gap_s=0.3, clock=lambda: float(next(ticks)), wait=waited.append)  # type: ignore[arg-type]
    assert [(r.began_s, r.ended_s) for r in done] == [(0.0, 1.0), (2.0, 3.0), (4.0, 5.0)]
    assert [r.restarted for r in done] == [(), ("resnet18#0.1",), ()]
    assert [r.plan for r in done] == plans and waited == [0.3, 0.3, 0.3] and rt.retired
