"""Our own Prometheus metrics (prometheus_client), fed by :class:`DecisionRecord` objects.

Names follow ``infadapter_<noun>_<unit>[_total]`` in base units; labels are ``namespace``,
``name`` and, per variant, ``variant`` — plus ``reason`` on the decision counter, whose six values
are fixed (:data:`~infadapter.metrics.decisionlog.DECISION_REASONS`). A service's label sets are
removed by :meth:`InfAdapterMetrics.forget`; a variant's by the first decision whose plan leaves it out.

Each instance owns a private :class:`~prometheus_client.CollectorRegistry` (several may live in one
process, e.g. in tests); :meth:`InfAdapterMetrics.serve` exposes it over HTTP.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

from infadapter.metrics.decisionlog import DECISION_REASONS, DecisionRecord
from infadapter.spec import InferenceServiceSpec

SERVICE_LABELS = ("namespace", "name")
VARIANT_LABELS = ("namespace", "name", "variant")

SOLVER_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RECONFIGURATION_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)


@dataclass(frozen=True)
class MetricInfo:
    name: str
    kind: str
    labels: tuple[str, ...]
    help: str


#: every metric this module exports (the docs table and the tests are generated from it)
METRICS: tuple[MetricInfo, ...] = (
    MetricInfo("infadapter_observed_load_rps", "gauge", SERVICE_LABELS, "Arrival rate measured at the router."),
    MetricInfo("infadapter_predicted_load_rps", "gauge", SERVICE_LABELS, "Load the plan was sized for (forecast)."),
    MetricInfo(
        "infadapter_forecast_error_rps",
        "gauge",
        SERVICE_LABELS,
        "Observed load minus the forecast made at the previous decision (positive = under-predicted).",
    ),
    MetricInfo("infadapter_expected_accuracy_ratio", "gauge", SERVICE_LABELS, "Weight-averaged declared accuracy of the plan."),
    MetricInfo("infadapter_cost_cpu_cores", "gauge", SERVICE_LABELS, "CPU cores allocated by the plan, all variants and replicas."),
    MetricInfo("infadapter_cost_gpu_devices", "gauge", SERVICE_LABELS, "GPUs of every accelerator type allocated by the plan."),
    MetricInfo("infadapter_cost_price", "gauge", SERVICE_LABELS, "Price of the plan's cores and GPUs at the spec's prices (budget.cpuPrice, accelerators)."),
    MetricInfo("infadapter_plan_objective", "gauge", SERVICE_LABELS, "Objective value of the plan (accuracy - cost - transition terms)."),
    MetricInfo("infadapter_plan_feasible", "gauge", SERVICE_LABELS, "1 when the last solve was optimal, 0 when infeasible (best effort)."),
    MetricInfo("infadapter_solver_duration_seconds", "histogram", SERVICE_LABELS, "Wall time of one solve."),
    MetricInfo("infadapter_decisions_total", "counter", (*SERVICE_LABELS, "reason"), "Decisions taken, by reason."),
    MetricInfo("infadapter_last_decision_timestamp_seconds", "gauge", SERVICE_LABELS, "Time of the last decision (Unix seconds)."),
    MetricInfo(
        "infadapter_reconfiguration_duration_seconds",
        "histogram",
        SERVICE_LABELS,
        "Time from a new plan to all its instances ready and weights applied.",
    ),
    MetricInfo(
        "infadapter_slo_violation_ratio",
        "gauge",
        SERVICE_LABELS,
        "Requests over the latency SLO plus failed requests, over all requests, measured at the router.",
    ),
    MetricInfo("infadapter_slo_latency_seconds", "gauge", SERVICE_LABELS, "The latency SLO of the service."),
    MetricInfo("infadapter_slo_target_ratio", "gauge", SERVICE_LABELS, "Share of requests that must meet the SLO (percentile / 100)."),
    MetricInfo("infadapter_planned_cpu_cores", "gauge", VARIANT_LABELS, "CPU cores planned for the variant, all replicas."),
    MetricInfo("infadapter_planned_replicas", "gauge", VARIANT_LABELS, "Replicas planned for the variant."),
    MetricInfo("infadapter_planned_weight_ratio", "gauge", VARIANT_LABELS, "Share of requests routed to the variant."),
    MetricInfo("infadapter_planned_capacity_rps", "gauge", VARIANT_LABELS, "Capacity of the variant at the SLO, all replicas."),
    MetricInfo("infadapter_variant_accuracy_ratio", "gauge", VARIANT_LABELS, "Declared accuracy of the variant."),
    MetricInfo("infadapter_shadow_current_cost_cpu_cores", "gauge", SERVICE_LABELS, "Shadow mode: CPU cores of the configuration the service runs now."),
    MetricInfo(
        "infadapter_shadow_current_accuracy_ratio", "gauge", SERVICE_LABELS, "Shadow mode: accuracy of the current configuration at the predicted load."
    ),
    MetricInfo(
        "infadapter_shadow_current_capacity_rps", "gauge", SERVICE_LABELS, "Shadow mode: capacity of the current configuration at the SLO (by the profile)."
    ),
)

_PLANNED = ("infadapter_planned_cpu_cores", "infadapter_planned_replicas", "infadapter_planned_weight_ratio", "infadapter_planned_capacity_rps")


class InfAdapterMetrics:
    """The exporter. Thread-safe: the HTTP thread reads while the loop writes."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self._gauges: dict[str, Gauge] = {}
        self._histograms: dict[str, Histogram] = {}
        for info in METRICS:
            # prometheus_client appends _total / _seconds suffix handling itself: pass the base name
            if info.kind == "gauge":
                self._gauges[info.name] = Gauge(info.name, info.help, info.labels, registry=self.registry)
            elif info.kind == "histogram":
                buckets = SOLVER_BUCKETS_S if "solver" in info.name else RECONFIGURATION_BUCKETS_S
                self._histograms[info.name] = Histogram(info.name, info.help, info.labels, buckets=buckets, registry=self.registry)
            else:
                self._decisions = Counter(info.name.removesuffix("_total"), info.help, info.labels, registry=self.registry)
        self._variants: dict[tuple[str, str], set[str]] = {}
        self._accuracy_variants: dict[tuple[str, str], set[str]] = {}
        self._services: set[tuple[str, str]] = set()
        self._last_forecast: dict[tuple[str, str], float] = {}
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- inputs --

    def _touch(self, namespace: str, name: str) -> None:
        """First sight of a service: create its decision counters at 0 so rate() has a baseline."""
        key = (namespace, name)
        if key not in self._services:
            self._services.add(key)
            for reason in DECISION_REASONS:
                self._decisions.labels(namespace, name, reason)

    def describe_service(
        self,
        namespace: str,
        name: str,
        *,
        slo_latency_s: float,
        slo_target_ratio: float,
        variant_accuracy: Mapping[str, float],
    ) -> None:
        """Static facts from the spec: the SLO and each variant's declared accuracy (fraction)."""
        with self._lock:
            self._touch(namespace, name)
            self._gauges["infadapter_slo_latency_seconds"].labels(namespace, name).set(slo_latency_s)
            self._gauges["infadapter_slo_target_ratio"].labels(namespace, name).set(slo_target_ratio)
            accuracy = self._gauges["infadapter_variant_accuracy_ratio"]
            before = self._accuracy_variants.get((namespace, name), set())
            for variant in before - set(variant_accuracy):
                accuracy.remove(namespace, name, variant)
            for variant, value in variant_accuracy.items():
                accuracy.labels(namespace, name, variant).set(value)
            self._accuracy_variants[(namespace, name)] = set(variant_accuracy)

    def describe_spec(self, namespace: str, name: str, spec: InferenceServiceSpec) -> None:
        """:meth:`describe_service` from the InferenceService spec (SLO, percentile, declared accuracies)."""
        self.describe_service(
            namespace,
            name,
            slo_latency_s=spec.slo.latency_ms / 1000.0,
            slo_target_ratio=spec.slo.percentile / 100.0,
            variant_accuracy={v.name: v.accuracy for v in spec.units},
        )

    def observe(self, record: DecisionRecord) -> None:
        """Export one decision."""
        ns, name = record.namespace, record.name
        key = (ns, name)
        g = self._gauges
        with self._lock:
            self._touch(ns, name)
            self._decisions.labels(ns, name, record.reason).inc()
            g["infadapter_last_decision_timestamp_seconds"].labels(ns, name).set(record.now_s)
            if record.slo_violation_ratio is not None:
                g["infadapter_slo_violation_ratio"].labels(ns, name).set(record.slo_violation_ratio)
            if record.reconfiguration_s is not None:
                self._histograms["infadapter_reconfiguration_duration_seconds"].labels(ns, name).observe(record.reconfiguration_s)
            if record.reason == "metrics_unavailable":
                # keep the last plan's gauges; the load is unknown, so say so
                g["infadapter_observed_load_rps"].labels(ns, name).set(math.nan)
                return
            g["infadapter_observed_load_rps"].labels(ns, name).set(record.observed_rps)
            g["infadapter_predicted_load_rps"].labels(ns, name).set(record.forecast_rps)
            previous_forecast = self._last_forecast.get(key)
            if previous_forecast is not None and not math.isnan(previous_forecast):
                g["infadapter_forecast_error_rps"].labels(ns, name).set(record.observed_rps - previous_forecast)
            self._last_forecast[key] = record.forecast_rps
            g["infadapter_expected_accuracy_ratio"].labels(ns, name).set(record.accuracy)
            g["infadapter_cost_cpu_cores"].labels(ns, name).set(record.cost_cpu)
            g["infadapter_cost_gpu_devices"].labels(ns, name).set(record.cost_gpu)
            g["infadapter_cost_price"].labels(ns, name).set(record.cost)
            g["infadapter_plan_objective"].labels(ns, name).set(record.objective)
            g["infadapter_plan_feasible"].labels(ns, name).set(1.0 if record.status == "optimal" else 0.0)
            if record.solve_s is not None:
                self._histograms["infadapter_solver_duration_seconds"].labels(ns, name).observe(record.solve_s)
            self._set_plan(ns, name, record)

    def observe_shadow(self, namespace: str, name: str, *, cost_cpu: float, accuracy: float, capacity_rps: float) -> None:
        """Shadow mode: the configuration the service runs now (compare with the ``infadapter_*`` plan gauges)."""
        g = self._gauges
        with self._lock:
            self._touch(namespace, name)
            g["infadapter_shadow_current_cost_cpu_cores"].labels(namespace, name).set(cost_cpu)
            g["infadapter_shadow_current_accuracy_ratio"].labels(namespace, name).set(accuracy)
            g["infadapter_shadow_current_capacity_rps"].labels(namespace, name).set(capacity_rps)

    def _set_plan(self, ns: str, name: str, record: DecisionRecord) -> None:
        g = self._gauges
        for variant in self._variants.get((ns, name), set()) - set(record.plan):
            for metric in _PLANNED:
                g[metric].remove(ns, name, variant)
        for variant, v in record.plan.items():
            g["infadapter_planned_cpu_cores"].labels(ns, name, variant).set(v.total_cpu_cores)
            g["infadapter_planned_replicas"].labels(ns, name, variant).set(v.replicas)
            g["infadapter_planned_weight_ratio"].labels(ns, name, variant).set(v.weight)
            g["infadapter_planned_capacity_rps"].labels(ns, name, variant).set(v.capacity_rps)
        self._variants[(ns, name)] = set(record.plan)

    def observe_reconfiguration(self, namespace: str, name: str, duration_s: float) -> None:
        """A reconfiguration finished (new instances ready, weights applied, old ones drained)."""
        with self._lock:
            self._touch(namespace, name)
            self._histograms["infadapter_reconfiguration_duration_seconds"].labels(namespace, name).observe(duration_s)

    def forget(self, namespace: str, name: str) -> None:
        """The service was deleted: remove every label set it had."""
        key = (namespace, name)
        with self._lock:
            variants = self._variants.pop(key, set()) | self._accuracy_variants.pop(key, set())
            for info in METRICS:
                metric = self._gauges.get(info.name) or self._histograms.get(info.name)
                if info.labels == VARIANT_LABELS and metric is not None:
                    for variant in variants:
                        _remove_quietly(metric, namespace, name, variant)
                elif info.labels == SERVICE_LABELS and metric is not None:
                    _remove_quietly(metric, namespace, name)
            for reason in DECISION_REASONS:
                _remove_quietly(self._decisions, namespace, name, reason)
            self._services.discard(key)
            self._last_forecast.pop(key, None)

    # -- outputs --

    def render(self) -> bytes:
        """The text exposition format (what ``/metrics`` returns)."""
        return generate_latest(self.registry)

    def serve(self, port: int = 0, addr: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on a background thread; returns the bound port (``0`` = pick a free one)."""
        if self._server is not None:
            raise RuntimeError("already serving")
        self._server, self._thread = start_http_server(port, addr, registry=self.registry)
        return int(self._server.server_port)

    def close(self) -> None:
        """Stop the HTTP server started by :meth:`serve`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = None
            self._thread = None


def _remove_quietly(metric: Gauge | Histogram | Counter, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # that label set was never created: nothing to remove
        metric.remove(*labels)
