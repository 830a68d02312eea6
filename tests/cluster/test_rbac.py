"""The operator runs as the chart's ServiceAccount: every verb it uses is granted, and nothing more."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.cluster.controlplane import ControlPlane
from tests.cluster.kube import OPERATOR_SA, RELEASE_NAMESPACE, Admin, ArrivalExporter, OperatorProcess, service_body, status_json, wait_for


def test_the_operator_brings_a_service_to_ready_with_no_forbidden_request(
    control_plane: ControlPlane, admin: Admin, exporter: ArrivalExporter, namespace: str, start_operator: Callable[..., OperatorProcess]
) -> None:
    exporter.set_rate(namespace, "svc", 5.0)
    admin.put_profile(namespace, "svc")
    mark = control_plane.audit_mark()
    operator = start_operator()
    admin.create_service(namespace, service_body("svc"))
    wait_for(
        lambda: (admin.condition(namespace, "svc", "Ready") or {}).get("status") == "True",
        90,
        what=lambda: f"Ready; status: {status_json(admin.get_service(namespace, 'svc'))}\n{operator.output()[-3000:]}",
    )
    deployments = admin.deployments(namespace, "svc")
    assert {"svc-small", "svc-large", "svc-router"} <= set(deployments)
    events = control_plane.audit_since(mark, operator.user)
    assert events, "the audit log saw no request from the operator's ServiceAccount"
    # RBAC refusals ("User ... cannot <verb> resource ..."), in this test's namespace or cluster-wide; the
    # operator also sees other tests' services, whose namespaces refuse writes while they terminate (also a 403)
    refused = [
        (e["verb"], e.get("requestURI"))
        for e in events
        if e.get("responseStatus", {}).get("code") == 403
        and " cannot " in str(e["responseStatus"].get("message"))
        and (e.get("objectRef", {}).get("namespace") in (None, namespace))
    ]
    assert refused == [], refused
    assert [line for line in operator.forbidden() if " cannot " in line and (namespace in line or "/namespaces/" not in line)] == []


@pytest.mark.parametrize(
    "attempt",
    [
        "read a secret",
        "create a secret",
        "delete a deployment",
        "create a pod",
        "patch a node",
        "create a cluster role",
        "update the status of a pod",
    ],
)
def test_writes_outside_the_operators_grant_are_refused(
    control_plane: ControlPlane, admin: Admin, release: dict[str, Any], namespace: str, attempt: str
) -> None:
    token = admin.token(RELEASE_NAMESPACE, OPERATOR_SA)
    configuration = client.Configuration()
    configuration.host = control_plane.server
    configuration.ssl_ca_cert = str(control_plane.ca_file)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    api = client.ApiClient(configuration)
    core, apps, rbac = client.CoreV1Api(api), client.AppsV1Api(api), client.RbacAuthorizationV1Api(api)
    admin.core.create_namespaced_secret(namespace, {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    admin.apps.create_namespaced_deployment(namespace, _deployment())
    calls: dict[str, Callable[[], Any]] = {
        "read a secret": lambda: core.read_namespaced_secret("s", namespace),
        "create a secret": lambda: core.create_namespaced_secret(namespace, {"metadata": {"name": "t"}}),
        "delete a deployment": lambda: apps.delete_namespaced_deployment("d", namespace),
        "create a pod": lambda: core.create_namespaced_pod(namespace, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}),
        "patch a node": lambda: core.patch_node("kwok-node-0", {"metadata": {"labels": {"x": "y"}}}),
        "create a cluster role": lambda: rbac.create_cluster_role({"metadata": {"name": "escalate"}, "rules": []}),
        "update the status of a pod": lambda: core.patch_namespaced_pod_status("p", namespace, {"status": {}}),
    }
    with pytest.raises(ApiException) as refused:
        calls[attempt]()
    assert refused.value.status == 403, refused.value


def _deployment() -> dict[str, Any]:
    labels = {"app": "d"}
    return {
        "metadata": {"name": "d"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        },
    }


def test_the_operator_may_annotate_its_router_pods_and_change_no_pod_otherwise(
    control_plane: ControlPlane, admin: Admin, release: dict[str, Any], namespace: str
) -> None:
    """``patch pods`` is granted for one use (the weights' version on a router pod); the chart's admission policy
    refuses every other pod change by the operator's ServiceAccount."""
    token = admin.token(RELEASE_NAMESPACE, OPERATOR_SA)
    configuration = client.Configuration()
    configuration.host = control_plane.server
    configuration.ssl_ca_cert = str(control_plane.ca_file)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    core = client.CoreV1Api(client.ApiClient(configuration))
    wait_for(lambda: _has_default_account(admin, namespace), 30, what="the namespace's default ServiceAccount")
    for name, labels in (("router", {"infadapter.io/service": "svc", "infadapter.io/component": "router"}), ("plain", {"app": "x"})):
        pod = {"metadata": {"name": name, "labels": labels}, "spec": {"containers": [{"name": "c", "image": "envoy"}], "automountServiceAccountToken": False}}
        admin.core.create_namespaced_pod(namespace, pod)
    patched = core.patch_namespaced_pod("router", namespace, {"metadata": {"annotations": {"infadapter.io/weights": "abc"}}})
    assert patched.metadata.annotations["infadapter.io/weights"] == "abc"
    refused = {
        "annotate another pod": lambda: core.patch_namespaced_pod("plain", namespace, {"metadata": {"annotations": {"infadapter.io/weights": "abc"}}}),
        "relabel a router pod": lambda: core.patch_namespaced_pod("router", namespace, {"metadata": {"labels": {"infadapter.io/component": "x"}}}),
        "change a router pod's image": lambda: core.patch_namespaced_pod("router", namespace, {"spec": {"containers": [{"name": "c", "image": "evil"}]}}),
    }
    for what, call in refused.items():
        with pytest.raises(ApiException) as denied:
            call()
        assert denied.value.status == 403, (what, denied.value)
    assert admin.core.read_namespaced_pod("router", namespace).spec.containers[0].image == "envoy"


def _has_default_account(admin: Admin, namespace: str) -> bool:
    try:
        admin.core.read_namespaced_service_account("default", namespace)
    except ApiException:
        return False
    return True
