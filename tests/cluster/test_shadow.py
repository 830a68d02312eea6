"""Shadow mode on the real control plane: the operator watches a service it did not create (its own load query, its
current configuration), creates nothing, and says what it would run instead — in the status and in events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.cluster.kube import Admin, ArrivalExporter, OperatorProcess, service_body, wait_for
from tests.cluster.test_scenarios import explain

Start = Callable[..., OperatorProcess]


def _shadow(admin: Admin, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = admin.get_service(namespace, "svc").get("status", {}).get("shadow") or {}
    return found


def test_a_shadowed_service_is_compared_not_changed(admin: Admin, exporter: ArrivalExporter, namespace: str, start_operator: Start) -> None:
    # "legacy" is some other team's service: its requests are counted under its own name, not ours
    exporter.set_rate(namespace, "legacy", 38.0)
    admin.put_profile(namespace, "svc")
    operator = start_operator()
    query = f'sum(rate(envoy_http_downstream_rq_total{{namespace="{namespace}",name="legacy"}}[5s]))'
    shadow = {"loadQuery": query, "current": [{"variant": "large", "cpu": 1, "replicas": 2}]}
    admin.create_service(namespace, service_body("svc", mode="Recommend", shadow=shadow))

    # past what "large" at 1 core x 2 serves (8 rps): the current configuration does not serve, the advice takes in "small"
    # (once the forecast has reached the load: while it ramps up, an advice as cheap as what runs is right)
    def advised() -> bool:
        status = _shadow(admin, namespace)
        return "small" in str(status.get("recommended")) and status.get("predictedLoadRps", 0.0) >= 30.0

    wait_for(advised, 150, what=explain(admin, namespace, operator))
    status = _shadow(admin, namespace)
    assert status["current"] == "large:1cx2/1.00" and status["currentCapacityRps"] == 8.0, status
    assert status["currentServesPredictedLoad"] is False and status["predictedLoadRps"] > status["currentCapacityRps"], status
    assert status["costCpuDifference"] > 0, status
    metrics = admin.condition(namespace, "svc", "MetricsAvailable") or {}
    assert metrics.get("status") == "True" and "load query" in str(metrics.get("message")), metrics
    events = admin.core.list_namespaced_event(namespace).items
    assert any(e.reason == "ShadowComparison" and "does not serve" in (e.message or "") for e in events), [(e.reason, e.message) for e in events]
    # the load falls: the same configuration now serves it, and the advice is cheaper than what runs
    exporter.set_rate(namespace, "legacy", 3.0)
    # (the forecast comes down over the policy's window: up to a minute and a half)
    wait_for(lambda: _shadow(admin, namespace).get("currentServesPredictedLoad") is True, 180, what=explain(admin, namespace, operator))
    # nothing of the shadowed service was created or changed
    assert admin.deployments(namespace, "svc") == {}
    assert admin.core.list_namespaced_config_map(namespace, label_selector="infadapter.io/service=svc").items == []
