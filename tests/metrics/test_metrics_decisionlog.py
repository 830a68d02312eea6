"""The decision record, its human line and its JSON line."""

from __future__ import annotations

import io
import json
import logging
import math

import pytest

from infadapter.errors import InvalidInput
from infadapter.metrics.decisionlog import (
    DecisionLog,
    DecisionRecord,
    VariantRecord,
    describe_plan,
    event_fields,
    format_decision,
    read_decisions,
)

NEW = {"resnet50": VariantRecord(4, 1, 0.6, 80.0), "resnet18": VariantRecord(2, 1, 0.4, 60.0)}
OLD = {"resnet152": VariantRecord(20, 1, 1.0, 100.0)}


def _record(**changes: object) -> DecisionRecord:
    fields = {
        "namespace": "default",
        "name": "resnet",
        "now_s": 1000.0,
        "reason": "scale_down",
        "observed_rps": 123.0,
        "forecast_rps": 140.0,
        "plan": NEW,
        "previous_plan": OLD,
        "accuracy": 0.733,
        "cost_cpu": 6.0,
        "objective": 0.7,
        "solve_s": 0.003,
    }
    fields.update(changes)
    return DecisionRecord(**fields)  # type: ignore[arg-type]


def test_the_line_says_what_changed_why_load_forecast_and_solve_time() -> None:
    assert format_decision(_record()) == (
        "plan resnet50:4c/0.60 resnet18:2c/0.40 (was resnet152:20c/1.00) reason=scale_down load=123rps forecast=140rps solve=3ms"
    )


def test_the_logged_line_names_the_service_and_flags_infeasible_plans() -> None:
    line = format_decision(_record(reason="infeasible", status="infeasible", slo_violation_ratio=0.0123), with_service=True)
    assert line.startswith("default/resnet plan ")
    assert line.endswith("status=infeasible violations=1.23%")


def test_an_unchanged_plan_says_so_and_replicas_and_fractional_cores_are_shown() -> None:
    plan = {"resnet18": VariantRecord(0.5, 3, 1.0, 30.0)}
    line = format_decision(_record(reason="hold", plan=plan, previous_plan=plan, solve_s=0.0004))
    assert line == "plan resnet18:0.5cx3/1.00 (unchanged) reason=hold load=123rps forecast=140rps solve=0.4ms"


def test_unknown_load_is_written_na() -> None:
    line = format_decision(_record(reason="metrics_unavailable", observed_rps=math.nan, forecast_rps=math.nan))
    assert "load=n/a forecast=n/a" in line


def test_plans_accept_plain_dicts_and_are_read_only() -> None:
    record = _record(plan={"resnet18": {"cpu_cores": 2, "replicas": 1, "weight": 1.0, "capacity_rps": 50}})
    assert record.plan["resnet18"] == VariantRecord(2.0, 1, 1.0, 50.0)
    assert describe_plan({"a": VariantRecord(2, 2, 1.0, gpus=1)}) == "a:2c+1gx2/1.00"
    with pytest.raises(TypeError):
        record.plan["x"] = VariantRecord(1)  # type: ignore[index]


def test_unknown_reason_or_status_is_invalid_input_with_the_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        _record(reason="panic", status="maybe")
    assert [e.path for e in caught.value.errors] == ["reason", "status"]


def test_json_round_trip_keeps_every_field_and_writes_nan_as_null() -> None:
    record = _record(observed_rps=math.nan, reconfiguration_s=2.5, slo_violation_ratio=0.01)
    raw = json.loads(json.dumps(record.to_dict(), allow_nan=False))
    assert raw["observed_rps"] is None
    back = DecisionRecord.from_dict(raw)
    assert math.isnan(back.observed_rps)
    assert back.to_dict() == record.to_dict()


def test_decision_log_writes_one_info_line_and_json_lines(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    stream = io.StringIO()
    log = DecisionLog(json_path=tmp_path / "logs" / "decisions.jsonl", json_stream=stream)
    with caplog.at_level(logging.INFO, logger="infadapter.decisions"):
        log.log(_record())
        log.log(_record(reason="hold", previous_plan=NEW, now_s=1030.0))
    assert [r.getMessage() for r in caplog.records] == [
        "default/resnet plan resnet50:4c/0.60 resnet18:2c/0.40 (was resnet152:20c/1.00) reason=scale_down load=123rps forecast=140rps solve=3ms",
        "default/resnet plan resnet50:4c/0.60 resnet18:2c/0.40 (unchanged) reason=hold load=123rps forecast=140rps solve=3ms",
    ]
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["reason"] for line in lines] == ["scale_down", "hold"]
    assert json.loads(lines[0])["message"] == caplog.records[0].getMessage()
    assert [r.now_s for r in read_decisions(tmp_path / "logs" / "decisions.jsonl")] == [1000.0, 1030.0]


def test_the_kubernetes_event_carries_the_line_and_warns_when_infeasible() -> None:
    normal = event_fields(_record())
    assert (normal.type, normal.reason) == ("Normal", "ScaleDown")
    assert normal.message == format_decision(_record())
    warning = event_fields(_record(reason="metrics_unavailable"))
    assert (warning.type, warning.reason) == ("Warning", "MetricsUnavailable")
    many = {f"variant{i}": VariantRecord(1, 1, 0.01) for i in range(100)}
    assert len(event_fields(_record(plan=many)).message) == 1024
