"""A shared budget on the real control plane: two InferenceServices draw on one InferenceBudget; the operator, as the
chart's ServiceAccount, divides it with one joint solve, the pods of both fit it, and a short pool is shared
fairly, with every member's status and the pool's own status saying what each got and why."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.cluster.controlplane import ControlPlane
from tests.cluster.kube import GROUP, VERSION, Admin, ArrivalExporter, OperatorProcess, service_body, status_json, wait_for
from tests.cluster.test_scenarios import converged, pod_cpus

Start = Callable[..., OperatorProcess]
MEMBERS = ("busy", "quiet")
POOL_CPU = 6.0


def _budget(admin: Admin, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = admin.get_service(namespace, name).get("status", {}).get("budget") or {}
    return found


def _pool(admin: Admin, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = admin.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "inferencebudgets", "team")
    return found


def _held_cores(admin: Admin, namespace: str) -> float:
    """Cores the members' server pods ask for, as a ResourceQuota counts them."""
    return sum(spec for name in MEMBERS for variant in ("small", "large") for spec, _ in pod_cpus(admin, namespace, variant, name))


def _explain(admin: Admin, namespace: str, operator: OperatorProcess) -> Callable[[], str]:
    def explain() -> str:
        services = [f"{n}: {status_json(admin.get_service(namespace, n))} budget={_budget(admin, namespace, n)}" for n in MEMBERS]
        return "\n".join([*services, f"pool: {_pool(admin, namespace).get('status')}", f"held: {_held_cores(admin, namespace)}", operator.output()[-2500:]])

    return explain


def _settled(admin: Admin, namespace: str) -> bool:
    """Both members converged, each on its whole share (no core still waiting for the other to release it)."""
    budgets = {n: _budget(admin, namespace, n) for n in MEMBERS}
    return all(converged(admin, namespace, n) and budgets[n].get("cpu") == budgets[n].get("shareCpu") for n in MEMBERS)


def _serving(admin: Admin, namespace: str) -> bool:
    """Both members planned to serve their whole load within their current shares (a load sample seen late on a
    busy machine can leave one short for a tick after the shares settled, and a plan made before its share
    shrank is replanned at the next tick)."""
    for name in MEMBERS:
        plan = admin.get_service(namespace, name).get("status", {}).get("plan") or {}
        if plan.get("status") != "optimal" or plan.get("cost_cpu", float("inf")) > _budget(admin, namespace, name).get("cpu", 0.0) + 1e-9:
            return False
    return True


def _by_load(admin: Admin, namespace: str) -> bool:
    """The division follows the predicted loads (the first one, before any load is known, is equal)."""
    busy, quiet = _budget(admin, namespace, "busy"), _budget(admin, namespace, "quiet")
    return bool(busy and quiet) and busy["shareCpu"] > quiet["shareCpu"]


def _short(admin: Admin, namespace: str) -> dict[str, Any] | None:
    """The pool's status once it says it is short."""
    status: dict[str, Any] = _pool(admin, namespace).get("status") or {}
    return status if status.get("servedFraction", 1.0) < 1.0 else None


def test_two_services_share_one_pool_fairly_and_fit_it(
    control_plane: ControlPlane, admin: Admin, exporter: ArrivalExporter, namespace: str, start_operator: Start
) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "InferenceBudget", "metadata": {"name": "team"}, "spec": {"cpu": POOL_CPU}}
    admin.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "inferencebudgets", body)
    exporter.set_rate(namespace, "busy", 20.0)
    exporter.set_rate(namespace, "quiet", 3.0)
    mark = control_plane.audit_mark()
    operator = start_operator()
    for name in MEMBERS:
        admin.put_profile(namespace, name)
        admin.create_service(namespace, service_body(name, budget={"pool": "team"}))
    what = _explain(admin, namespace, operator)
    # both serve their load within their shares, the busy one's larger, and the shares within the pool
    wait_for(lambda: _by_load(admin, namespace) and _settled(admin, namespace) and _serving(admin, namespace), 180, what=what)
    busy, quiet = _budget(admin, namespace, "busy"), _budget(admin, namespace, "quiet")
    assert busy["reason"] == quiet["reason"] == "Shared" and busy["pool"] == "team", (busy, quiet)
    assert busy["cpu"] + quiet["cpu"] <= POOL_CPU + 1e-9, (busy, quiet)
    for name in MEMBERS:
        plan = admin.get_service(namespace, name)["status"]["plan"]
        assert plan["status"] == "optimal" and plan["cost_cpu"] <= _budget(admin, namespace, name)["cpu"] + 1e-9, plan
    wait_for(lambda: _held_cores(admin, namespace) <= POOL_CPU + 1e-9, 60, what=what)
    pool = _pool(admin, namespace)["status"]
    assert pool["memberCount"] == 2 and pool["allocatedCpu"] <= POOL_CPU and pool["servedFraction"] == 1.0, pool
    assert [m["name"] for m in pool["members"]] == sorted(MEMBERS), pool

    # the busy service's load passes what the pool can serve: both members serve the same fraction at least
    exporter.set_rate(namespace, "busy", 90.0)
    wait_for(lambda: all(_budget(admin, namespace, n).get("reason") == "PoolShort" for n in MEMBERS), 120, what=what)
    pool = wait_for(lambda: _short(admin, namespace), 60, what=what)
    busy, quiet = _budget(admin, namespace, "busy"), _budget(admin, namespace, "quiet")
    assert 0.0 < pool["servedFraction"] < 1.0, pool
    assert min(busy["servedFraction"], quiet["servedFraction"]) >= pool["servedFraction"], (pool, busy, quiet)
    assert quiet["servedFraction"] == 1.0, quiet  # its smallest plan serves it whole: not cut to the busy one's fraction
    assert "the pool is short" in busy["message"], busy
    wait_for(lambda: _settled(admin, namespace), 120, what=what)
    assert _held_cores(admin, namespace) <= POOL_CPU + 1e-9, what()

    # everything the operator did, it was allowed to do (the pool is read and its status written as the chart grants)
    events = control_plane.audit_since(mark, operator.user)
    refused = [
        (e["verb"], e.get("requestURI"))
        for e in events
        if e.get("responseStatus", {}).get("code") == 403 and e.get("objectRef", {}).get("namespace") == namespace
    ]
    assert refused == [], refused
    assert any("inferencebudgets/team/status" in str(e.get("requestURI")) and e["verb"] == "patch" for e in events)
