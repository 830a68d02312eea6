"""Gateway API mode (pure parts): routes that never collide between services, the route's status read before
Ready, and the load read from the Triton servers' own counters."""

from __future__ import annotations

from typing import Any

from infadapter.metrics.prometheus import arrival_history_query
from infadapter.operator.report import Seen, desired_status
from infadapter.planning import Plan
from infadapter.runtime.kube.router import http_route, route_problem
from tests.runtime.test_kube_builders import OWNER, spec_with


def route_of(**routing: Any) -> dict[str, Any]:
    spec = spec_with(routing={"kind": "GatewayAPI", **routing})
    return http_route(OWNER, spec, {"small": 6000, "large": 4000})


def test_the_route_matches_the_models_own_paths_and_the_hostnames_given() -> None:
    route = route_of(gatewayRef="gw.infra")
    assert route["spec"]["parentRefs"] == [{"name": "gw", "namespace": "infra"}]
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/v2/models/demo"}}], "never '/': services share a Gateway"
    assert {(b["name"], b["weight"]) for b in rule["backendRefs"]} == {("demo-small", 6000), ("demo-large", 4000)}
    assert "hostnames" not in route["spec"]
    assert route_of(hostnames=["models.example.com"])["spec"]["hostnames"] == ["models.example.com"]


def _status(*parents: dict[str, Any]) -> dict[str, Any]:
    return {"status": {"parents": list(parents)}}


def _parent(name: str, namespace: str | None, **conditions: str) -> dict[str, Any]:
    ref = {"name": name} | ({"namespace": namespace} if namespace else {})
    return {
        "parentRef": ref,
        "controllerName": "example.com/gw",
        "conditions": [{"type": k, "status": v, "reason": k, "message": "m"} for k, v in conditions.items()],
    }


def test_the_route_counts_only_once_our_gateway_accepted_it_and_resolved_its_backends() -> None:
    spec = spec_with(routing={"kind": "GatewayAPI", "gatewayRef": "gw.infra"})
    assert route_problem(None, spec, "ml") == "the HTTPRoute does not exist yet"
    assert "has not reported" in str(route_problem({"status": {}}, spec, "ml"))
    other = _parent("other", "infra", Accepted="True", ResolvedRefs="True")
    assert "has not reported" in str(route_problem(_status(other), spec, "ml")), "another Gateway's word does not count"
    refused = route_problem(_status(_parent("gw", "infra", Accepted="False", ResolvedRefs="True")), spec, "ml")
    assert refused is not None and "Accepted=True" in refused and "(Accepted: m)" in refused
    unresolved = route_problem(_status(_parent("gw", "infra", Accepted="True", ResolvedRefs="False")), spec, "ml")
    assert unresolved is not None and "ResolvedRefs" in unresolved
    assert route_problem(_status(_parent("gw", "infra", Accepted="True", ResolvedRefs="True")), spec, "ml") is None
    same_namespace = spec_with(routing={"kind": "GatewayAPI", "gatewayRef": "gw"})
    assert route_problem(_status(_parent("gw", None, Accepted="True", ResolvedRefs="True")), same_namespace, "ml") is None


def test_ready_waits_for_the_gateway() -> None:
    plan = Plan(())
    waiting = Seen("Auto", 1, plan=plan, serving=frozenset({"small"}), route_problem="Gateway infra/gw has not reported")
    ready = {c["type"]: c for c in desired_status({}, waiting, 0.0)["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "RouteNotAccepted")
    routed = Seen("Auto", 1, plan=plan, serving=frozenset({"small"}), load_source="Triton request rate (behind a Gateway)")
    conditions = {c["type"]: c for c in desired_status({}, routed, 0.0)["conditions"]}
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == ("True", "Serving")
    assert conditions["MetricsAvailable"]["message"].startswith("Triton request rate")


def test_behind_a_gateway_the_load_is_what_the_servers_received() -> None:
    query = arrival_history_query("ml", "demo", 20, source="servers")
    assert query == 'sum(irate({__name__=~"nv_inference_request_success|nv_inference_request_failure",namespace="ml",name="demo"}[20s]))'
    assert "envoy_http_downstream_rq_total" in arrival_history_query("ml", "demo", 20)
