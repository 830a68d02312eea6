"""Faults the operator must survive (issue 8): API errors, conflicts, lost responses, restarts, bad metrics."""

from __future__ import annotations

import time

import pytest

from tests.operator.checks import CONFIGMAPS, DEPLOYMENTS, SERVICES, applied, condition, owned, shapes, status, weights
from tests.operator.emulator import Fault
from tests.operator.harness import ISVC, operator, service, wait_for


def one_of_each(cluster) -> bool:
    names = [(o["kind"], o["metadata"]["name"]) for o in owned(cluster)]
    return len(names) == len(set(names)) == 8  # 2 variants x (Deployment + Service) + router x 4


def test_api_500s_are_retried_and_create_each_object_once(cluster, prometheus, profile_path):
    cluster.emulator.faults += [
        Fault("POST", "deployments", "500", times=3),
        Fault("GET", "services", "500", times=2),
        Fault("POST", "configmaps", "500", times=2),
    ]
    with operator(cluster, prometheus, profile_path):
        cluster.create(ISVC, service())
        wait_for(lambda: applied(cluster), what="applied despite 500s")
        assert all(f.hits == f.times + f.hits and f.times == 0 for f in cluster.emulator.faults)
        assert one_of_each(cluster)
        assert condition(cluster, "Degraded")["status"] == "False"


def test_lost_responses_on_create_leave_no_duplicates(cluster, prometheus, profile_path):
    # the server creates the object but the answer never arrives (a timeout): the retry meets AlreadyExists
    cluster.emulator.faults += [
        Fault("POST", "deployments", "lost", times=2),
        Fault("POST", "services", "lost", times=2),
        Fault("PATCH", "deployments", "lost", times=1),
    ]
    with operator(cluster, prometheus, profile_path):
        cluster.create(ISVC, service())
        wait_for(lambda: applied(cluster), what="applied despite lost responses")
        assert sum(f.hits for f in cluster.emulator.faults if f.method == "POST") == 4
        assert one_of_each(cluster)


def test_conflicts_on_update_converge(cluster, prometheus, profile_path):
    prometheus.loads["demo"] = 5.0
    with operator(cluster, prometheus, profile_path):
        cluster.create(ISVC, service())
        wait_for(lambda: applied(cluster), what="applied")
        before = status(cluster)["summary"]
        cluster.emulator.faults += [Fault("PATCH", "deployments", "409", times=3), Fault("PATCH", "configmaps", "409", times=2)]
        prometheus.loads["demo"] = 33.0
        wait_for(lambda: status(cluster).get("summary") != before and applied(cluster), 20, what="converged after conflicts")
        assert one_of_each(cluster)
        wait_for(lambda: condition(cluster, "Degraded").get("status") == "False", what="Degraded cleared")


def test_a_deployment_deleted_by_hand_is_recreated(cluster, prometheus, profile_path):
    with operator(cluster, prometheus, profile_path):
        cluster.create(ISVC, service())
        wait_for(lambda: applied(cluster), what="applied")
        cluster.delete(DEPLOYMENTS, "demo-router")
        cluster.delete(CONFIGMAPS, "demo-router-weights")
        wait_for(lambda: cluster.get(DEPLOYMENTS, "demo-router") and cluster.get(CONFIGMAPS, "demo-router-weights"), what="recreated")
        wait_for(lambda: applied(cluster), what="applied again")
        assert one_of_each(cluster)


@pytest.mark.parametrize("mode", ["error", "empty", "malformed", "garbage"])
def test_bad_prometheus_answers_hold_the_last_plan(cluster, prometheus, profile_path, mode):
    prometheus.loads["demo"] = 5.0
    with operator(cluster, prometheus, profile_path):
        cluster.create(ISVC, service())
        wait_for(lambda: applied(cluster), what="applied")
        plan, versions = status(cluster)["plan"], shapes(cluster.list(DEPLOYMENTS))
        prometheus.mode = mode
        prometheus.loads["demo"] = 33.0  # would change the plan if it were seen
        wait_for(lambda: condition(cluster, "MetricsAvailable").get("status") == "False", what=f"MetricsAvailable=False on {mode}")
        time.sleep(1.2)
        assert status(cluster)["plan"] == plan
        assert shapes(cluster.list(DEPLOYMENTS)) == versions
        prometheus.mode = "ok"
        wait_for(lambda: condition(cluster, "MetricsAvailable").get("status") == "True" and status(cluster)["plan"] != plan, what="recovered")


def test_restart_in_the_middle_of_make_before_break_converges_to_one_copy(cluster, prometheus, profile_path):
    prometheus.loads["demo"] = 5.0
    with operator(cluster, prometheus, profile_path):
        cluster.create(ISVC, service())
        wait_for(lambda: applied(cluster), what="applied")
        serving = {n for n, w in weights(cluster).items() if w > 0}
        others = {"small", "large"} - serving
        for name in others:
            cluster.emulator.unready.add(f"demo-{name}")
        prometheus.loads["demo"] = 33.0
        wait_for(lambda: any(cluster.get(DEPLOYMENTS, f"demo-{n}")["spec"]["replicas"] > 0 for n in others), what="new variant starting")
        time.sleep(0.5)
    # the operator is gone mid-transition: the new variant is not ready, traffic still on the old one
    assert {n for n, w in weights(cluster).items() if w > 0} <= serving
    cluster.emulator.unready.clear()
    for name in others:
        cluster.patch(DEPLOYMENTS, f"demo-{name}", {"metadata": {"annotations": {"nudge": "1"}}})
    with operator(cluster, prometheus, profile_path):
        wait_for(lambda: applied(cluster), 20, what="converged after the restart")
        assert one_of_each(cluster)
        pods = cluster.list("v1/pods", **{"infadapter.io/component": "server"})
        planned = {v["name"]: v["replicas"] for v in status(cluster)["plan"]["variants"]}
        assert len(pods) == sum(planned.values())


def test_an_object_we_do_not_own_is_never_touched(cluster, prometheus, profile_path):
    foreign = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "demo-router", "namespace": "default"}, "data": {"keep": "me"}}
    cluster.create(CONFIGMAPS, foreign)
    with operator(cluster, prometheus, profile_path):
        cluster.create(ISVC, service())
        wait_for(lambda: condition(cluster, "Degraded").get("reason") == "ApplyFailed", what="the clash reported")
        assert "not owned by InferenceService demo" in condition(cluster, "Degraded")["message"]
        time.sleep(1.0)
    assert cluster.get(CONFIGMAPS, "demo-router")["data"] == {"keep": "me"}
    assert "ownerReferences" not in cluster.get(CONFIGMAPS, "demo-router")["metadata"]
    assert any(e["reason"] == "ApplyFailed" for e in cluster.events("demo"))
    assert cluster.get(SERVICES, "demo-small") is not None  # what it owns was still reconciled
