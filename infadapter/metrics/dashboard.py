"""The Grafana dashboard, generated as checked JSON (``manifests/dashboards/infadapter.json``).

Regenerate with ``python -m infadapter.metrics.dashboard > manifests/dashboards/infadapter.json``;
a test fails when the committed file differs. The panel titles in :data:`PANEL_TITLES` are shared
with the run report (:mod:`infadapter.metrics.report`), so the plots tell the same story.

Queries reuse the builders of :mod:`infadapter.metrics.prometheus` with Grafana variables in place of
the namespace and name, so the dashboard and the control loop read the same series.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from infadapter.metrics import prometheus as q

NS, NAME = "$namespace", "$name"
RATE = "$__rate_interval"
SVC = q.selector(NS, NAME)

# Titles shared with the report (keys are stable identifiers).
PANEL_TITLES = {
    "load": "Load vs forecast vs provisioned capacity",
    "cores": "CPU cores per variant",
    "weights": "Traffic share per variant",
    "accuracy": "Expected vs served accuracy",
    "latency": "Latency p50 / p99 vs SLO",
    "violations": "SLO violation ratio",
    "cost": "Cost (CPU cores)",
    "solver": "Solver time",
    "decisions": "Decisions by reason",
    "forecast_error": "Forecast error",
    "replicas": "Replicas per variant",
    "served": "Requests served per variant",
    "reconfiguration": "Reconfiguration time",
    "objective": "Plan objective",
}

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


@dataclass(frozen=True)
class Query:
    """One PromQL query of a panel and the legend of its series."""

    expr: str
    legend: str


def _ours(metric: str) -> str:
    return f"{metric}{{{SVC}}}"


def _panel(
    key: str,
    queries: list[Query],
    *,
    unit: str,
    stacked: bool = False,
    kind: str = "timeseries",
    description: str = "",
    max_value: float | None = None,
) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": unit, "min": 0}
    if max_value is not None:
        defaults["max"] = max_value
    if kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 60 if stacked else 10,
            "stacking": {"mode": "normal" if stacked else "none", "group": "A"},
            "showPoints": "never",
            "spanNulls": True,
        }
    if kind == "barchart-ts":
        kind = "timeseries"
        defaults["custom"] = {"drawStyle": "bars", "fillOpacity": 80, "stacking": {"mode": "normal", "group": "A"}}
    return {
        "type": kind,
        "title": PANEL_TITLES[key],
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "none"},
        },
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": t.expr, "legendFormat": t.legend, "range": True} for i, t in enumerate(queries)
        ],
    }


def _demand_panels() -> list[dict[str, Any]]:
    """What the plan is sized for and what it gives each variant."""
    return [
        _panel(
            "load",
            [
                Query(q.arrival_rate_query(NS, NAME, RATE), "load (router)"),
                Query(_ours("infadapter_predicted_load_rps"), "forecast"),
                Query(f"sum({_ours('infadapter_planned_capacity_rps')})", "provisioned capacity"),
            ],
            unit="reqps",
            description="Arrivals measured at the router, the load the plan was sized for, and the capacity at the SLO of the planned variants.",
        ),
        _panel(
            "cores",
            [
                Query(f"sum by (variant) ({_ours('infadapter_planned_cpu_cores')})", "{{variant}}"),
            ],
            unit="none",
            stacked=True,
            description="Planned CPU cores of each variant, all replicas.",
        ),
        _panel(
            "weights",
            [
                Query(f"sum by (variant) ({_ours('infadapter_planned_weight_ratio')})", "{{variant}}"),
            ],
            unit="percentunit",
            stacked=True,
            max_value=1,
            description="Share of requests the router sends to each variant.",
        ),
        _panel(
            "accuracy",
            [
                Query(_ours("infadapter_expected_accuracy_ratio"), "expected (plan)"),
                Query(q.served_accuracy_query(NS, NAME, RATE), "served (Triton)"),
            ],
            unit="percentunit",
            description="Declared accuracy averaged by planned weights, and by requests actually served by each variant.",
        ),
    ]


def _service_panels() -> list[dict[str, Any]]:
    """How the service meets its SLO, at what cost, and what the solver decides in how long."""
    router_p = q.latency_quantile_query
    return [
        _panel(
            "latency",
            [
                Query(router_p(NS, NAME, 0.5, RATE), "p50 (router)"),
                Query(router_p(NS, NAME, 0.99, RATE), "p99 (router)"),
                Query(_ours("infadapter_slo_latency_seconds"), "SLO"),
            ],
            unit="s",
            description="End-to-end latency at the router (Envoy histograms) against the SLO.",
        ),
        _panel(
            "violations",
            [
                Query(_ours("infadapter_slo_violation_ratio"), "over SLO or failed"),
                Query(f"1 - max({_ours('infadapter_slo_target_ratio')})", "error budget"),
            ],
            unit="percentunit",
            description="Requests slower than the SLO plus failed requests, over all requests.",
        ),
        _panel(
            "cost",
            [
                Query(_ours("infadapter_cost_cpu_cores"), "planned cores"),
                Query(_ours("infadapter_cost_gpu_devices"), "planned GPUs"),
                Query(_ours("infadapter_cost_price"), "price (spec's prices)"),
            ],
            unit="none",
            description="CPU cores and GPUs allocated by the plan, and their price at the spec's prices (budget.cpuPrice, accelerators[].price).",
        ),
        _panel(
            "solver",
            [
                Query(
                    f"histogram_quantile(0.99, sum by (le) (rate({_ours('infadapter_solver_duration_seconds_bucket')}[{RATE}])))",
                    "p99",
                ),
                Query(
                    f"sum(rate({_ours('infadapter_solver_duration_seconds_sum')}[{RATE}]))"
                    f" / sum(rate({_ours('infadapter_solver_duration_seconds_count')}[{RATE}]))",
                    "mean",
                ),
                Query(f"1 - min({_ours('infadapter_plan_feasible')})", "infeasible (1 = yes)"),
            ],
            unit="s",
            description="Wall time of the exact solve; 'infeasible' is 1 while the plan is a best effort.",
        ),
        _panel(
            "decisions",
            [
                Query(f"sum by (reason) (increase({_ours('infadapter_decisions_total')}[{RATE}]))", "{{reason}}"),
            ],
            unit="none",
            kind="barchart-ts",
            description="Decisions taken, by reason.",
        ),
    ]


def _decision_panels() -> list[dict[str, Any]]:
    """The forecast behind the decisions, what they run and serve, and how fast they take effect."""
    return [
        _panel(
            "forecast_error",
            [
                Query(_ours("infadapter_forecast_error_rps"), "observed - forecast"),
            ],
            unit="reqps",
            description="Positive: the load exceeded the previous forecast (under-prediction).",
        ),
        _panel(
            "replicas",
            [
                Query(f"sum by (variant) ({_ours('infadapter_planned_replicas')})", "{{variant}}"),
            ],
            unit="none",
            stacked=True,
            description="Planned replicas of each variant.",
        ),
        _panel(
            "served",
            [
                Query(q.served_rate_query(NS, NAME, RATE), "{{variant}} (Triton)"),
            ],
            unit="reqps",
            stacked=True,
            description="Successful inferences per second, per variant (Triton counters).",
        ),
        _panel(
            "reconfiguration",
            [
                Query(
                    f"histogram_quantile(0.5, sum by (le) (rate({_ours('infadapter_reconfiguration_duration_seconds_bucket')}[{RATE}])))",
                    "p50",
                ),
                Query(
                    f"histogram_quantile(0.99, sum by (le) (rate({_ours('infadapter_reconfiguration_duration_seconds_bucket')}[{RATE}])))",
                    "p99",
                ),
            ],
            unit="s",
            description="From a new plan to its instances ready, weights applied and old ones drained.",
        ),
        _panel(
            "objective",
            [
                Query(_ours("infadapter_plan_objective"), "objective"),
            ],
            unit="none",
            description="accuracy - cost_weight x cost/budget - transition_weight x transition.",
        ),
    ]


def panels() -> list[dict[str, Any]]:
    """The panels, in reading order (two per row)."""
    return _demand_panels() + _service_panels() + _decision_panels()


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"{name}-variable"},
        "definition": query,
        "refresh": 2,
        "sort": 1,
        "includeAll": False,
        "multi": False,
        "current": {},
        "options": [],
    }


def build_dashboard() -> dict[str, Any]:
    """The dashboard as a dict (Grafana schema 39, Prometheus datasource chosen by a variable)."""
    laid_out = []
    for index, panel in enumerate(panels()):
        grid = {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)}
        laid_out.append({**panel, "id": index + 1, "gridPos": grid})
    return {
        "uid": "infadapter-service",
        "title": "InfAdapter / service",
        "description": "One InferenceService: load, forecast, plan, accuracy, latency against the SLO, cost, decisions.",
        "tags": ["infadapter"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "10s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "annotations": {"list": []},
        "links": [],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "options": [],
                    "refresh": 1,
                },
                _variable("namespace", "Namespace", "label_values(infadapter_decisions_total, namespace)"),
                _variable("name", "Service", 'label_values(infadapter_decisions_total{namespace="$namespace"}, name)'),
            ]
        },
        "panels": laid_out,
    }


def render() -> str:
    return json.dumps(build_dashboard(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
