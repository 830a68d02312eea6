"""The Grafana dashboard file: generated, well-formed, and reading only metrics that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

from infadapter.metrics import prometheus as q
from infadapter.metrics.dashboard import PANEL_TITLES, build_dashboard, render
from infadapter.metrics.dashboard_check import builtin_variables, iter_panels, panel_queries, substitute
from infadapter.metrics.exporter import METRICS

DASHBOARD = Path(__file__).resolve().parents[2] / "manifests" / "dashboards" / "infadapter.json"
# series of the servers that the dashboard may read (our metrics come from METRICS)
EXTERNAL = {q.ROUTER_REQUESTS, q.ROUTER_LATENCY_MS_BUCKET, q.CLUSTER_REQUESTS, q.CLUSTER_LATENCY_MS_BUCKET, q.SERVER_SUCCESS, q.ROUTER_RESPONSES_BY_CLASS}
PROMQL_WORDS = {
    "sum",
    "by",
    "rate",
    "irate",
    "increase",
    "histogram_quantile",
    "on",
    "max",
    "min",
    "le",
    "variant",
    "reason",
    "group_left",
    "avg_over_time",
    "namespace",
    "name",
    "envoy_http_conn_manager_prefix",
    "envoy_response_code_class",
    "admin",
}


def test_the_committed_dashboard_is_the_generated_one() -> None:
    assert DASHBOARD.read_text() == render(), "run: python -m infadapter.metrics.dashboard > manifests/dashboards/infadapter.json"


def test_dashboard_has_the_grafana_essentials() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert {"namespace", "name"} <= variables.keys()


def test_panels_have_unique_ids_and_titles_and_do_not_overlap() -> None:
    panels = list(iter_panels(build_dashboard()))
    assert len({p["id"] for p in panels}) == len(panels)
    assert len({p["title"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        mine = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not mine & cells, panel["title"]
        cells |= mine


def test_every_panel_uses_the_datasource_variable_and_has_targets_with_unique_ref_ids() -> None:
    for panel in iter_panels(build_dashboard()):
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert ref_ids and len(set(ref_ids)) == len(ref_ids), panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])


def test_the_panels_the_issue_asks_for_are_there() -> None:
    titles = {p["title"] for p in iter_panels(build_dashboard())}
    for key in ("load", "cores", "weights", "accuracy", "latency", "violations", "cost", "solver", "decisions"):
        assert PANEL_TITLES[key] in titles
    stacked = {p["title"] for p in iter_panels(build_dashboard()) if p["fieldConfig"]["defaults"].get("custom", {}).get("stacking", {}).get("mode") == "normal"}
    assert {PANEL_TITLES["cores"], PANEL_TITLES["weights"]} <= stacked


def test_queries_use_only_defined_variables_and_existing_metrics() -> None:
    board = build_dashboard()
    defined = {v["name"] for v in board["templating"]["list"]} | set(builtin_variables(300, 5))
    ours = {info.name for info in METRICS}
    ours |= {f"{info.name}_{suffix}" for info in METRICS if info.kind == "histogram" for suffix in ("bucket", "sum", "count")}
    for query in panel_queries(board):
        used = set(re.findall(r"\$\{?(\w+)", query.expr))
        assert used <= defined, (query.panel, used - defined)
        expr = substitute(query.expr, dict.fromkeys(defined, "x"))
        expr = re.sub(r'"[^"]*"', '""', expr)  # drop label values
        identifiers = set(re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*", expr)) - PROMQL_WORDS
        metrics = {i for i in identifiers if not re.fullmatch(r"\d+[smhd]|x|e", i)}
        assert metrics <= ours | EXTERNAL, (query.panel, metrics - ours - EXTERNAL)
