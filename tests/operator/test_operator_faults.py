"""Faults the operator must survive (issue 8): API errors, conflicts, lost responses, restarts, bad metrics."""

from __future__ import annotations

import time

import pytest

from tests.operator.checks import DEPLOYMENTS, applied, condition, owned, shapes, status
from tests.operator.emulator import Fault
from tests.operator.harness import ISVC, operator, service, wait_for


def one_of_each(cluster) -> bool:
    names = [(o["kind"], o["metadata"]["name"]) for o in owned(cluster)]
    return len(names) == len(set(names)) >= 8  # no duplicates: 2 variants x (Deployment + Service) + the router's objects


def test_api_500s_are_retried_and_create_each_object_once(cluster, prometheus, profile_path):
    cluster.emulator.faults += [
        Fault("PATCH", "deployments", "500", times=3),  # objects are created by server-side apply (PATCH)
        Fault("GET", "services", "500", times=2),
        Fault("PATCH", "configmaps", "500", times=2),
    ]
    with operator(cluster, prometheus, profile_path):
        cluster.create(ISVC, service())
        wait_for(lambda: applied(cluster), what="applied despite 500s")
        assert all(f.hits == f.times + f.hits and f.times == 0 for f in cluster.emulator.faults)
        assert one_of_each(cluster)
        assert condition(cluster, "Degraded")["status"] == "False"


def test_lost_responses_on_create_leave_no_duplicates(cluster, prometheus, profile_path):
    # the server creates the object but the answer never arrives (a timeout): the retried apply is idempotent
    cluster.emulator.faults += [
        Fault("PATCH", "deployments", "lost", times=3),
        Fault("PATCH", "services", "lost", times=2),
    ]
    with operator(cluster, prometheus, profile_path):
        cluster.create(ISVC, service())
        wait_for(lambda: applied(cluster), what="applied despite lost responses")
        assert sum(f.hits for f in cluster.emulator.faults) == 5
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


def test_without_in_place_support_the_template_rolls(cluster, prometheus, profile_path):
    """A server without pods/resize (no 1.35 apiserver can be made to lack it): the template takes the new size."""
    cluster.emulator.disable_resize()
    prometheus.loads["demo"] = 3.0
    spec = service(resources={"cpuStep": 1, "minCpu": 1, "maxCpu": 4, "maxReplicas": 1}, variants=[service()["spec"]["variants"][1]])
    with operator(cluster, prometheus, profile_path):
        cluster.create(ISVC, spec)
        wait_for(lambda: applied(cluster), what="applied")
        prometheus.loads["demo"] = 12.0
        wait_for(lambda: status(cluster)["plan"]["variants"][0]["cpu"] > 1 and applied(cluster), what="rolled to the new size")
        limits = cluster.get(DEPLOYMENTS, "demo-large")["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits["cpu"] == f"{round(status(cluster)['plan']['variants'][0]['cpu'] * 1000)}m" != "1000m"
