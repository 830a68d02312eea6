"""Security of what the operator creates (issue 8, point 5): hardened pods, private admin APIs, no secrets leak."""

from __future__ import annotations

import asyncio
from typing import Any

import yaml

from infadapter.runtime.kube.client import ApiError, Connection, KubeApi
from infadapter.runtime.kube.desired import desired_objects
from infadapter.runtime.kube.objects import (
    HTTP_PORT,
    MANAGED_BY,
    MANAGER,
    METRICS_PORT,
    ROUTER_STATUS_PORT,
    Images,
    Owner,
    is_owned,
)
from infadapter.spec import parse_resource
from tests.operator.harness import service

OWNER = Owner(name="demo", namespace="ml", uid="uid-1")


def objects() -> list[dict[str, Any]]:
    body = service()
    body["spec"]["variants"].append({"name": "s3var", "accuracy": 0.75, "source": {"uri": "s3://bucket/prefix"}})
    spec = parse_resource(body).spec
    sizes = {"small": (1.0, 0, 1), "large": (2.0, 0, 2), "s3var": (1.0, 0, 0)}
    return desired_objects(OWNER, spec, sizes, {"small": 5000, "large": 5000, "s3var": 0}, Images())


def pods() -> list[dict[str, Any]]:
    return [o["spec"]["template"]["spec"] for o in objects() if o["kind"] == "Deployment"]


def test_every_data_plane_container_is_non_root_read_only_without_capabilities():
    for pod in pods():
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
        assert pod["automountServiceAccountToken"] is False  # the data plane never talks to the API
        for container in pod["containers"] + pod.get("initContainers", []):
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, container["name"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"] == {"drop": ["ALL"]}
            assert container["resources"]["requests"], container["name"]


def test_envoy_admin_listens_on_loopback_only_and_is_never_published():
    config = yaml.safe_load(next(o for o in objects() if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "demo-router")["data"]["envoy.yaml"])
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    admin_port = config["admin"]["address"]["socket_address"]["port_value"]
    published = {p["containerPort"] for pod in pods() for c in pod["containers"] for p in c.get("ports", [])}
    published |= {p["port"] for o in objects() if o["kind"] == "Service" for p in o["spec"]["ports"]}
    assert admin_port not in published
    metrics = next(li for li in config["static_resources"]["listeners"] if li["name"] == "metrics")
    routes = metrics["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    forwarded = [r for r in routes if "route" in r]
    assert forwarded == [r for r in forwarded if r["match"].get("path") == "/stats/prometheus"] and len(forwarded) == 1
    assert routes[-1]["direct_response"]["status"] == 404  # /runtime_modify, /quitquitquit, ... are unreachable
    status = next(li for li in config["static_resources"]["listeners"] if li["name"] == "status")
    assert status["address"]["socket_address"]["port_value"] == ROUTER_STATUS_PORT != admin_port
    routes = status["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    forwarded = [r for r in routes if "route" in r]
    assert sorted(r["match"]["path"] for r in forwarded) == ["/ready", "/runtime"]  # read-only admin pages, exact paths
    assert all(r["match"]["headers"] == [{"name": ":method", "string_match": {"exact": "GET"}}] for r in forwarded)
    assert routes[-1]["direct_response"]["status"] == 404


def test_triton_has_no_model_control_and_publishes_only_http_and_metrics():
    servers = [pod for pod in pods() if pod["containers"][0]["name"] == "triton"]
    assert len(servers) == 3
    for pod in servers:
        triton = pod["containers"][0]
        assert "--model-control-mode=none" in triton["args"] and "--allow-grpc=false" in triton["args"]
        assert {p["containerPort"] for p in triton["ports"]} == {HTTP_PORT, METRICS_PORT}


def test_s3_credentials_come_from_a_secret_reference_never_from_values():
    s3 = next(o for o in objects() if o["metadata"]["name"] == "demo-s3var")["spec"]["template"]["spec"]["initContainers"][0]
    assert s3["envFrom"] == [{"secretRef": {"name": "demo-s3", "optional": True}}]
    assert all("value" not in e or "KEY" not in e["name"].upper() for e in s3.get("env", []))


def test_every_object_is_labelled_and_owned():
    for obj in objects():
        assert obj["metadata"]["labels"][MANAGED_BY] == MANAGER
        assert is_owned(obj, OWNER)
        assert not is_owned(obj, Owner(name="demo", namespace="ml", uid="someone-else"))


def test_the_api_token_never_appears_in_errors_or_reprs(cluster):
    connection = Connection(server=cluster.url, token="s3cr3t-token")
    assert "s3cr3t" not in repr(connection)
    api = KubeApi(connection, retries=0)

    async def call() -> str:
        try:
            await api.create("/api/v1/namespaces/missing/configmaps", {"metadata": {"name": "x"}})
        except ApiError as exc:
            return str(exc)
        finally:
            await api.close()
        return ""

    message = asyncio.run(call())
    assert message and "s3cr3t" not in message and "404" in message
