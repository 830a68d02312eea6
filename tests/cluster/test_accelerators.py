"""A named accelerator type on the real control plane: the operator plans the cheaper hardware, and its
Deployment requests the type's resource on the type's nodes, where the scheduler places its pods."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.cluster.kube import GROUP, PROFILE, VERSION, Admin, ArrivalExporter, OperatorProcess, service_body, wait_for
from tests.cluster.test_scenarios import converged, explain

Start = Callable[..., OperatorProcess]

#: kwok-node-0 is the one fake node with GPUs (four nvidia.com/gpu)
FAST = {"name": "fast", "count": 2, "price": 0.1, "resource": "nvidia.com/gpu", "nodeSelector": {"kubernetes.io/hostname": "kwok-node-0"}}


def test_the_cheaper_accelerator_serves_from_its_own_nodes(admin: Admin, exporter: ArrivalExporter, namespace: str, start_operator: Start) -> None:
    profile = {
        **PROFILE,
        "variants": {**PROFILE["variants"], "large": [*PROFILE["variants"]["large"], {"cpu": 1, "gpus": 1, "accelerator": "fast", "capacityRps": 50}]},
    }
    exporter.set_rate(namespace, "svc", 5.0)
    admin.put_profile(namespace, "svc", profile)
    operator = start_operator()
    body = service_body("svc", accelerators=[FAST], budget={"cpu": 8, "cpuPrice": 1.0})
    body["spec"]["variants"][1]["accelerators"] = ["fast"]
    admin.create_service(namespace, body)

    def planned() -> dict[str, object]:
        plan = admin.get_service(namespace, "svc").get("status", {}).get("plan") or {}
        return {v["name"]: v for v in plan.get("variants", []) if v["replicas"] > 0}

    # 5 rps: large on 2 cores costs 2, large on one core and one "fast" GPU 1.1 -- the GPU is cheaper
    wait_for(lambda: converged(admin, namespace) and "large-fast" in planned(), 90, what=explain(admin, namespace, operator))
    variant = planned()["large-fast"]
    assert variant["accelerator"] == "fast" and variant["gpus"] == 1 and set(planned()) == {"large-fast"}
    assert admin.get_service(namespace, "svc")["status"]["cost"] == pytest.approx(1.1)
    deployment = admin.deployments(namespace, "svc")["svc-large-fast"]
    pod_spec = deployment.spec.template.spec
    assert pod_spec.node_selector == {"kubernetes.io/hostname": "kwok-node-0"}
    assert pod_spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
    pods = admin.pods(namespace, "svc", "large-fast")
    assert pods and all(p.spec.node_name == "kwok-node-0" and p.status.phase == "Running" for p in pods)
    assert not admin.deployments(namespace, "svc")["svc-large"].spec.replicas  # the variant's own deployment: drained
    # delete it while the operator runs, so that no later test's operator finds its finalizer to remove
    admin.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "inferenceservices", "svc")
    wait_for(
        lambda: not admin.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "inferenceservices")["items"],
        60,
        what="the service to go",
    )
