"""The real kopf operator against the emulated API server and a fake Prometheus: the user-visible lifecycle."""

from __future__ import annotations

import time

from tests.operator.checks import DEPLOYMENTS, PODS, applied, condition, owned, pod_cpu, shapes, status, weights
from tests.operator.harness import ISVC, operator, service, wait_for


def test_model_source_pvc_and_http_download(cluster, prometheus, profile_path):
    with operator(cluster, prometheus, profile_path):
        cluster.create(ISVC, service())
        wait_for(lambda: cluster.get(DEPLOYMENTS, "demo-large") and cluster.get(DEPLOYMENTS, "demo-small"))
        small = cluster.get(DEPLOYMENTS, "demo-small")["spec"]["template"]["spec"]
        large = cluster.get(DEPLOYMENTS, "demo-large")["spec"]["template"]["spec"]
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}} in small["volumes"]
    assert small["containers"][0]["volumeMounts"][0]["subPath"] == "small"
    assert large["initContainers"][0]["env"] == [{"name": "MODEL_URI", "value": "https://example.com/large.onnx"}]
    assert "/models/demo/1/model.onnx" in large["initContainers"][0]["command"][-1]


def test_prometheus_down_holds_the_last_plan_and_says_so(cluster, prometheus, profile_path):
    prometheus.loads["demo"] = 5.0
    with operator(cluster, prometheus, profile_path):
        cluster.create(ISVC, service())
        wait_for(lambda: applied(cluster), what="first plan applied")
        plan = status(cluster)["plan"]
        prometheus.__exit__()  # connection refused from now on
        wait_for(lambda: condition(cluster, "MetricsAvailable").get("status") == "False", what="MetricsAvailable=False")
        time.sleep(1.5)
        assert status(cluster)["plan"] == plan and applied(cluster)
        assert "holding the last plan" in condition(cluster, "MetricsAvailable")["message"]
        assert [e for e in cluster.events("demo") if e["reason"] == "MetricsUnavailable"]


def test_invalid_spec_past_the_schema_is_reported_by_the_operator(cluster, prometheus, profile_path):
    # quantities as strings pass the CRD's CEL rule but "3" > "1500m" only spec.parse can see
    with operator(cluster, prometheus, profile_path):
        cluster.create(ISVC, service(resources={"minCpu": "3", "maxCpu": "1500m"}))
        wait_for(lambda: condition(cluster, "Degraded").get("reason") == "InvalidSpec", what="InvalidSpec reported")
        message = condition(cluster, "Degraded")["message"]
        assert "spec.resources" in message and "minCpu" in message
        time.sleep(1.0)
        assert cluster.list(DEPLOYMENTS) == []
        events = cluster.events("demo")
        assert any("invalid InferenceService" in e["message"] for e in events), events


def test_restart_of_the_operator_causes_no_churn(cluster, prometheus, profile_path):
    prometheus.loads["demo"] = 5.0
    with operator(cluster, prometheus, profile_path):
        cluster.create(ISVC, service())
        wait_for(lambda: applied(cluster), what="applied")
        time.sleep(1.0)
    versions = shapes(owned(cluster))
    events = len(cluster.events("demo"))
    plan = status(cluster)["plan"]
    with operator(cluster, prometheus, profile_path):
        time.sleep(3.0)
    assert shapes(owned(cluster)) == versions
    assert len(cluster.events("demo")) == events
    assert status(cluster)["plan"] == plan


def test_status_is_written_only_when_it_changes(cluster, prometheus, profile_path):
    prometheus.loads["demo"] = 5.0
    with operator(cluster, prometheus, profile_path):
        cluster.create(ISVC, service())
        wait_for(lambda: applied(cluster), what="applied")
        time.sleep(1.0)
        before = cluster.emulator.counts.get(("PATCH", "inferenceservices"), 0)
        time.sleep(3.0)  # three ticks at a steady load
        assert cluster.emulator.counts.get(("PATCH", "inferenceservices"), 0) - before <= 1


def test_without_in_place_support_the_template_rolls(cluster, prometheus, profile_path):
    cluster.emulator.disable_resize()
    prometheus.loads["demo"] = 3.0
    spec = service(resources={"cpuStep": 1, "minCpu": 1, "maxCpu": 4, "maxReplicas": 1}, variants=[service()["spec"]["variants"][1]])
    with operator(cluster, prometheus, profile_path):
        cluster.create(ISVC, spec)
        wait_for(lambda: applied(cluster), what="applied")
        pods = {p["metadata"]["uid"] for p in cluster.list(PODS, **{"infadapter.io/variant": "large"})}
        prometheus.loads["demo"] = 12.0
        wait_for(lambda: pod_cpu(cluster, "demo-large") not in ([], [1.0]) and applied(cluster), what="rolled to the new size")
        assert not {p["metadata"]["uid"] for p in cluster.list(PODS, **{"infadapter.io/variant": "large"})} & pods
        limits = cluster.get(DEPLOYMENTS, "demo-large")["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits["cpu"] == f"{round(status(cluster)['plan']['variants'][0]['cpu'] * 1000)}m" != "1000m"


def test_traffic_moves_only_to_ready_variants(cluster, prometheus, profile_path):
    prometheus.loads["demo"] = 5.0
    with operator(cluster, prometheus, profile_path):
        cluster.create(ISVC, service())
        wait_for(lambda: applied(cluster), what="applied")
        serving = {n for n, w in weights(cluster).items() if w > 0}
        others = {"small", "large"} - serving
        for name in others:
            cluster.emulator.unready.add(f"demo-{name}")
        prometheus.loads["demo"] = 33.0  # needs more than one variant: the new one never gets ready
        wait_for(lambda: {v["name"] for v in status(cluster)["plan"]["variants"]} & others, what="a plan with the other variant")
        time.sleep(1.5)
        assert {n for n, w in weights(cluster).items() if w > 0} <= serving
        assert condition(cluster, "Progressing")["status"] == "True"
        assert "waiting for" in condition(cluster, "Progressing")["message"]
        cluster.emulator.unready.clear()
        for name in others:  # the controller re-runs on the next write; nudge it as a kubelet would
            cluster.patch(DEPLOYMENTS, f"demo-{name}", {"metadata": {"annotations": {"nudge": "1"}}})
        wait_for(lambda: applied(cluster), what="converged once ready")


def test_gateway_api_routing_uses_a_weighted_httproute(cluster, prometheus, profile_path):
    with operator(cluster, prometheus, profile_path):
        cluster.create(ISVC, service(routing={"kind": "GatewayAPI", "gatewayRef": "public.gateways"}))
        route = wait_for(lambda: cluster.get("gateway.networking.k8s.io/v1/httproutes", "demo"), what="an HTTPRoute")
        wait_for(lambda: condition(cluster, "Ready").get("status") == "True", what="ready")
        route = cluster.get("gateway.networking.k8s.io/v1/httproutes", "demo")
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateways"}]
    refs = route["spec"]["rules"][0]["backendRefs"]
    assert {r["name"] for r in refs} == {"demo-small", "demo-large"} and sum(r["weight"] for r in refs) == 10_000
    assert cluster.get(DEPLOYMENTS, "demo-router") is None


def test_infeasible_load_gets_a_best_effort_plan_flagged(cluster, prometheus, profile_path):
    prometheus.loads["demo"] = 500.0  # far beyond what 8 cores can serve
    with operator(cluster, prometheus, profile_path):
        cluster.create(ISVC, service())
        wait_for(lambda: condition(cluster, "PlanFeasible").get("status") == "False", what="PlanFeasible=False")
        wait_for(lambda: applied(cluster), what="the best effort applied")
        st = status(cluster)
        assert condition(cluster, "PlanFeasible")["reason"] == "Infeasible"
        assert "best effort" in condition(cluster, "PlanFeasible")["message"]
        assert 0 < st["plan"]["served_rps"] < 500 and st["costCpu"] <= 8
        assert any(e["type"] == "Warning" and e["reason"] == "PlanApplied" for e in cluster.events("demo"))


def test_the_exporter_follows_every_tick_and_forgets_deleted_services(cluster, prometheus, profile_path):
    from infadapter.operator import handlers

    prometheus.loads["demo"] = 5.0
    handlers.RUNTIMES.clear()
    with operator(cluster, prometheus, profile_path):
        runtime = wait_for(lambda: handlers.RUNTIMES[-1] if handlers.RUNTIMES else None, what="the operator's runtime")
        cluster.create(ISVC, service())
        wait_for(lambda: applied(cluster), what="applied")
        assert runtime.metrics is not None
        wait_for(lambda: 'infadapter_observed_load_rps{name="demo",namespace="default"} 5.0' in runtime.metrics.render().decode(), what="load exported")
        prometheus.loads["demo"] = 6.0  # same plan, new load: the gauge still moves
        wait_for(lambda: 'infadapter_observed_load_rps{name="demo",namespace="default"} 6.0' in runtime.metrics.render().decode(), what="load updated")
        assert 'infadapter_slo_latency_seconds{name="demo",namespace="default"} 0.5' in runtime.metrics.render().decode()
        cluster.delete(ISVC, "demo")
        wait_for(lambda: 'name="demo"' not in runtime.metrics.render().decode(), what="label sets removed")
