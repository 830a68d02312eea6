"""Faults a real control plane produces: a killed leader, an apiserver and etcd outage, resizes the node defers
or refuses. (Faults only an emulator can inject — lost responses, 5xx — stay in tests/operator.)"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.cluster.controlplane import ControlPlane
from tests.cluster.kube import CHART, RELEASE, RELEASE_NAMESPACE, Admin, ArrivalExporter, OperatorProcess, chart_values, helm_config, service_body, wait_for
from tests.cluster.test_scenarios import Recorder, converged, explain, plan_of, pod_cpus

Start = Callable[..., OperatorProcess]


def _start_service(admin: Admin, exporter: ArrivalExporter, namespace: str, rps: float = 5.0, **spec: Any) -> None:
    exporter.set_rate(namespace, "svc", rps)
    admin.put_profile(namespace, "svc")
    admin.create_service(namespace, service_body("svc", **spec))


@pytest.fixture
def peering(control_plane: ControlPlane, release: dict[str, Any]) -> Iterator[None]:
    """The chart with two replicas: its ClusterKopfPeering and the RBAC that goes with it."""
    config = helm_config(control_plane)
    config.upgrade(str(CHART), RELEASE, chart_values(replicaCount=2), namespace=RELEASE_NAMESPACE, timeout=60)
    try:
        yield
    finally:
        config.upgrade(str(CHART), RELEASE, chart_values(), namespace=RELEASE_NAMESPACE, timeout=60)
        config.close()


def test_two_replicas_one_leads_and_the_other_takes_over_when_it_is_killed(
    peering: None, admin: Admin, exporter: ArrivalExporter, namespace: str, start_operator: Start
) -> None:
    # (``peering`` first: the chart's peering RBAC is set up before, and removed after, the operators)
    leader = start_operator("--peering=infadapter", "--priority=200")
    follower = start_operator("--peering=infadapter", "--priority=100")
    # kopf's peering: the lower priority pauses once it sees the other in the peering object. On this machine
    # that did not always happen within a minute when the whole tier ran (see docs/cluster.md): the takeover
    # is asserted always, the exclusivity when the follower paused
    paused = _eventually(lambda: "Pausing operations" in follower.output(), 60)
    _start_service(admin, exporter, namespace)
    wait_for(lambda: converged(admin, namespace) and "large" in plan_of(admin, namespace), 90, what=explain(admin, namespace, leader))
    assert "PlanApplied" in leader.output()
    if paused:
        assert "PlanApplied" not in follower.output(), "only the leader acts"
    before = cores(admin, namespace)
    leader.stop(signal.SIGKILL)
    exporter.set_rate(namespace, "svc", 12.0)
    # kopf peering: the follower resumes once the dead leader's lease (60 s by default) expires
    wait_for(lambda: grown(admin, namespace, before), 120, what=explain(admin, namespace, follower))
    wait_for(lambda: converged(admin, namespace), 60, what=explain(admin, namespace, follower))
    assert "PlanApplied" in follower.output()


def test_the_operator_rides_out_an_apiserver_and_etcd_restart(
    control_plane: ControlPlane, admin: Admin, exporter: ArrivalExporter, namespace: str, start_operator: Start
) -> None:
    operator = start_operator()
    _start_service(admin, exporter, namespace)
    wait_for(lambda: converged(admin, namespace) and "large" in plan_of(admin, namespace), 90, what=explain(admin, namespace, operator))
    before = cores(admin, namespace)
    control_plane.restart_apiserver_and_etcd(down_s=3.0)
    assert operator.process is not None and operator.process.poll() is None, "the operator died with the apiserver"
    exporter.set_rate(namespace, "svc", 12.0)
    wait_for(lambda: grown(admin, namespace, before), 90, what=explain(admin, namespace, operator))
    wait_for(lambda: converged(admin, namespace) and at_plan(admin, namespace), 60, what=lambda: str(pod_cpus(admin, namespace, "large")))


@pytest.mark.parametrize("verdict", ["Infeasible", "Deferred"])
def test_a_resize_the_node_cannot_do_falls_back_to_a_rollout_shown_in_status(
    admin: Admin, exporter: ArrivalExporter, namespace: str, start_operator: Start, verdict: str
) -> None:
    operator = start_operator(INFADAPTER_RESIZE_WAIT_S="4")
    _start_service(admin, exporter, namespace)
    wait_for(lambda: converged(admin, namespace) and "large" in plan_of(admin, namespace), 90, what=explain(admin, namespace, operator))
    old = {p.metadata.name for p in admin.pods(namespace, "svc", "large")}
    for name in old:  # the kwok Stage answers this pod's next resize as a kubelet short of room would
        admin.core.patch_namespaced_pod(name, namespace, {"metadata": {"annotations": {"test.infadapter.io/resize": verdict}}})
    seen = Recorder(admin.custom.list_namespaced_custom_object, "infadapter.io", "v1alpha1", namespace, "inferenceservices")
    try:
        exporter.set_rate(namespace, "svc", 12.0)
        wait_for(lambda: _resize_shown(seen, verdict), 90, what=explain(admin, namespace, operator))
        # the fallback: the template takes the planned size and new pods replace the old ones
        wait_for(lambda: not old & {p.metadata.name for p in admin.pods(namespace, "svc", "large")}, 90, what=explain(admin, namespace, operator))
        wait_for(lambda: converged(admin, namespace), 60, what=explain(admin, namespace, operator))
    finally:
        seen.stop()
    planned = plan_of(admin, namespace)["large"]
    assert pod_cpus(admin, namespace, "large") == [(planned[0], planned[0])] * planned[1]
    assert (admin.condition(namespace, "svc", "InPlaceResize") or {}).get("status") == "True"


def _eventually(predicate: Callable[[], bool], timeout_s: float) -> bool:
    try:
        wait_for(predicate, timeout_s)
    except AssertionError:
        return False
    return True


def grown(admin: Admin, namespace: str, than: float) -> bool:
    """The plan gave ``large`` more cores in all than ``than`` (the load went up; the policy picks how much)."""
    plan = plan_of(admin, namespace)
    return "large" in plan and plan["large"][0] * plan["large"][1] > than


def cores(admin: Admin, namespace: str) -> float:
    cpu, replicas = plan_of(admin, namespace)["large"]
    return cpu * replicas


def at_plan(admin: Admin, namespace: str) -> bool:
    """Every running pod of the planned variant asks for, and runs at, the planned size."""
    cpu, replicas = plan_of(admin, namespace)["large"]
    return pod_cpus(admin, namespace, "large") == [(cpu, cpu)] * replicas


def _resize_shown(seen: Recorder, verdict: str) -> bool:
    """The status said so at some point: InPlaceResize False, naming the kubelet's verdict."""
    for obj in seen.objects:
        for condition in obj.get("status", {}).get("conditions", []):
            if condition.get("type") == "InPlaceResize" and condition.get("status") == "False" and verdict in str(condition.get("message")):
                return True
    return False
