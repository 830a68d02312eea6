"""Gateway API mode on the real control plane: the chart grants the HTTPRoute verbs, the operator writes a route
that matches only its model's paths, is not Ready before the Gateway accepts the route, and plans on the load its
Triton servers count (no router of ours to count it).

The HTTPRoute CRD is the Gateway API project's own (``sigs.k8s.io/gateway-api``, from the Go module proxy); the test
plays the Gateway's controller by writing the route's status, as an implementation would.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.cluster.controlplane import ControlPlane
from tests.cluster.kube import CHART, RELEASE, RELEASE_NAMESPACE, Admin, ArrivalExporter, OperatorProcess, chart_values, helm_config, service_body, wait_for
from tests.cluster.test_scenarios import explain, plan_of, ready

GATEWAY_API = "v1.4.0"
ROUTES = ("gateway.networking.k8s.io", "v1", "httproutes")
Start = Callable[..., OperatorProcess]


def _httproute_crd() -> dict[str, Any]:
    """The standard channel's HTTPRoute CRD of ``sigs.k8s.io/gateway-api`` at :data:`GATEWAY_API`."""
    if shutil.which("go") is None:
        pytest.skip("Go is missing: the Gateway API CRDs come from the Go module proxy")
    env = os.environ | {"GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    with tempfile.TemporaryDirectory() as empty:  # outside any module: a plain download into the module cache
        done = subprocess.run(
            ["go", "mod", "download", "-json", f"sigs.k8s.io/gateway-api@{GATEWAY_API}"],
            cwd=empty,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    if done.returncode != 0:
        pytest.fail(f"go mod download sigs.k8s.io/gateway-api@{GATEWAY_API} failed: {done.stdout[-500:]} {done.stderr[-500:]}")
    path = Path(json.loads(done.stdout)["Dir"]) / "config" / "crd" / "standard" / "gateway.networking.k8s.io_httproutes.yaml"
    crd: dict[str, Any] = yaml.safe_load(path.read_text())
    return crd


@pytest.fixture(scope="package")
def gateway_api(control_plane: ControlPlane, admin: Admin, release: dict[str, Any]) -> Iterator[None]:
    """The HTTPRoute CRD installed, and the release upgraded with ``gatewayAPI.enabled`` (put back afterwards)."""
    crd = _httproute_crd()
    extensions = client.ApiextensionsV1Api(admin.api)
    with contextlib.suppress(ApiException):
        extensions.create_custom_resource_definition(crd)
    wait_for(lambda: _established(extensions, crd["metadata"]["name"]), 60, what="the HTTPRoute CRD to be established")
    config = helm_config(control_plane)
    config.upgrade(str(CHART), RELEASE, chart_values(gatewayAPI={"enabled": True}), namespace=RELEASE_NAMESPACE, timeout=120)
    try:
        yield
    finally:
        config.upgrade(str(CHART), RELEASE, chart_values(), namespace=RELEASE_NAMESPACE, timeout=120)
        config.close()


def _established(extensions: client.ApiextensionsV1Api, name: str) -> bool:
    conditions = extensions.read_custom_resource_definition(name).status.conditions or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def _route(admin: Admin, namespace: str, name: str = "svc") -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = admin.custom.get_namespaced_custom_object(*ROUTES[:2], namespace, ROUTES[2], name)
    except ApiException:
        return None
    return found


def _accept(admin: Admin, namespace: str, route: dict[str, Any]) -> None:
    """What a Gateway implementation writes once it has programmed the route."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    generation = route["metadata"]["generation"]
    conditions = [
        {"type": kind, "status": "True", "reason": kind, "message": "", "lastTransitionTime": now, "observedGeneration": generation}
        for kind in ("Accepted", "ResolvedRefs")
    ]
    parent = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw", "namespace": "infra"}
    body = {"status": {"parents": [{"parentRef": parent, "controllerName": "example.com/gateway", "conditions": conditions}]}}
    admin.custom.patch_namespaced_custom_object_status(*ROUTES[:2], namespace, ROUTES[2], route["metadata"]["name"], body)


def _ready_reason(admin: Admin, namespace: str) -> str:
    return str((admin.condition(namespace, "svc", "Ready") or {}).get("reason"))


def test_behind_a_gateway_the_route_is_the_models_and_ready_waits_for_the_gateway(
    gateway_api: None, admin: Admin, exporter: ArrivalExporter, namespace: str, start_operator: Start
) -> None:
    exporter.set_rate(namespace, "svc", 5.0, servers=True)
    admin.put_profile(namespace, "svc")
    operator = start_operator()
    routing = {"kind": "GatewayAPI", "gatewayRef": "gw.infra", "hostnames": ["models.example.com"]}
    admin.create_service(namespace, service_body("svc", routing=routing))
    route = wait_for(lambda: _route(admin, namespace), 60, what=explain(admin, namespace, operator))
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/v2/models/demo"}}]
    assert route["spec"]["hostnames"] == ["models.example.com"]
    assert route["spec"]["parentRefs"][0]["name"] == "gw" and route["spec"]["parentRefs"][0]["namespace"] == "infra"
    # the pods are ready, but no Gateway has accepted the route: not Ready, and the status says why
    wait_for(lambda: _ready_reason(admin, namespace) == "RouteNotAccepted", 90, what=explain(admin, namespace, operator))
    assert not ready(admin, namespace)
    _accept(admin, namespace, route)
    wait_for(lambda: ready(admin, namespace), 60, what=explain(admin, namespace, operator))
    metrics = admin.condition(namespace, "svc", "MetricsAvailable") or {}
    assert metrics.get("status") == "True" and str(metrics.get("message")).startswith("Triton request rate"), metrics
    # the load comes from the servers' counters: past what "large" serves, the plan takes in "small"
    exporter.set_rate(namespace, "svc", 38.0, servers=True)
    wait_for(lambda: "small" in plan_of(admin, namespace), 90, what=explain(admin, namespace, operator))
    # ... and the route sends it traffic once its pods are ready (the route's weights follow ready capacity)
    wait_for(lambda: _weights(admin, namespace).get("svc-small", 0) > 0, 120, what=lambda: f"route weights {_weights(admin, namespace)}")


def _weights(admin: Admin, namespace: str) -> dict[str, int]:
    route = _route(admin, namespace) or {"spec": {"rules": [{"backendRefs": []}]}}
    return {b["name"]: int(b.get("weight", 0)) for b in route["spec"]["rules"][0]["backendRefs"]}
