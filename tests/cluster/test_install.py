"""Install as a user would: Helm (helm-python-sdk) against a real apiserver, kubectl through the Table API."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import yaml

from tests.cluster.controlplane import ControlPlane
from tests.cluster.kube import CHART, ROOT, Admin, chart_values, helm_config, service_body, wait_for


def kubectl(plane: ControlPlane, *args: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(plane.bin_dir / "kubectl"), f"--kubeconfig={plane.kubeconfig('admin')}", *args],
        capture_output=True,
        text=True,
        input=input_text,
        timeout=60,
        check=False,
    )


def test_the_server_reports_the_stamped_version(control_plane: ControlPlane) -> None:
    """Unstamped builds say v0.0.0-master, and Helm then refuses the chart's kubeVersion constraint."""
    out = kubectl(control_plane, "version", "-o", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["serverVersion"]["gitVersion"] == "v1.35.4"


def test_the_chart_installed_its_crd_and_the_crd_is_established(admin: Admin, release: dict[str, Any]) -> None:
    assert release["status"] == "deployed"
    from kubernetes import client

    crd = client.ApiextensionsV1Api(admin.api).read_custom_resource_definition("inferenceservices.infadapter.io")
    conditions = {c.type: c.status for c in crd.status.conditions}
    assert conditions.get("Established") == "True" and conditions.get("NamesAccepted") == "True"
    operator = admin.apps.read_namespaced_deployment("infadapter", "infadapter-system")
    assert operator.spec.template.spec.containers[0].image == "registry.example/infadapter:test"


def test_an_example_applied_with_kubectl_shows_the_printer_columns(control_plane: ControlPlane, admin: Admin, release: dict[str, Any], namespace: str) -> None:
    body = service_body("shown")
    out = kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input_text=yaml.safe_dump(body))
    assert out.returncode == 0, out.stderr
    admin.custom.patch_namespaced_custom_object_status(
        "infadapter.io",
        "v1alpha1",
        namespace,
        "inferenceservices",
        "shown",
        {"status": {"summary": "small:2c/1.00", "observedLoadRps": 12.5, "costCpu": 2, "conditions": [{"type": "Ready", "status": "True"}]}},
    )
    # the Table API, as kubectl get asks for it: columns and cells are the apiserver's, from the CRD's jsonPaths
    table = wait_for(lambda: kubectl(control_plane, "get", "inferenceservices.infadapter.io", "-n", namespace), 10, what="kubectl get")
    header, row = table.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "READY", "MODE", "VARIANTS", "LOAD", "FORECAST", "ACCURACY", "CPU", "AGE"]
    assert row.split()[:6] == ["shown", "True", "Auto", "small:2c/1.00", "12.5", "2"]  # empty Forecast/Accuracy cells
    short = kubectl(control_plane, "get", "infsvc", "-n", namespace, "-o", "name")
    assert short.stdout.strip() == "inferenceservice.infadapter.io/shown"


def test_an_invalid_quantity_is_refused_at_apply_naming_the_field(control_plane: ControlPlane, release: dict[str, Any], namespace: str) -> None:
    for field, spec, message in (
        ("budget.cpu", {"budget": {"cpu": "12x"}}, "spec.budget.cpu: must be cores"),
        ("resources.minCpu", {"resources": {"minCpu": -1}}, "spec.resources.minCpu: must be cores"),
        ("min above max", {"resources": {"minCpu": "4", "maxCpu": "2000m"}}, "minCpu is larger than maxCpu"),
        ("variant minCpu", {"variants": [{"name": "a", "accuracy": 0.5, "resources": {"minCpu": "abc"}}]}, "spec.variants[].resources.minCpu"),
    ):
        body = service_body("bad", **spec)
        out = kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input_text=yaml.safe_dump(body))
        assert out.returncode != 0, field
        assert message in out.stderr, (field, out.stderr)


def test_install_without_an_image_fails_saying_how_to_build_one(control_plane: ControlPlane, release: dict[str, Any]) -> None:
    import helm_python

    config = helm_config(control_plane)
    try:
        with pytest.raises(helm_python.HelmError) as refused:
            config.install(str(CHART), "noimage", {}, namespace="noimage-system", create_namespace=True, dry_run="server")
    finally:
        config.close()
    assert "image.repository is required" in str(refused.value)
    assert "e2e/Dockerfile.operator" in str(refused.value)


def test_a_second_release_upgrades_and_uninstalls_cleanly(control_plane: ControlPlane, admin: Admin, release: dict[str, Any]) -> None:
    config = helm_config(control_plane, "second-system")
    try:
        config.install(str(CHART), "second", chart_values(), namespace="second-system", create_namespace=True, timeout=60)
        first = admin.apps.read_namespaced_deployment("second-infadapter", "second-system")
        assert first.spec.template.spec.containers[0].env[2].value == "ours"
        upgraded = config.upgrade(str(CHART), "second", chart_values(operator={"policy": "msplus"}), namespace="second-system", timeout=60)
        assert upgraded["revision"] == 2
        env = {e.name: e.value for e in admin.apps.read_namespaced_deployment("second-infadapter", "second-system").spec.template.spec.containers[0].env}
        assert env["INFADAPTER_POLICY"] == "msplus"
        config.uninstall("second", timeout=60)
    finally:
        config.close()
    from kubernetes import client

    roles = [r.metadata.name for r in client.RbacAuthorizationV1Api(admin.api).list_cluster_role().items]
    assert "second-infadapter" not in roles
    assert not admin.apps.list_namespaced_deployment("second-system").items
    # the CRD stays (Helm never deletes CRDs from crds/): resources of other releases survive an uninstall
    assert "inferenceservices.infadapter.io" in {c.metadata.name for c in client.ApiextensionsV1Api(admin.api).list_custom_resource_definition().items}


def test_the_rendered_manifests_match_the_chart() -> None:
    """manifests/rendered is what the README's kubectl path applies: it must be the chart's current output."""
    out = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "scripts" / "render-manifests.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr


def _stub_crd(admin: Admin, group: str, kind: str, plural: str) -> None:
    """A stand-in for a CRD the prometheus-operator installs (schema-less): enough for Helm to create the object."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    body = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [
                {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
            ],
        },
    }
    api = client.ApiextensionsV1Api(admin.api)
    try:
        api.create_custom_resource_definition(body)
    except ApiException as exc:
        if exc.status != 409:
            raise
    wait_for(
        lambda: any(c.type == "Established" and c.status == "True" for c in api.read_custom_resource_definition(f"{plural}.{group}").status.conditions or []),
        30,
    )


def test_the_readme_install_path_with_the_pod_monitor(control_plane: ControlPlane, admin: Admin, release: dict[str, Any]) -> None:
    """The README's helm line (image, Prometheus URL, PodMonitor) on a cluster with the prometheus-operator's CRDs."""
    _stub_crd(admin, "monitoring.coreos.com", "PodMonitor", "podmonitors")
    config = helm_config(control_plane, "readme-system")
    values = chart_values(prometheus={"url": "http://prometheus-operated.monitoring.svc:9090"}, podMonitor={"enabled": True})
    try:
        config.install(str(CHART), "readme", values, namespace="readme-system", create_namespace=True, timeout=60)
        monitors = admin.custom.list_namespaced_custom_object("monitoring.coreos.com", "v1", "readme-system", "podmonitors")["items"]
        assert monitors and {e["interval"] for e in monitors[0]["spec"]["podMetricsEndpoints"]} == {"5s"}
        env = {e.name: e.value for e in admin.apps.read_namespaced_deployment("readme-infadapter", "readme-system").spec.template.spec.containers[0].env}
        assert env["INFADAPTER_SCRAPE_INTERVAL_S"] == "5s"  # the operator's window follows the PodMonitor's interval
        assert env["INFADAPTER_PROMETHEUS_URL"] == "http://prometheus-operated.monitoring.svc:9090"
        config.uninstall("readme", timeout=60)
    finally:
        config.close()
