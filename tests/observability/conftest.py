"""A real Prometheus scraping synthetic Envoy/Triton series and our exporter fed by decision records.

The synthetic series carry the same metric names and labels as the real Envoy admin
``/stats/prometheus`` and Triton ``:8002/metrics`` endpoints, at a known load, so queries have
known answers. The embedded run's end-to-end test runs the same checks against the real servers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from infadapter.metrics.decisionlog import DecisionRecord, VariantRecord
from infadapter.metrics.exporter import InfAdapterMetrics
from infadapter.runtime.local.prometheus import PrometheusProcess, find_prometheus

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "manifests" / "dashboards" / "infadapter.json"
RULES = ROOT / "manifests" / "alerts" / "rules.yaml"

NAMESPACE, NAME = "default", "resnet"
LOAD_RPS = 100.0
SHARES = {"resnet50": 0.6, "resnet18": 0.4}
ACCURACY = {"resnet50": 0.7613, "resnet18": 0.69758}
# Envoy's default histogram buckets (ms) and the share of requests at or below each one
ENVOY_BUCKETS_MS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000)
_CUMULATIVE_SHARE = {0.5: 0.0, 1: 0.0, 5: 0.0, 10: 0.0, 25: 0.05, 50: 0.3, 100: 0.6, 250: 0.85, 500: 0.9, 1000: 0.95}
ERROR_SHARE = 0.01  # 5xx
SLO_MS = 500.0  # a bucket boundary: 10 % of requests are slower, 1 % fail


def _share_below(le_ms: float) -> float:
    return _CUMULATIVE_SHARE.get(le_ms, 1.0) if le_ms <= 1000 else 1.0


def _line(metric: str, labels: dict[str, str], value: float) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{metric}{{{inner}}} {value:.6f}" if inner else f"{metric} {value:.6f}"


def _histogram(metric: str, labels: dict[str, str], count: float, mean_ms: float) -> list[str]:
    lines = [_line(f"{metric}_bucket", {**labels, "le": f"{le:g}"}, count * _share_below(le)) for le in ENVOY_BUCKETS_MS]
    lines.append(_line(f"{metric}_bucket", {**labels, "le": "+Inf"}, count))
    lines.append(_line(f"{metric}_sum", labels, count * mean_ms))
    lines.append(_line(f"{metric}_count", labels, count))
    return lines


def envoy_stats(elapsed_s: float) -> str:
    """Envoy admin ``/stats/prometheus`` of one router: ``ingress`` listener + one cluster per variant."""
    requests = LOAD_RPS * elapsed_s
    ingress = {"envoy_http_conn_manager_prefix": "ingress"}
    lines = [
        "# TYPE envoy_http_downstream_rq_total counter",
        _line("envoy_http_downstream_rq_total", ingress, requests),
        _line("envoy_http_downstream_rq_total", {"envoy_http_conn_manager_prefix": "admin"}, 7 * elapsed_s),
        "# TYPE envoy_http_downstream_rq_xx counter",
        _line("envoy_http_downstream_rq_xx", {**ingress, "envoy_response_code_class": "2"}, requests * (1 - ERROR_SHARE)),
        _line("envoy_http_downstream_rq_xx", {**ingress, "envoy_response_code_class": "5"}, requests * ERROR_SHARE),
        "# TYPE envoy_cluster_upstream_rq_total counter",
        *(_line("envoy_cluster_upstream_rq_total", {"envoy_cluster_name": v}, requests * s) for v, s in SHARES.items()),
        "# TYPE envoy_http_downstream_rq_time histogram",
        *_histogram("envoy_http_downstream_rq_time", ingress, requests, 150.0),
        "# TYPE envoy_cluster_upstream_rq_time histogram",
    ]
    for variant, share in SHARES.items():
        lines += _histogram("envoy_cluster_upstream_rq_time", {"envoy_cluster_name": variant}, requests * share, 140.0)
    return "\n".join(lines) + "\n"


def triton_metrics(elapsed_s: float, variant: str) -> str:
    """Triton ``:8002/metrics`` of one variant replica (every variant serves the public model name)."""
    served = LOAD_RPS * SHARES[variant] * elapsed_s * (1 - ERROR_SHARE)
    model = {"model": NAME, "version": "1"}
    lines = []
    for metric, value in (
        ("nv_inference_request_success", served),
        ("nv_inference_count", served),
        ("nv_inference_exec_count", served),
        ("nv_inference_request_duration_us", served * 120_000.0),
        ("nv_inference_queue_duration_us", served * 20_000.0),
    ):
        lines += [f"# TYPE {metric} counter", _line(metric, model, value)]
    lines += ["# TYPE nv_inference_request_failure counter", _line("nv_inference_request_failure", {**model, "reason": "REJECTED"}, 0.0)]
    return "\n".join(lines) + "\n"


def serve_text(render: Callable[[], str]) -> ThreadingHTTPServer:
    """An HTTP server answering every GET (any path) with ``render()`` in the text exposition format."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _plan(big: float) -> dict[str, VariantRecord]:
    return {
        "resnet50": VariantRecord(cpu_cores=big, replicas=1, weight=SHARES["resnet50"], capacity_rps=70.0 * big / 4),
        "resnet18": VariantRecord(cpu_cores=2, replicas=2, weight=SHARES["resnet18"], capacity_rps=60.0),
    }


class DecisionFeeder:
    """Feeds the exporter one decision per service every ``period_s`` (a stand-in for the loop)."""

    def __init__(self, metrics: InfAdapterMetrics, period_s: float = 0.5) -> None:
        self.metrics = metrics
        self.period_s = period_s
        self.stop = threading.Event()
        self.tick = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.feed()
            self.stop.wait(self.period_s)

    def feed(self) -> None:
        now = time.time()
        big = 4.0 if self.tick % 2 == 0 else 5.0
        was = 5.0 if self.tick % 2 == 0 else 4.0
        self.metrics.observe(
            DecisionRecord(
                NAMESPACE,
                NAME,
                now,
                "scale_down" if big < was else "scale_up",
                observed_rps=LOAD_RPS + self.tick % 3,
                forecast_rps=LOAD_RPS * 1.1,
                plan=_plan(big),
                previous_plan=_plan(was),
                accuracy=0.733,
                cost_cpu=big + 4,
                cost_gpu=0,
                cost=big + 4,  # at the default price of a core, 1
                objective=0.61,
                solve_s=0.002 + 0.001 * (self.tick % 5),
                slo_violation_ratio=0.2,
                reconfiguration_s=1.5 + self.tick % 3,
            )
        )
        # a service whose load exceeds its budget, and one whose router metrics are missing
        self.metrics.observe(
            DecisionRecord(
                NAMESPACE,
                "tight",
                now,
                "infeasible",
                observed_rps=900.0,
                forecast_rps=1000.0,
                plan={"resnet18": VariantRecord(20, 1, 1.0, 400.0)},
                previous_plan={"resnet18": VariantRecord(20, 1, 1.0, 400.0)},
                accuracy=0.69758,
                cost_cpu=20,
                cost_gpu=0,
                cost=20,
                objective=0.2,
                solve_s=0.004,
                status="infeasible",
                slo_violation_ratio=0.001,
            )
        )
        self.metrics.observe(
            DecisionRecord(
                NAMESPACE,
                "blind",
                now,
                "metrics_unavailable",
                observed_rps=float("nan"),
                forecast_rps=float("nan"),
            )
        )
        self.tick += 1


@dataclass
class LiveStack:
    prometheus: PrometheusProcess
    metrics: InfAdapterMetrics
    feeder: DecisionFeeder
    start_s: float
    # what the synthetic data says (tests read these instead of importing conftest)
    namespace: str = NAMESPACE
    name: str = NAME
    load_rps: float = LOAD_RPS
    error_share: float = ERROR_SHARE
    shares: dict[str, float] = field(default_factory=lambda: dict(SHARES))
    dashboard: Path = DASHBOARD
    rules: Path = RULES

    @property
    def url(self) -> str:
        return self.prometheus.url


@pytest.fixture(scope="session")
def live_stack() -> Iterator[LiveStack]:
    """Exporter + synthetic Envoy/Triton + a real Prometheus (rules loaded), scraped every second for ~8 s."""
    if find_prometheus() is None:
        pytest.skip("the prometheus binary is absent (apt-get install -y --no-install-recommends prometheus)")
    start_s = time.time() - 30.0
    metrics = InfAdapterMetrics()
    metrics.describe_service(NAMESPACE, NAME, slo_latency_s=SLO_MS / 1000, slo_target_ratio=0.99, variant_accuracy=ACCURACY)
    metrics.describe_service(NAMESPACE, "tight", slo_latency_s=0.75, slo_target_ratio=0.99, variant_accuracy=ACCURACY)
    ours_port = metrics.serve()
    # counters look 30 s old at the first scrape, so rates are defined at once
    envoy = serve_text(lambda: envoy_stats(time.time() - start_s))
    tritons = {variant: serve_text(lambda v=variant: triton_metrics(time.time() - start_s, v)) for variant in SHARES}
    servers = [envoy, *tritons.values()]
    feeder = DecisionFeeder(metrics)
    feeder.thread.start()
    prom = PrometheusProcess(rule_files=[RULES])
    service = {"namespace": NAMESPACE, "name": NAME}
    prom.set_targets("infadapter", "operator", [f"127.0.0.1:{ours_port}"])
    # Envoy serves its Prometheus stats at /stats/prometheus: the synthetic server answers on any path
    prom.set_targets("envoy", f"{NAMESPACE}-{NAME}", [f"127.0.0.1:{envoy.server_port}"], service)
    for variant, server in tritons.items():
        labels = {**service, "variant": variant}
        prom.set_targets("triton", f"{NAMESPACE}-{NAME}-{variant}", [f"127.0.0.1:{server.server_port}"], labels)
    prom.start()
    try:
        prom.wait_for_targets(count=2 + len(tritons), timeout_s=30)
        time.sleep(4.0)  # a few scrapes and rule evaluations
        yield LiveStack(prom, metrics, feeder, start_s)
    finally:
        feeder.stop.set()
        feeder.thread.join(timeout=5)
        prom.stop()
        metrics.close()
        for server in servers:
            server.shutdown()
            server.server_close()
