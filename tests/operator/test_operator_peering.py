"""Two operator replicas with kopf peering: one leads, the other waits and takes over when it goes."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import yaml

from infadapter.operator import handlers
from tests.operator.checks import applied, status
from tests.operator.harness import ISVC, operator, service, wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_one_replica_leads_and_the_other_takes_over(cluster, prometheus, profile_path):
    crd = yaml.safe_load((ROOT / "manifests" / "chart" / "crds" / "kopf-peering.yaml").read_text(encoding="utf-8"))
    cluster.create("apiextensions.k8s.io/v1/customresourcedefinitions", crd, namespace="")
    peering = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "infadapter"}}
    cluster.create("kopf.dev/v1/clusterkopfpeerings", peering, namespace="")
    prometheus.loads["demo"] = 5.0
    handlers.RUNTIMES.clear()  # runtimes of operators started by earlier tests
    with contextlib.ExitStack() as follower_stack:
        leader_stack = contextlib.ExitStack()
        leader_stack.enter_context(operator(cluster, prometheus, profile_path, peering="infadapter", priority=20))
        leader = wait_for(lambda: handlers.RUNTIMES[-1] if handlers.RUNTIMES else None, what="leader started")
        follower_stack.enter_context(operator(cluster, prometheus, profile_path, peering="infadapter", priority=10))
        follower = wait_for(lambda: handlers.RUNTIMES[-1] if handlers.RUNTIMES[-1] is not leader else None, what="follower started")
        wait_for(lambda: len((cluster.get("kopf.dev/v1/clusterkopfpeerings", "infadapter", namespace="") or {}).get("status", {})) == 2, what="two peers")
        cluster.create(ISVC, service())
        wait_for(lambda: applied(cluster), what="applied by the leader")
        time.sleep(1.0)
        assert leader.tick_seconds and not follower.tick_seconds
        leader_stack.close()  # the leader goes away
        first = status(cluster)["summary"]
        prometheus.loads["demo"] = 33.0
        wait_for(lambda: follower.tick_seconds, 20, what="the follower acting")
        wait_for(lambda: status(cluster).get("summary") != first and applied(cluster), 20, what="the follower applied a new plan")
