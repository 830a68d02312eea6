"""Helpers for the real-control-plane tier: the admin client, fake nodes, the chart, the operator process,
and a router-shaped exporter that a real Prometheus scrapes.

The operator runs as a child process (``python -m infadapter operator``) with a kubeconfig holding a
TokenRequest token of the chart's ServiceAccount, so the chart's RBAC is what it gets.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client, config

from tests.cluster.controlplane import FAKE_NODE_ANNOTATION, ControlPlane

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "manifests" / "chart"
RELEASE, RELEASE_NAMESPACE, OPERATOR_SA = "infadapter", "infadapter-system", "infadapter"
GROUP, VERSION, PLURAL = "infadapter.io", "v1alpha1", "inferenceservices"
T = TypeVar("T")

#: a synthetic capacity profile (rps at the SLO by cores): "small" is cheap, "large" accurate
PROFILE: dict[str, Any] = {
    "kind": "Profile",
    "sloMs": 500,
    "percentile": 99,
    "variants": {
        "small": [{"cpu": 1, "capacityRps": 10}, {"cpu": 2, "capacityRps": 20}, {"cpu": 4, "capacityRps": 40}],
        "large": [{"cpu": 1, "capacityRps": 4}, {"cpu": 2, "capacityRps": 8}, {"cpu": 4, "capacityRps": 16}],
    },
}


def wait_for(predicate: Callable[[], T], timeout_s: float = 60.0, interval_s: float = 0.25, what: str | Callable[[], str] = "") -> T:
    """Poll ``predicate`` until it is truthy; ``what`` (or what it returns, called at the timeout) explains a failure."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    explain = what() if callable(what) else what
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {explain or predicate}; last value: {last!r}")


class Admin:
    """The admin's view of the cluster (kubernetes client), with the few verbs tests need."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.api = config.new_client_from_config(config_file=str(plane.kubeconfig("admin")))
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    def create_fake_nodes(self, count: int = 3, cpu: str = "64", memory: str = "256Gi", gpus: int = 4) -> list[str]:
        names = []
        for i in range(count):
            name = f"kwok-node-{i}"
            capacity = {"cpu": cpu, "memory": memory, "pods": "250"}
            if gpus and i == 0:
                capacity["nvidia.com/gpu"] = str(gpus)
            body = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "annotations": {FAKE_NODE_ANNOTATION: "fake"}, "labels": {"type": "kwok", "kubernetes.io/hostname": name}},
                "status": {"capacity": capacity, "allocatable": capacity},
            }
            self.core.create_node(body)
            names.append(name)
        wait_for(lambda: all(self._node_ready(n) for n in names), 60, what="kwok to make the nodes Ready")
        return names

    def _node_ready(self, name: str) -> bool:
        node = self.core.read_node(name)
        return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])

    def namespace(self, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.core.create_namespace({"metadata": {"name": name}})
        wait_for(lambda: self._has_default_sa(name), 30, what=f"the default ServiceAccount in {name}")
        return name

    def _has_default_sa(self, namespace: str) -> bool:
        return any(sa.metadata.name == "default" for sa in self.core.list_namespaced_service_account(namespace).items)

    def put_profile(self, namespace: str, service: str, profile: Mapping[str, Any] = PROFILE) -> None:
        body = {"metadata": {"name": f"{service}-profile"}, "data": {"profile.yaml": yaml.safe_dump(dict(profile))}}
        self.core.create_namespaced_config_map(namespace, body)

    def create_service(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, dict(body))
        return result

    def get_service(self, namespace: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        return result

    def patch_service(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, dict(patch))
        return result

    def condition(self, namespace: str, name: str, kind: str) -> dict[str, Any] | None:
        for cond in self.get_service(namespace, name).get("status", {}).get("conditions", []):
            if cond.get("type") == kind:
                return dict(cond)
        return None

    def deployments(self, namespace: str, service: str) -> dict[str, Any]:
        items = self.apps.list_namespaced_deployment(namespace, label_selector=f"infadapter.io/service={service}").items
        return {d.metadata.name: d for d in items}

    def pods(self, namespace: str, service: str, variant: str) -> list[Any]:
        selector = f"infadapter.io/service={service},infadapter.io/variant={variant}"
        return [p for p in self.core.list_namespaced_pod(namespace, label_selector=selector).items if p.metadata.deletion_timestamp is None]

    def token(self, namespace: str = RELEASE_NAMESPACE, account: str = OPERATOR_SA, seconds: int = 7200) -> str:
        request = {"spec": {"audiences": [], "expirationSeconds": seconds}}
        return str(self.core.create_namespaced_service_account_token(account, namespace, request).status.token)


def service_body(name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "modelName": "demo",
        "variants": [
            {"name": "small", "accuracy": 0.70, "loadTimeSeconds": 1, "source": {"uri": "file:///models/small"}},
            {"name": "large", "accuracy": 0.80, "loadTimeSeconds": 2, "source": {"uri": "file:///models/large"}},
        ],
        "slo": {"latencyMs": 500},
        "budget": {"cpu": 8},
        "resources": {"cpuStep": 1, "minCpu": 1, "maxCpu": 4, "maxReplicas": 2},
        "forecast": {"model": "last", "windowSeconds": 10, "horizonSeconds": 5},
        "adaptation": {"intervalSeconds": 2, "scaleDownStabilizationSeconds": 0},
        "mode": "Auto",
    }
    body.update(spec)
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "InferenceService", "metadata": {"name": name}, "spec": body}


# --------------------------------------------------------------------------- Helm


def helm_config(plane: ControlPlane, namespace: str = RELEASE_NAMESPACE) -> Any:
    import helm_python

    return helm_python.Config(kubeconfig_path=str(plane.kubeconfig("admin")), namespace=namespace)


def chart_values(**extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"image": {"repository": "registry.example/infadapter", "tag": "test"}}
    values.update(extra)
    return values


# --------------------------------------------------------------------------- the router's counters


class ArrivalExporter:
    """Serves ``envoy_http_downstream_rq_total`` per service (our router's), or Triton's
    ``nv_inference_request_success`` (``servers=True``: a service behind a Gateway), growing at a rate the test
    sets (rps). The counter is the integral of the rate over wall time, computed when scraped: no thread ticks it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str, bool], tuple[float, float, float]] = {}  # -> (count at t0, t0, rps)
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                data = exporter.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a scrape that timed out left
                    self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def set_rate(self, namespace: str, name: str, rps: float, *, servers: bool = False) -> None:
        now = time.time()
        with self._lock:
            count, t0, old = self._series.get((namespace, name, servers), (0.0, now, 0.0))
            self._series[(namespace, name, servers)] = (count + old * (now - t0), now, rps)

    def exposition(self) -> str:
        now = time.time()
        router, servers = ["# TYPE envoy_http_downstream_rq_total counter"], ["# TYPE nv_inference_request_success counter"]
        with self._lock:
            for (namespace, name, behind_gateway), (count, t0, rps) in sorted(self._series.items()):
                value = int(count + rps * (now - t0))
                if behind_gateway:  # one Triton pod's counter, labelled as the chart's PodMonitor labels it
                    labels = f'namespace="{namespace}",name="{name}",variant="small",model="demo",version="1"'
                    servers.append(f"nv_inference_request_success{{{labels}}} {value}")
                else:
                    labels = f'namespace="{namespace}",name="{name}",envoy_http_conn_manager_prefix="ingress"'
                    router.append(f"envoy_http_downstream_rq_total{{{labels}}} {value}")
        return "\n".join(router + servers) + "\n"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------- the operator


class OperatorProcess:
    """``python -m infadapter operator`` as the chart's ServiceAccount; its log is kept for assertions."""

    def __init__(self, plane: ControlPlane, admin: Admin, prometheus_url: str, workdir: Path, *, args: tuple[str, ...] = ("--standalone",), **env: str) -> None:
        self.plane, self.admin, self.workdir = plane, admin, workdir
        self.args = args
        self.env = {
            "INFADAPTER_PROMETHEUS_URL": prometheus_url,
            "INFADAPTER_TIMER_RESOLUTION_S": "0.5",
            "INFADAPTER_SCRAPE_INTERVAL_S": "1",
            "INFADAPTER_PROMETHEUS_TIMEOUT_S": "2",
            **env,
        }
        self.log = workdir / f"operator-{uuid.uuid4().hex[:6]}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{RELEASE_NAMESPACE}:{OPERATOR_SA}"

    def start(self) -> OperatorProcess:
        kubeconfig = self.plane.write_token_kubeconfig(self.workdir / f"sa-{uuid.uuid4().hex[:6]}.kubeconfig", self.admin.token())
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INFADAPTER_", "KUBECONFIG"))}
        env.update(self.env, KUBECONFIG=str(kubeconfig), PYTHONUNBUFFERED="1")
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "infadapter", "operator", *self.args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
                start_new_session=True,
            )
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def forbidden(self) -> list[str]:
        """Lines of the log where the apiserver answered 403 (a verb the chart does not grant)."""
        return [line for line in self.output().splitlines() if "403" in line or "forbidden" in line.lower()]


def status_json(obj: Mapping[str, Any]) -> str:
    """The status in a few lines: the plan, then one line per condition."""
    status = dict(obj.get("status", {}))
    lines = [f"summary={status.get('summary')} load={status.get('observedLoadRps')} forecast={status.get('predictedLoadRps')}"]
    lines += [f"  {c.get('type')}={c.get('status')} {c.get('reason')}: {c.get('message')}" for c in status.get("conditions", [])]
    return "\n".join(lines)
