"""The Envoy configuration both actuators build (pure): bootstrap, endpoint assignments, integer weights.

* one listener on ``listen_address:listen_port`` whose single route splits requests across the
  variants' clusters with ``weighted_clusters``; its ``runtime_key_prefix`` makes the weight of
  cluster ``resnet18`` the runtime key ``<prefix>.resnet18``, changed live through the admin
  ``/runtime_modify`` endpoint (no restart, no dropped request);
* one cluster per variant, named after it (Prometheus copies ``envoy_cluster_name`` into ``variant``),
  whose endpoints come from a file (EDS over a path, swapped atomically): priority 0 holds the variant's
  own instances, priority 1 every other ready instance. A retry of a request whose connection failed
  or was reset goes to another priority (``previous_priorities``), so a crashed instance's requests are
  served by a healthy one instead of failing, and a variant with no ready instance spills to the others;
* the admin interface on 127.0.0.1 only; its ``/stats/prometheus`` is the load signal, with latency
  histogram buckets that include the SLO so the violation ratio is exact.

The local actuator runs it as a process (:mod:`infadapter.runtime.local.envoy`); the Kubernetes one
rewrites its clusters to DNS ones in a ConfigMap (:mod:`infadapter.runtime.kube.router`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WEIGHT_SCALE = 10_000  # integer runtime weights: 1.0 -> 10000
STAT_PREFIX = "ingress"
RUNTIME_PREFIX = "infadapter.weights"
DEFAULT_BUCKETS_MS = (1, 2, 5, 10, 25, 50, 75, 100, 150, 200, 250, 300, 400, 500, 750, 1000, 1500, 2500, 5000, 10000, 30000)


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def integer_weights(weights: Mapping[str, float], clusters: Sequence[str]) -> dict[str, int]:
    """Fractions -> integers summing to :data:`WEIGHT_SCALE` (largest remainder); all-zero -> equal split."""
    raw = {c: max(0.0, float(weights.get(c, 0.0))) for c in clusters}
    total = sum(raw.values())
    if total <= 0:
        raw = dict.fromkeys(clusters, 1.0)
        total = float(len(clusters))
    exact = {c: WEIGHT_SCALE * v / total for c, v in raw.items()}
    result = {c: int(v) for c, v in exact.items()}
    leftover = WEIGHT_SCALE - sum(result.values())
    for c in sorted(clusters, key=lambda c: exact[c] - result[c], reverse=True)[:leftover]:
        result[c] += 1
    return result


def runtime_weights_from(answer: Any, clusters: Sequence[str] | None = None, prefix: str = RUNTIME_PREFIX) -> dict[str, int]:
    """The weights Envoy applies, from its admin ``/runtime`` answer (JSON text, bytes or parsed): ``{cluster: weight}``.

    Only keys set in a runtime layer appear (a cluster without one runs its configured default weight);
    ``clusters`` keeps those named. Raises ValueError when the answer is not Envoy's ``/runtime`` JSON.
    """
    data = json.loads(answer) if isinstance(answer, str | bytes) else answer
    entries = data.get("entries") if isinstance(data, Mapping) else None
    if not isinstance(entries, Mapping):
        raise ValueError("not an Envoy /runtime answer: no 'entries' object")
    wanted = None if clusters is None else set(clusters)
    out: dict[str, int] = {}
    for key, entry in entries.items():
        if not str(key).startswith(f"{prefix}.") or not isinstance(entry, Mapping):
            continue
        cluster = str(key)[len(prefix) + 1 :]
        if wanted is not None and cluster not in wanted:
            continue
        try:
            out[cluster] = int(str(entry.get("final_value", "")).strip())
        except ValueError:
            raise ValueError(f"runtime key {key} holds {entry.get('final_value')!r}, not an integer weight") from None
    return out


def load_assignment(cluster: str, own: Sequence[Endpoint], fallback: Sequence[Endpoint]) -> dict[str, Any]:
    """The ClusterLoadAssignment of one variant: its instances at priority 0, the others at priority 1."""

    def lb(endpoints: Sequence[Endpoint]) -> list[dict[str, Any]]:
        return [{"endpoint": {"address": {"socket_address": {"address": e.host, "port_value": e.port}}}} for e in endpoints]

    endpoints: list[dict[str, Any]] = [{"priority": 0, "lb_endpoints": lb(own)}]
    if fallback:
        endpoints.append({"priority": 1, "lb_endpoints": lb(fallback)})
    return {
        "resources": [
            {
                "@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
                "cluster_name": cluster,
                "endpoints": endpoints,
            }
        ]
    }


def _weighted_route(clusters: Sequence[str], weights: Mapping[str, int], runtime_prefix: str, route_timeout_s: float, retries: int) -> dict[str, Any]:
    """The single route: weighted clusters (live weights under ``runtime_prefix``), retried on another priority."""
    return {
        "match": {"prefix": "/"},
        "route": {
            "weighted_clusters": {
                "runtime_key_prefix": runtime_prefix,
                "clusters": [{"name": c, "weight": weights[c]} for c in clusters],
            },
            "timeout": f"{route_timeout_s:g}s",
            "retry_policy": {
                "retry_on": "connect-failure,refused-stream,reset",
                "num_retries": retries,
                "retry_priority": {
                    "name": "envoy.retry_priorities.previous_priorities",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
                        "update_frequency": 1,
                    },
                },
                "retry_host_predicate": [
                    {
                        "name": "envoy.retry_host_predicates.previous_hosts",
                        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"},
                    }
                ],
                "host_selection_retry_max_attempts": 3,
            },
        },
    }


#: one JSON line per request in the access log: when it arrived, which variant's cluster the split chose and which
#: server answered (another variant's when a retry spilled over), its time in Envoy and in the server
ACCESS_LOG_FORMAT = {
    "start_s": "%START_TIME(%s.%6f)%",
    "cluster": "%UPSTREAM_CLUSTER%",
    "host": "%UPSTREAM_HOST%",
    "status": "%RESPONSE_CODE%",
    "flags": "%RESPONSE_FLAGS%",
    "attempts": "%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
    "duration_ms": "%DURATION%",
    "upstream_ms": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
}


def _connection_manager(route: Mapping[str, Any], access_log: Path | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": STAT_PREFIX,
        "codec_type": "AUTO",
        "route_config": {"name": "infadapter", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [route]}]},
        "http_filters": [
            {"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
        ],
    }
    if access_log is not None:
        out["access_log"] = [
            {
                "name": "envoy.access_loggers.file",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                    "path": str(access_log),
                    "log_format": {"json_format": ACCESS_LOG_FORMAT},
                },
            }
        ]
    return out


def _eds_cluster(name: str, eds_dir: Path, limits: Mapping[str, int]) -> dict[str, Any]:
    """A variant's cluster, its endpoints read from ``<eds_dir>/<name>.json``: circuit breakers far above Envoy's
    defaults (1024 requests would be refused under a load the servers carry), no panic routing (a variant
    with no healthy host spills to the next priority instead)."""
    return {
        "name": name,
        "type": "EDS",
        "connect_timeout": "1s",
        "lb_policy": "LEAST_REQUEST",
        "eds_cluster_config": {"eds_config": {"resource_api_version": "V3", "path_config_source": {"path": str(eds_dir / f"{name}.json")}}},
        "circuit_breakers": {"thresholds": [limits]},
        "common_lb_config": {"healthy_panic_threshold": {"value": 0.0}},
    }


def envoy_config(
    clusters: Sequence[str],
    weights: Mapping[str, float],
    *,
    listen_port: int,
    admin_port: int,
    eds_dir: Path,
    listen_address: str = "127.0.0.1",
    runtime_prefix: str = RUNTIME_PREFIX,
    buckets_ms: Sequence[float] = DEFAULT_BUCKETS_MS,
    slo_ms: float | None = None,
    route_timeout_s: float = 30.0,
    retries: int = 2,
    access_log: Path | None = None,
) -> dict[str, Any]:
    """The bootstrap (pure): listener + weighted route, EDS-from-file clusters, admin on 127.0.0.1; with
    ``access_log``, a JSON line per request written there (:data:`ACCESS_LOG_FORMAT`)."""
    if not clusters:
        raise ValueError("at least one cluster is needed")
    buckets = sorted({float(b) for b in buckets_ms} | ({float(slo_ms)} if slo_ms else set()))
    route = _weighted_route(clusters, integer_weights(weights, clusters), runtime_prefix, route_timeout_s, retries)
    hcm = _connection_manager(route, access_log)
    # one limits object shared by every cluster: YAML writes it once and refers to it (the router's ConfigMap
    # stays linear and small in the variants)
    limits = {"max_connections": 100_000, "max_pending_requests": 100_000, "max_requests": 100_000, "max_retries": 1_000}
    cluster_defs = [_eds_cluster(c, eds_dir, limits) for c in clusters]
    return {
        "node": {"id": "infadapter", "cluster": "infadapter"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "layered_runtime": {"layers": [{"name": "static", "static_layer": {}}, {"name": "admin", "admin_layer": {}}]},
        "stats_config": {"histogram_bucket_settings": [{"match": {"safe_regex": {"regex": ".*rq_time$"}}, "buckets": buckets}]},
        "static_resources": {
            "listeners": [
                {
                    "name": "ingress",
                    "address": {"socket_address": {"address": listen_address, "port_value": listen_port}},
                    "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
                }
            ],
            "clusters": cluster_defs,
        },
    }
