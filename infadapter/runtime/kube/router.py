"""The router of one InferenceService as Kubernetes objects (pure): Envoy bootstrap, weights, Gateway API.

* ``S-router`` ConfigMap: the embedded mode's Envoy bootstrap (:func:`infadapter.runtime.envoy_config.envoy_config`)
  with one STRICT_DNS cluster per variant: priority 0 its headless Service (every ready pod, balanced per
  request), priority 1 ``S-servers`` (every server of the service) — so the config grows linearly with the
  variants. Admin on 127.0.0.1; a listener that forwards only ``GET /stats/prometheus`` (Prometheus) and a
  read-only status listener (:data:`~infadapter.runtime.kube.ROUTER_STATUS_PORT`) that forwards only
  ``GET /runtime`` and ``GET /ready``: the operator reads there which weights Envoy applies
  (:func:`applied_weights`);
* ``S-router-weights`` ConfigMap: integer weights per variant, mounted into the router pod where the
  ``weights`` sidecar keeps Envoy's admin runtime in step with them (:data:`AGENT_SCRIPT`): live, no restart.
  The sidecar is ready only once Envoy holds the mounted weights, so a new router pod takes no traffic before;
* ``S-router`` Deployment (two replicas, spread over nodes, drained before they stop: :data:`AGENT_PRESTOP`), its Service and
  PodDisruptionBudget; or, with ``routing.kind: GatewayAPI``, a weighted ``HTTPRoute``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from infadapter.runtime.envoy_config import RUNTIME_PREFIX, envoy_config, runtime_weights_from
from infadapter.runtime.kube.objects import (
    ENVOY_ADMIN_PORT,
    HTTP_PORT,
    ROUTER_FILTER,
    ROUTER_METRICS_PORT,
    ROUTER_PORT,
    ROUTER_STATUS_PORT,
    WEIGHTS_DIR,
    Images,
    Obj,
    Owner,
    labels,
    match_labels,
    metadata,
    object_name,
    pod_security,
    restricted_security,
)
from infadapter.spec import InferenceServiceSpec

ROUTER_REPLICAS = 2
#: a stopping router pod keeps serving this long after its health is failed (``Connection: close`` on every
#: response, the pod out of the Service's endpoints), so clients have reconnected to the other one before it exits
ROUTER_STOP_S = 15
#: how often Envoy re-resolves the headless Services (a pod that leaves is dropped within this + the DNS TTL)
DNS_REFRESH = "2s"
AGENT_STATE_DIR = "/run/agent"


def _service_host(owner: Owner, suffix: str) -> str:
    return f"{object_name(owner.name, suffix)}.{owner.namespace}.svc.cluster.local"


def _admin_listener(name: str, port: int, paths: Sequence[str]) -> Obj:
    """A listener that forwards ``GET`` of exactly ``paths`` to the pod-local admin, and answers 404 to the rest.

    Its stat prefix is "admin" so that the load queries (``envoy_http_conn_manager_prefix!="admin"``) skip it.
    """
    only_get = [{"name": ":method", "string_match": {"exact": "GET"}}]
    routes: list[Obj] = [{"match": {"path": p, "headers": only_get}, "route": {"cluster": "envoy-admin"}} for p in paths]
    routes.append({"match": {"prefix": "/"}, "direct_response": {"status": 404}})
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "admin",
        "route_config": {"name": name, "virtual_hosts": [{"name": name, "domains": ["*"], "routes": routes}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_FILTER}}],
    }
    return {
        "name": name,
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
    }


def router_bootstrap(owner: Owner, spec: InferenceServiceSpec) -> Obj:
    """Envoy bootstrap: the embedded mode's config, with headless-Service DNS clusters and admin-forwarding listeners."""
    names = spec.variant_names
    config = envoy_config(
        names, {}, listen_port=ROUTER_PORT, admin_port=ENVOY_ADMIN_PORT, eds_dir=Path("/unused"), listen_address="0.0.0.0", slo_ms=spec.slo.latency_ms
    )
    resources = config["static_resources"]
    fallback = _service_host(owner, "servers")
    for cluster in resources["clusters"]:
        variant = cluster["name"]
        cluster.pop("eds_cluster_config")
        cluster["type"] = "STRICT_DNS"
        cluster["dns_lookup_family"] = "V4_ONLY"
        cluster["dns_refresh_rate"] = DNS_REFRESH
        # one name per priority, whatever the number of variants: the config is linear in the variants
        endpoints = [{"priority": 0, "lb_endpoints": [_endpoint(_service_host(owner, variant), HTTP_PORT)]}]
        if len(names) > 1:
            endpoints.append({"priority": 1, "lb_endpoints": [_endpoint(fallback, HTTP_PORT)]})
        cluster["load_assignment"] = {"cluster_name": variant, "endpoints": endpoints}
    admin_endpoints = [{"lb_endpoints": [_endpoint("127.0.0.1", ENVOY_ADMIN_PORT)]}]
    resources["clusters"].append(
        {"name": "envoy-admin", "type": "STATIC", "connect_timeout": "1s", "load_assignment": {"cluster_name": "envoy-admin", "endpoints": admin_endpoints}}
    )
    resources["listeners"].append(_admin_listener("metrics", ROUTER_METRICS_PORT, ["/stats/prometheus"]))
    # read-only: /runtime lists the runtime values (the weights) and /ready the server state; the mutating
    # admin endpoints (/runtime_modify, /quitquitquit, ...) are POSTs to other paths, answered 404 here
    resources["listeners"].append(_admin_listener("status", ROUTER_STATUS_PORT, ["/runtime", "/ready"]))
    return config


def _endpoint(host: str, port: int) -> Obj:
    return {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}


def router_configmap(owner: Owner, spec: InferenceServiceSpec) -> Obj:
    text = yaml.safe_dump(router_bootstrap(owner, spec), sort_keys=False)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(owner, object_name(owner.name, "router"), "router"), "data": {"envoy.yaml": text}}


def weights_configmap(owner: Owner, weights: Mapping[str, int]) -> Obj:
    data = {name: str(int(w)) for name, w in sorted(weights.items())}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(owner, object_name(owner.name, "router-weights"), "router"), "data": data}


def applied_weights(answer: str | bytes | Mapping[str, Any], variants: Sequence[str] | None = None) -> dict[str, int]:
    """``{variant: weight}`` Envoy applies, from a router pod's ``GET http://<pod IP>:9103/runtime`` answer.

    A variant is absent when Envoy holds no runtime value for it (then it runs the bootstrap's equal split:
    not confirmed). Raises ValueError for an answer that is not Envoy's ``/runtime`` JSON.
    """
    return runtime_weights_from(answer, variants)


#: the sidecar: every 2 s, compare the weights Envoy holds (admin /runtime) with the mounted ones and post
#: them to /runtime_modify when they differ (a new ConfigMap, or an Envoy that restarted with an empty admin
#: layer). Its readiness file exists once Envoy holds them, and goes when Envoy holds none of them (restarted).
AGENT_SCRIPT = f"""set -u
admin=http://127.0.0.1:{ENVOY_ADMIN_PORT}; state={AGENT_STATE_DIR}/applied
rm -f "$state"
while true; do
  have=$(curl -fsS --max-time 2 "$admin/runtime" | tr -d ' \\t\\r\\n') || have=""
  q=""; same=1; known=0
  for f in {WEIGHTS_DIR}/*; do
    [ -f "$f" ] || continue
    k="{RUNTIME_PREFIX}.$(basename "$f")"; v=$(cat "$f"); q="$q&$k=$v"
    case "$have" in *"\\"$k\\":{{"*) known=1 ;; esac
    printf '%s' "$have" | grep -q "\\"$k\\":{{[^}}]*\\"final_value\\":\\"$v\\"" || same=0
  done
  if [ -n "$q" ] && [ "$same" = 1 ]; then
    : > "$state"; sleep 2
  else
    [ "$known" = 1 ] || rm -f "$state"
    if [ -n "$q" ] && [ -n "$have" ]; then curl -fsS -o /dev/null --max-time 2 -X POST "$admin/runtime_modify?${{q#&}}" || sleep 1; else sleep 1; fi
  fi
done
"""

#: the sidecar's preStop: fail Envoy's health — /ready answers 503 DRAINING (the pod leaves the endpoints) and
#: every response carries ``Connection: close`` (HTTP/2: GOAWAY), so keep-alive clients move to the other pod
AGENT_PRESTOP = f"curl -fsS -o /dev/null --max-time 2 -X POST 'http://127.0.0.1:{ENVOY_ADMIN_PORT}/healthcheck/fail'; sleep {ROUTER_STOP_S}"


def _envoy_container(images: Images) -> Obj:
    return {
        "name": "envoy",
        "image": images.envoy,
        "imagePullPolicy": images.pull_policy,
        "args": [
            "-c",
            "/etc/envoy/envoy.yaml",
            "--disable-hot-restart",
            "--log-level",
            "warn",
        ],
        "ports": [
            {"name": "http", "containerPort": ROUTER_PORT},
            {"name": "metrics", "containerPort": ROUTER_METRICS_PORT},
            {"name": "status", "containerPort": ROUTER_STATUS_PORT},
        ],
        # /ready answers 503 once the preStop failed Envoy's health: the pod leaves the endpoints at once
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "status"}, "periodSeconds": 2, "timeoutSeconds": 2, "failureThreshold": 2},
        "livenessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
        "lifecycle": {"preStop": {"sleep": {"seconds": ROUTER_STOP_S}}},
        "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"cpu": "2", "memory": "512Mi"}},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/envoy", "readOnly": True}, {"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": restricted_security(),
    }


def _weights_agent_container(images: Images) -> Obj:
    """The sidecar that keeps Envoy's admin runtime in step with the mounted weights (:data:`AGENT_SCRIPT`)."""
    return {
        "name": "weights",
        "image": images.agent,
        "imagePullPolicy": images.pull_policy,
        "command": ["sh", "-c", AGENT_SCRIPT],
        "readinessProbe": {"exec": {"command": ["test", "-f", f"{AGENT_STATE_DIR}/applied"]}, "periodSeconds": 1, "timeoutSeconds": 2},
        "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", AGENT_PRESTOP]}}},
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "32Mi"}},
        "volumeMounts": [{"name": "weights", "mountPath": WEIGHTS_DIR, "readOnly": True}, {"name": "agent", "mountPath": AGENT_STATE_DIR}],
        "securityContext": restricted_security(),
    }


def router_deployment(owner: Owner, spec: InferenceServiceSpec, images: Images, replicas: int = ROUTER_REPLICAS) -> Obj:
    # the bootstrap's hash in the pod template: a changed config rolls the router pods (Envoy reads it once)
    config_hash = hashlib.sha256(json.dumps(router_bootstrap(owner, spec), sort_keys=True).encode()).hexdigest()[:16]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(owner, object_name(owner.name, "router"), "router"),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": match_labels(owner, "router")},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels(owner, "router"), "annotations": {"infadapter.io/config-hash": config_hash}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security(101),
                    "terminationGracePeriodSeconds": ROUTER_STOP_S + 10,
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": match_labels(owner, "router")},
                        },
                    ],
                    "containers": [_envoy_container(images), _weights_agent_container(images)],
                    "volumes": [
                        {"name": "config", "configMap": {"name": object_name(owner.name, "router")}},
                        {"name": "weights", "configMap": {"name": object_name(owner.name, "router-weights")}},
                        {"name": "agent", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }


def router_service(owner: Owner) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(owner, object_name(owner.name, "router"), "router"),
        "spec": {
            "type": "ClusterIP",
            "selector": match_labels(owner, "router"),
            "ports": [{"name": "http", "port": ROUTER_PORT, "targetPort": "http"}, {"name": "metrics", "port": ROUTER_METRICS_PORT, "targetPort": "metrics"}],
        },
    }


def router_disruption_budget(owner: Owner) -> Obj:
    """At most one router pod evicted at a time (node drains, upgrades): the other keeps serving."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(owner, object_name(owner.name, "router"), "router"),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": match_labels(owner, "router")}},
    }


def gateway_parent(spec: InferenceServiceSpec) -> Obj:
    """The HTTPRoute's parentRef: ``routing.gatewayRef`` (``name`` or ``name.namespace``; default ``gateway``)."""
    gw_name, _, gw_namespace = (spec.routing.gateway_ref or "gateway").partition(".")
    parent: Obj = {"name": gw_name}
    if gw_namespace:
        parent["namespace"] = gw_namespace
    return parent


def http_route(owner: Owner, spec: InferenceServiceSpec, weights: Mapping[str, int]) -> Obj:
    """Gateway API routing: one rule, a weighted backendRef per variant Service.

    The rule matches the model's own paths (``/v2/models/<modelName>``: Triton's KServe v2 API, where each
    variant serves the model under the service's name), never ``/``: two services on one Gateway then never
    claim the same requests. ``routing.hostnames`` narrows it further (two services of one model name).
    """
    route_spec: Obj = {
        "parentRefs": [gateway_parent(spec)],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": f"/v2/models/{spec.model_name}"}}],
                "backendRefs": [{"name": object_name(owner.name, v), "port": HTTP_PORT, "weight": int(weights.get(v, 0))} for v in spec.variant_names],
            }
        ],
    }
    if spec.routing.hostnames:
        route_spec["hostnames"] = list(spec.routing.hostnames)
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": metadata(owner, owner.name, "route"), "spec": route_spec}


def route_problem(route: Mapping[str, Any] | None, spec: InferenceServiceSpec, namespace: str) -> str | None:
    """Why the Gateway does not route to the service yet (None: the HTTPRoute is Accepted with its refs resolved).

    Read from the route's ``status.parents`` entry for our Gateway, as the Gateway's controller writes it.
    """
    if route is None:
        return "the HTTPRoute does not exist yet"
    parent = gateway_parent(spec)
    want = (parent["name"], parent.get("namespace", namespace))
    for entry in (route.get("status") or {}).get("parents") or []:
        ref = entry.get("parentRef") or {}
        if (ref.get("name"), ref.get("namespace") or namespace) != want:
            continue
        conditions = {c.get("type"): c for c in entry.get("conditions") or []}
        for kind in ("Accepted", "ResolvedRefs"):
            condition = conditions.get(kind)
            if condition is None or condition.get("status") != "True":
                detail = f" ({condition.get('reason')}: {condition.get('message')})" if condition else ""
                return f"Gateway {want[1]}/{want[0]} has not set {kind}=True on the HTTPRoute{detail}"
        return None
    return f"Gateway {want[1]}/{want[0]} has not reported on the HTTPRoute yet (is its controller running?)"
