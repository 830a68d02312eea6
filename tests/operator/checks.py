"""Assertions shared by the operator tests: the cluster matches the plan in the status."""

from __future__ import annotations

from typing import Any

from infadapter.runtime.envoy_config import integer_weights
from infadapter.runtime.kube.objects import parse_cpu_quantity
from tests.operator.harness import ISVC, Cluster

DEPLOYMENTS = "apps/v1/deployments"
SERVICES = "v1/services"
CONFIGMAPS = "v1/configmaps"
PODS = "v1/pods"


def status(cluster: Cluster, name: str = "demo") -> dict[str, Any]:
    return dict((cluster.get(ISVC, name) or {}).get("status", {}))


def condition(cluster: Cluster, type_: str, name: str = "demo") -> dict[str, Any]:
    for c in status(cluster, name).get("conditions", []):
        if c["type"] == type_:
            return dict(c)
    return {}


def owned(cluster: Cluster, name: str = "demo") -> list[dict[str, Any]]:
    uid = (cluster.get(ISVC, name) or {}).get("metadata", {}).get("uid")
    found = []
    for key in (DEPLOYMENTS, SERVICES, CONFIGMAPS, "gateway.networking.k8s.io/v1/httproutes"):
        for obj in cluster.list(key):
            if any(r.get("uid") == uid and r.get("controller") for r in obj["metadata"].get("ownerReferences", [])):
                found.append(obj)
    return found


def weights(cluster: Cluster, name: str = "demo") -> dict[str, int]:
    cm = cluster.get(CONFIGMAPS, f"{name}-router-weights") or {}
    return {k: int(v) for k, v in cm.get("data", {}).items()}


def pod_cpu(cluster: Cluster, deployment: str) -> list[float]:
    pods = [p for p in cluster.list(PODS) if p["metadata"]["ownerReferences"][0]["name"] == deployment]
    return sorted(parse_cpu_quantity(p["spec"]["containers"][0]["resources"]["limits"]["cpu"]) for p in pods)


def applied(cluster: Cluster, name: str = "demo") -> bool:
    """Every planned variant runs at its planned size and replicas, others at 0, weights = the plan's."""
    st = status(cluster, name)
    plan = st.get("plan")
    if not plan:
        return False
    planned = {v["name"]: v for v in plan["variants"]}
    for dep in cluster.list(DEPLOYMENTS, **{"infadapter.io/component": "server"}):
        variant = dep["metadata"]["labels"]["infadapter.io/variant"]
        want = planned.get(variant)
        if want is None:
            if dep["spec"]["replicas"] != 0:
                return False
            continue
        if dep["spec"]["replicas"] != want["replicas"] or dep.get("status", {}).get("readyReplicas", 0) != want["replicas"]:
            return False
        cpus = pod_cpu(cluster, dep["metadata"]["name"])
        if len(cpus) != want["replicas"] or any(abs(c - want["cpu"]) > 1e-9 for c in cpus):
            return False
    names = [d["metadata"]["labels"]["infadapter.io/variant"] for d in cluster.list(DEPLOYMENTS, **{"infadapter.io/component": "server"})]
    expected = integer_weights({n: v["weight"] for n, v in planned.items()}, sorted(names))
    expected = {n: (w if n in planned and planned[n]["weight"] > 0 else 0) for n, w in expected.items()}
    return weights(cluster, name) == expected or (sum(expected.values()) == 0 and bool(weights(cluster, name)))


def shapes(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """What the operator writes (generation, spec/data, labels), not what controllers add (status, resourceVersion)."""
    return {
        f"{o['kind']}/{o['metadata']['name']}": (o["metadata"].get("generation"), o.get("spec"), o.get("data"), o["metadata"].get("labels")) for o in objects
    }
