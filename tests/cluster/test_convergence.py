"""Convergence and the load signal, measured: no writes at steady state; history at the chart's scrape interval."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import yaml

from infadapter.metrics.prometheus import Observer
from infadapter.operator.settings import OperatorConfig
from infadapter.runtime.local.prometheus import PrometheusProcess, ScrapeJob, find_prometheus
from tests.cluster.controlplane import WRITE_VERBS, ControlPlane, count_requests
from tests.cluster.kube import CHART, Admin, ArrivalExporter, OperatorProcess, service_body, wait_for
from tests.cluster.test_scenarios import converged, explain, plan_of

Start = Callable[..., OperatorProcess]


def test_at_steady_state_the_operator_makes_no_writes_and_few_reads(
    control_plane: ControlPlane, admin: Admin, exporter: ArrivalExporter, namespace: str, start_operator: Start
) -> None:
    exporter.set_rate(namespace, "svc", 5.0)
    admin.put_profile(namespace, "svc")
    operator = start_operator()
    admin.create_service(namespace, service_body("svc"))
    wait_for(lambda: converged(admin, namespace) and "large" in plan_of(admin, namespace), 90, what=explain(admin, namespace, operator))
    time.sleep(3)  # let the last status write of the convergence land before counting
    mark, started = control_plane.audit_mark(), time.monotonic()
    time.sleep(12)  # six intervals of 2 s: a real apiserver runs on real time
    window = time.monotonic() - started
    events = control_plane.audit_since(mark, operator.user)
    counts = count_requests(events)
    reads = {key: n for key, n in counts.items() if key[1] not in WRITE_VERBS}
    writes = {key: n for key, n in counts.items() if key[1] in WRITE_VERBS}
    # something ran: the ticks read the service's objects every interval ...
    assert reads.get(("deployments", "list"), 0) >= 4, counts
    # ... and wrote nothing: every object already holds what the plan wants, as the apiserver stores it
    assert writes == {}, [(e.get("requestURI"), e.get("requestObject")) for e in events if e.get("verb") in WRITE_VERBS]
    ticks = reads[("deployments", "list")]
    per_tick = sum(reads.values()) / ticks
    # at the default 30 s interval this is <= 0.2 requests/s per InferenceService
    assert per_tick <= 6, (per_tick, counts)
    assert ticks <= window / 2 + 2, (ticks, window)


@pytest.fixture
def slow_prometheus(exporter: ArrivalExporter) -> Iterator[PrometheusProcess]:
    """A real Prometheus scraping at the chart's PodMonitor interval (values.yaml: podMonitor.interval)."""
    if find_prometheus() is None:
        pytest.skip("prometheus is not installed (scripts/setup.sh installs Debian's)")
    interval = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))["podMonitor"]["interval"]
    seconds = OperatorConfig.from_env({"INFADAPTER_SCRAPE_INTERVAL_S": interval}).scrape_interval_s
    with PrometheusProcess(jobs=(ScrapeJob("router", honor_labels=True),), scrape_interval_s=seconds, die_with_parent=False) as prom:
        prom.set_targets("router", "exporter", [exporter.address], {})
        prom.wait_for_targets("router")
        yield prom


def test_the_history_has_data_at_the_charts_scrape_interval(exporter: ArrivalExporter, slow_prometheus: PrometheusProcess) -> None:
    interval = slow_prometheus.scrape_interval_s
    assert interval == 5.0  # what the chart ships; the operator is told it through INFADAPTER_SCRAPE_INTERVAL_S
    exporter.set_rate("signal", "svc", 20.0)
    started = time.time()
    time.sleep(45)  # enough scrapes at 5 s for a 30 s history window
    observer = Observer(slow_prometheus.url, scrape_interval_s=interval)
    try:
        end = time.time()
        history = observer.arrival_history_rps("signal", "svc", end - 30, end)
        known = history[~np.isnan(history)]
        assert known.size >= 0.9 * history.size, history
        assert np.allclose(known, 20.0, atol=2.0), known
        # the old fixed 5 s irate window sees at most one scrape at a 5 s interval: no signal at all
        old = observer.arrival_history_rps("signal", "svc", end - 30, end, lookback_s=5)
        assert np.isnan(old).mean() > 0.5, old
    finally:
        observer.close()
    assert not math.isnan(started)


def test_the_operators_listings_leave_out_managed_fields(control_plane: ControlPlane, admin: Admin, namespace: str) -> None:
    """What the operator keeps between steps (one listing per kind per service) holds no ``managedFields``."""
    import asyncio

    from infadapter.runtime.kube.client import Connection, KubeApi, api_path
    from tests.cluster.controlplane import ADMIN_TOKEN

    admin.core.create_namespaced_config_map(namespace, {"metadata": {"name": "listed", "labels": {"k": "v"}}, "data": {"a": "b"}})
    stored = admin.core.list_namespaced_config_map(namespace, label_selector="k=v").items
    assert stored and stored[0].metadata.managed_fields, "the apiserver records managedFields (the test would prove nothing)"
    api = KubeApi(Connection(server=control_plane.server, token=ADMIN_TOKEN, ca_path=str(control_plane.ca_file)), retries=0)

    async def listed() -> list[dict[str, Any]]:
        try:
            return await api.list(api_path("v1", "configmaps", namespace), label_selector="k=v")
        finally:
            await api.close()

    items = asyncio.run(listed())
    assert [i["metadata"]["name"] for i in items] == ["listed"]
    assert "managedFields" not in items[0]["metadata"]
