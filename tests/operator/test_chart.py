"""The Helm chart: lint, render with every toggle, validate every object, least-privilege RBAC, hardening."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.operator.crdschema import CrdValidator

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "manifests" / "chart"
K8S_VERSION = "1.33"  # in-place pod resize (pods/resize) is beta and on by default from 1.33

_spec = importlib.util.spec_from_file_location("render_manifests", ROOT / "scripts" / "render-manifests.py")
assert _spec is not None and _spec.loader is not None
render_manifests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render_manifests)

ALL_TOGGLES: dict[str, Any] = {
    **render_manifests.MONITORING,
    "gatewayAPI": {"enabled": True},
    "operator": {"defaultProfile": "kind: Profile\nsloMs: 750\nvariants: {}\n", "namespaces": ["ml"]},
}


def rendered(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return list(render_manifests.documents(render_manifests.render(values or {})))


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def rules(docs: list[dict[str, Any]]) -> dict[tuple[str, str, str], str]:
    role = by_kind(docs, "ClusterRole")[0]
    out = {}
    for rule in role["rules"]:
        key = (",".join(rule["apiGroups"]), ",".join(rule["resources"]), ",".join(rule["verbs"]))
        out[key] = "?"
    return out


def test_chart_lints_clean():
    import helm_python

    for values in ({}, ALL_TOGGLES, {"replicaCount": 2}):
        report = helm_python.lint(str(CHART), render_manifests.IMAGE | values, strict=True, kube_version=f"v{K8S_VERSION}.0")
        problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        assert problems == [], problems


@pytest.mark.parametrize("values", [{}, ALL_TOGGLES, {"replicaCount": 2}], ids=["defaults", "all-toggles", "two-replicas"])
def test_every_rendered_object_is_valid_kubernetes(values):
    import kubernetes_validate

    docs = rendered(values) + render_manifests.crds()
    validator = CrdValidator()
    for doc in docs:
        api_group = doc["apiVersion"].split("/")[0]
        if api_group in ("monitoring.coreos.com", "kopf.dev"):
            assert doc["metadata"]["name"] and doc.get("spec", {}) is not None
            continue
        if doc["kind"] == "InferenceService":
            assert validator.errors(doc) == []
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_values_schema_refuses_bad_values():
    import helm_python

    for bad in ({"replicaCount": 0}, {"unknownKey": 1}, {"prometheus": {"url": "prometheus:9090"}}, {"operator": {"logFormat": "xml"}}):
        with pytest.raises(helm_python.HelmError):
            render_manifests.render(bad)
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert set(values) == set(schema["properties"])


def test_monitoring_toggles_are_off_by_default_and_ship_the_canonical_files():
    kinds = {d["kind"] for d in rendered()}
    assert not kinds & {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    assert not [d for d in by_kind(rendered(), "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]
    docs = rendered(render_manifests.MONITORING)
    assert by_kind(docs, "ServiceMonitor") and by_kind(docs, "PodMonitor")
    rule = by_kind(docs, "PrometheusRule")[0]
    canonical = yaml.safe_load((ROOT / "manifests" / "alerts" / "prometheusrule.yaml").read_text(encoding="utf-8"))
    assert rule["spec"] == canonical["spec"] and rule["metadata"]["labels"]["release"] == "infadapter"
    dashboard = next(d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard"))
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["infadapter.json"]) == json.loads((ROOT / "manifests" / "dashboards" / "infadapter.json").read_text(encoding="utf-8"))


def test_pod_monitor_gives_the_labels_the_queries_expect():
    monitor = by_kind(rendered(render_manifests.MONITORING), "PodMonitor")[0]
    targets = {r["targetLabel"] for e in monitor["spec"]["podMetricsEndpoints"] for r in e["relabelings"] if "targetLabel" in r}
    assert {"namespace", "name", "variant"} <= targets
    router = next(e for e in monitor["spec"]["podMetricsEndpoints"] if e["path"] == "/stats/prometheus")
    assert router["metricRelabelings"] == [{"sourceLabels": ["envoy_cluster_name"], "targetLabel": "variant"}]


def test_operator_pod_is_hardened_with_resource_requests():
    deployment = by_kind(rendered(), "Deployment")[0]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    for container in pod["containers"]:
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    assert "--standalone" in pod["containers"][0]["args"]


def test_rbac_grants_nothing_dangerous():
    """What the operator needs is proven by running it as this ServiceAccount (tests/cluster/test_rbac.py)."""
    assert ("gateway.networking.k8s.io", "httproutes", "get,list,create,patch") in rules(rendered({"gatewayAPI": {"enabled": True}}))
    assert ("kopf.dev", "clusterkopfpeerings", "get,list,watch,patch") in rules(rendered({"replicaCount": 2}))
    for docs in (rendered(), rendered(ALL_TOGGLES)):
        for key in rules(docs):
            verbs = set(key[2].split(","))
            assert not verbs & {"*", "escalate", "bind", "impersonate", "deletecollection"}
            assert "secrets" not in key[1] and "*" not in key[1] and "*" not in key[0]
        assert by_kind(docs, "ClusterRoleBinding")[0]["subjects"][0]["kind"] == "ServiceAccount"


def test_two_replicas_elect_a_leader_through_kopf_peering():
    docs = rendered({"replicaCount": 2})
    args = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--peering=infadapter" in args and "--standalone" not in args
    assert by_kind(docs, "ClusterKopfPeering")[0]["metadata"]["name"] == "infadapter"
    assert any(c["metadata"]["name"] == "clusterkopfpeerings.kopf.dev" for c in render_manifests.crds())


def test_chart_crd_is_the_single_source_and_rendered_manifests_are_current():
    assert (CHART / "crds" / "inferenceservice.yaml").read_text(encoding="utf-8") == (ROOT / "crds" / "inferenceservice.yaml").read_text(encoding="utf-8")
    assert render_manifests.main(["--check"]) == 0
