"""The run report: plots with the dashboard's titles and a markdown summary."""

from __future__ import annotations

import numpy as np
import pytest

from infadapter.errors import InvalidInput
from infadapter.metrics.dashboard import PANEL_TITLES
from infadapter.metrics.decisionlog import DecisionRecord, VariantRecord
from infadapter.metrics.report import PolicySeries, write_report


def _series(cores: float, n: int = 60) -> PolicySeries:
    t = np.arange(n, dtype=float)
    load = 50 + 30 * np.sin(t / 10)
    return PolicySeries(
        t_s=t,
        load_rps=load,
        forecast_rps=load * 1.1,
        capacity_rps=np.full(n, 100.0),
        cpu_cores=np.full(n, cores),
        accuracy=np.full(n, 0.75),
        p99_ms=np.full(n, 300.0),
        violation_ratio=np.zeros(n),
        variant_cores={"resnet50": np.full(n, cores - 2), "resnet18": np.full(n, 2.0)},
    )


def test_report_has_the_dashboard_panels_a_table_and_the_decisions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    decision = DecisionRecord("default", "resnet", 30.0, "scale_up", 80.0, 90.0, plan={"resnet50": VariantRecord(4, 1, 1.0, 100)})
    path = write_report(
        tmp_path / "out",
        {"ours": _series(6), "static:resnet152@20": _series(20)},
        rows=[{"policy": "ours", "violations": 0.004, "avg_cpu": 6.0}, {"policy": "static", "violations": float("nan")}],
        slo_ms=750,
        decisions=[decision],
        title="demo",
    )
    text = path.read_text()
    assert path.name == "report.md" and text.startswith("# demo")
    for key in ("load", "cores", "cost", "accuracy", "latency", "violations", "decisions"):
        assert f"## {PANEL_TITLES[key]}" in text
    assert "| policy | violations | avg_cpu |" in text and "| static | n/a |  |" in text
    assert "t=30s plan resnet50:4c/1.00" in text
    for png in ("load.png", "cores.png", "cost.png", "accuracy.png", "latency.png", "violations.png"):
        assert (tmp_path / "out" / png).stat().st_size > 5000
        assert f"]({png})" in text


def test_series_of_different_lengths_are_rejected_with_the_field() -> None:
    with pytest.raises(InvalidInput, match="p99_ms"):
        PolicySeries(t_s=[0, 1], load_rps=[1, 1], forecast_rps=[1, 1], capacity_rps=[1, 1], cpu_cores=[1, 1], accuracy=[1, 1], p99_ms=[1])  # type: ignore[arg-type]
