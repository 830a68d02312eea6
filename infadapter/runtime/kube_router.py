"""The router of one InferenceService as Kubernetes objects (pure): Envoy bootstrap, weights, Gateway API.

* ``S-router`` ConfigMap: the embedded mode's Envoy bootstrap (:func:`infadapter.runtime.envoy.envoy_config`)
  with one STRICT_DNS cluster per variant Service (its own Service first, the others as a fallback priority),
  admin on 127.0.0.1 and a second listener that forwards only ``GET /stats/prometheus`` for Prometheus;
* ``S-router-weights`` ConfigMap: integer weights per variant, mounted into the router pod where the
  ``weights`` sidecar posts them to the pod-local admin ``/runtime_modify`` (live, no restart);
* ``S-router`` Deployment and Service; or, with ``routing.kind: GatewayAPI``, a weighted ``HTTPRoute``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import yaml

from infadapter.runtime.envoy import RUNTIME_PREFIX, envoy_config
from infadapter.runtime.kube import (
    ENVOY_ADMIN_PORT,
    HTTP_PORT,
    ROUTER_FILTER,
    ROUTER_METRICS_PORT,
    ROUTER_PORT,
    WEIGHTS_DIR,
    Images,
    Obj,
    Owner,
    labels,
    metadata,
    object_name,
    pod_security,
    restricted_security,
    selector,
)
from infadapter.spec import InferenceServiceSpec


def router_bootstrap(owner: Owner, spec: InferenceServiceSpec) -> Obj:
    """Envoy bootstrap: the embedded mode's config, with Service DNS clusters and a stats-only listener."""
    names = spec.variant_names
    config = envoy_config(
        names, {}, listen_port=ROUTER_PORT, admin_port=ENVOY_ADMIN_PORT, eds_dir=Path("/unused"), listen_address="0.0.0.0", slo_ms=spec.slo.latency_ms
    )
    resources = config["static_resources"]
    for cluster in resources["clusters"]:
        variant = cluster["name"]
        own = f"{object_name(owner.name, variant)}.{owner.namespace}.svc.cluster.local"
        others = [f"{object_name(owner.name, n)}.{owner.namespace}.svc.cluster.local" for n in names if n != variant]
        cluster.pop("eds_cluster_config")
        cluster["type"] = "STRICT_DNS"
        cluster["dns_lookup_family"] = "V4_ONLY"
        endpoints = [{"priority": 0, "lb_endpoints": [_endpoint(own, HTTP_PORT)]}]
        if others:
            endpoints.append({"priority": 1, "lb_endpoints": [_endpoint(h, HTTP_PORT) for h in others]})
        cluster["load_assignment"] = {"cluster_name": variant, "endpoints": endpoints}
    admin_endpoints = [{"lb_endpoints": [_endpoint("127.0.0.1", ENVOY_ADMIN_PORT)]}]
    resources["clusters"].append(
        {"name": "envoy-admin", "type": "STATIC", "connect_timeout": "1s", "load_assignment": {"cluster_name": "envoy-admin", "endpoints": admin_endpoints}}
    )
    # Prometheus scrapes this listener; it forwards GET /stats/prometheus to the admin and nothing else.
    # Its stat prefix is "admin" so that the load queries (envoy_http_conn_manager_prefix!="admin") skip scrapes.
    only_get = [{"name": ":method", "string_match": {"exact": "GET"}}]
    stats_route = {"match": {"path": "/stats/prometheus", "headers": only_get}, "route": {"cluster": "envoy-admin"}}
    deny = {"match": {"prefix": "/"}, "direct_response": {"status": 404}}
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "admin",
        "route_config": {"name": "stats", "virtual_hosts": [{"name": "stats", "domains": ["*"], "routes": [stats_route, deny]}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_FILTER}}],
    }
    resources["listeners"].append(
        {
            "name": "metrics",
            "address": {"socket_address": {"address": "0.0.0.0", "port_value": ROUTER_METRICS_PORT}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
        }
    )
    return config


def _endpoint(host: str, port: int) -> Obj:
    return {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}


def router_configmap(owner: Owner, spec: InferenceServiceSpec) -> Obj:
    text = yaml.safe_dump(router_bootstrap(owner, spec), sort_keys=False)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(owner, object_name(owner.name, "router"), "router"), "data": {"envoy.yaml": text}}


def weights_configmap(owner: Owner, weights: Mapping[str, int]) -> Obj:
    data = {name: str(int(w)) for name, w in sorted(weights.items())}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(owner, object_name(owner.name, "router-weights"), "router"), "data": data}


#: the sidecar: re-post the mounted weights to the pod-local admin when they change (and every 30 s,
#: in case Envoy restarted and lost its admin runtime layer)
AGENT_SCRIPT = f"""set -u
last=""; n=0
while true; do
  q=""
  for f in {WEIGHTS_DIR}/*; do [ -f "$f" ] || continue; q="$q&{RUNTIME_PREFIX}.$(basename "$f")=$(cat "$f")"; done
  n=$((n+1))
  if [ -n "$q" ] && {{ [ "$q" != "$last" ] || [ $n -ge 15 ]; }}; then
    curl -fsS -o /dev/null -X POST "http://127.0.0.1:{ENVOY_ADMIN_PORT}/runtime_modify?${{q#&}}" && last="$q" && n=0
  fi
  sleep 2
done
"""


def router_deployment(owner: Owner, spec: InferenceServiceSpec, images: Images, replicas: int = 1) -> Obj:
    config_hash = hashlib.sha256(json.dumps(router_bootstrap(owner, spec), sort_keys=True).encode()).hexdigest()[:16]
    small = {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "32Mi"}}
    envoy = {
        "name": "envoy",
        "image": images.envoy,
        "imagePullPolicy": images.pull_policy,
        "args": ["-c", "/etc/envoy/envoy.yaml", "--disable-hot-restart", "--log-level", "warn"],
        "ports": [{"name": "http", "containerPort": ROUTER_PORT}, {"name": "metrics", "containerPort": ROUTER_METRICS_PORT}],
        "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 2},
        "livenessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"cpu": "2", "memory": "512Mi"}},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/envoy", "readOnly": True}, {"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": restricted_security(),
    }
    agent = {
        "name": "weights",
        "image": images.agent,
        "imagePullPolicy": images.pull_policy,
        "command": ["sh", "-c", AGENT_SCRIPT],
        "resources": small,
        "volumeMounts": [{"name": "weights", "mountPath": WEIGHTS_DIR, "readOnly": True}],
        "securityContext": restricted_security(),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(owner, object_name(owner.name, "router"), "router"),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector(owner, "router")},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels(owner, "router"), "annotations": {"infadapter.io/config-hash": config_hash}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security(101),
                    "containers": [envoy, agent],
                    "volumes": [
                        {"name": "config", "configMap": {"name": object_name(owner.name, "router")}},
                        {"name": "weights", "configMap": {"name": object_name(owner.name, "router-weights")}},
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
            "selector": selector(owner, "router"),
            "ports": [{"name": "http", "port": ROUTER_PORT, "targetPort": "http"}, {"name": "metrics", "port": ROUTER_METRICS_PORT, "targetPort": "metrics"}],
        },
    }


def http_route(owner: Owner, spec: InferenceServiceSpec, weights: Mapping[str, int]) -> Obj:
    """Gateway API routing: one rule, a weighted backendRef per variant Service."""
    gateway = spec.routing.gateway_ref or "gateway"
    gw_name, _, gw_namespace = gateway.partition(".")
    parent: Obj = {"name": gw_name}
    if gw_namespace:
        parent["namespace"] = gw_namespace
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": metadata(owner, owner.name, "route"),
        "spec": {
            "parentRefs": [parent],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"name": object_name(owner.name, v), "port": HTTP_PORT, "weight": int(weights.get(v, 0))} for v in spec.variant_names],
                }
            ],
        },
    }
