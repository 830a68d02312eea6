"""The decision record, its human line and its JSON line."""

from __future__ import annotations

import io
import json
import logging
import math
from dataclasses import dataclass

import pytest

from infadapter.errors import InvalidInput
from infadapter.metrics.decisionlog import (
    DECISION_REASONS,
    DecisionLog,
    DecisionRecord,
    VariantRecord,
    describe_plan,
    event_fields,
    format_decision,
    read_decisions,
)
from infadapter.metrics.plan_records import infer_reason, record_from_decision, record_from_plan

NEW = {"resnet50": VariantRecord(4, 1, 0.6, 80.0), "resnet18": VariantRecord(2, 1, 0.4, 60.0)}
OLD = {"resnet152": VariantRecord(20, 1, 1.0, 100.0)}


def _record(**changes: object) -> DecisionRecord:
    fields = {
        "namespace": "default", "name": "resnet", "now_s": 1000.0, "reason": "scale_down", "observed_rps": 123.0,
        "forecast_rps": 140.0, "plan": NEW, "previous_plan": OLD, "accuracy": 0.733, "cost_cpu": 6.0, "objective": 0.7, "solve_s": 0.003,
    }  # fmt: skip
    fields.update(changes)
    return DecisionRecord(**fields)  # type: ignore[arg-type]


def test_the_line_says_what_changed_why_load_forecast_and_solve_time() -> None:
    assert format_decision(_record()) == (
        "plan resnet50:4c/0.60 resnet18:2c/0.40 (was resnet152:20c/1.00) "
        "reason=scale_down load=123rps forecast=140rps solve=3ms"
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
        "default/resnet plan resnet50:4c/0.60 resnet18:2c/0.40 (was resnet152:20c/1.00) reason=scale_down "
        "load=123rps forecast=140rps solve=3ms",
        "default/resnet plan resnet50:4c/0.60 resnet18:2c/0.40 (unchanged) reason=hold load=123rps forecast=140rps solve=3ms",
    ]
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["reason"] for line in lines] == ["scale_down", "hold"]
    assert json.loads(lines[0])["message"] == caplog.records[0].getMessage()
    assert [r.now_s for r in read_decisions(tmp_path / "logs" / "decisions.jsonl")] == [1000.0, 1030.0]


@pytest.mark.parametrize(
    ("plan", "previous", "status", "available", "expected"),
    [
        (NEW, OLD, "optimal", False, "metrics_unavailable"),
        (NEW, OLD, "infeasible", True, "infeasible"),
        (NEW, OLD, "optimal", True, "variant_change"),
        ({"a": VariantRecord(4)}, {"a": VariantRecord(2)}, "optimal", True, "scale_up"),
        ({"a": VariantRecord(2, 2)}, {"a": VariantRecord(5)}, "optimal", True, "scale_down"),
        ({"a": VariantRecord(2, 2, 0.5)}, {"a": VariantRecord(4, 1, 0.7)}, "optimal", True, "hold"),
    ],
)
def test_reason_is_inferred_from_the_change(plan, previous, status, available, expected) -> None:  # type: ignore[no-untyped-def]
    assert infer_reason(plan, previous, status=status, metrics_available=available) == expected
    assert expected in DECISION_REASONS


@dataclass(frozen=True)
class _V:
    name: str
    cpu_cores: float
    replicas: int
    weight: float
    capacity_rps: float
    gpus: int = 0


@dataclass(frozen=True)
class _Plan:
    variants: tuple[_V, ...]
    status: str = "optimal"
    accuracy: float = 0.75
    cost_cpu: float = 6.0
    objective: float = 0.7
    solve_ms: float = 4.0


def test_record_from_plan_reads_the_planner_types() -> None:
    plan = _Plan((_V("resnet50", 4, 1, 0.6, 80), _V("resnet18", 2, 1, 0.4, 60)))
    before = _Plan((_V("resnet50", 4, 1, 1.0, 80),))
    record = record_from_plan("default", "resnet", 5.0, plan, before, observed_rps=100, forecast_rps=110)
    assert record.reason == "variant_change"
    assert record.solve_s == pytest.approx(0.004)
    assert describe_plan(record.plan) == "resnet50:4c/0.60 resnet18:2c/0.40"
    blind = record_from_plan("default", "resnet", 6.0, None, plan, observed_rps=math.nan, forecast_rps=math.nan,
                             metrics_available=False)  # fmt: skip
    assert blind.reason == "metrics_unavailable"
    assert blind.plan == record.plan and blind.solve_s is None  # the running plan stays, nothing was solved
    assert "(unchanged) reason=metrics_unavailable load=n/a forecast=n/a solve=n/a" in format_decision(blind)
    infeasible = record_from_plan("default", "resnet", 7.0, _Plan(plan.variants, status="infeasible"), plan,
                                  observed_rps=900, forecast_rps=1000)  # fmt: skip
    assert (infeasible.reason, infeasible.status) == ("infeasible", "infeasible")


def test_record_from_plan_accepts_the_planners_plan() -> None:
    planning = pytest.importorskip("infadapter.planning")
    plan = planning.Plan(
        variants=(planning.VariantPlan("resnet50", 4.0, 1, weight=0.6, capacity_rps=80.0),
                  planning.VariantPlan("resnet18", 2.0, 2, weight=0.4, capacity_rps=120.0)),
        accuracy=0.73, cost_cpu=8.0, objective=0.6, solve_ms=3.0,
    )  # fmt: skip
    record = record_from_plan("default", "resnet", 1.0, plan, None, observed_rps=100, forecast_rps=120)
    assert format_decision(record).startswith("plan resnet50:4c/0.60 resnet18:2cx2/0.40 (was (none)) reason=variant_change")
    assert record.cost_cpu == 8.0 and record.plan["resnet18"].total_cpu_cores == 4.0


def test_the_kubernetes_event_carries_the_line_and_warns_when_infeasible() -> None:
    normal = event_fields(_record())
    assert (normal.type, normal.reason) == ("Normal", "ScaleDown")
    assert normal.message == format_decision(_record())
    warning = event_fields(_record(reason="metrics_unavailable"))
    assert (warning.type, warning.reason) == ("Warning", "MetricsUnavailable")
    many = {f"variant{i}": VariantRecord(1, 1, 0.01) for i in range(100)}
    assert len(event_fields(_record(plan=many)).message) == 1024


def test_record_from_decision_keeps_the_running_plan_when_the_policy_keeps_it() -> None:
    planning = pytest.importorskip("infadapter.planning")
    base = pytest.importorskip("infadapter.policies.base")
    running = planning.Plan(variants=(planning.VariantPlan("resnet50", 4.0, 1, weight=1.0, capacity_rps=80.0),),
                            accuracy=0.76, cost_cpu=4.0, objective=0.7, solve_ms=2.0)  # fmt: skip
    keep = base.Decision(None, "hold", forecast_rps=70.0, observed_rps=60.0)
    record = record_from_decision("default", "resnet", 30.0, keep, running)
    assert (record.reason, record.changed, record.solve_s, record.cost_cpu) == ("hold", False, None, 4.0)
    assert describe_plan(record.plan) == "resnet50:4c/1.00"
    bigger = planning.Plan(variants=(planning.VariantPlan("resnet50", 6.0, 1, weight=1.0, capacity_rps=120.0),),
                           accuracy=0.76, cost_cpu=6.0, objective=0.69, solve_ms=5.0)  # fmt: skip
    record = record_from_decision("default", "resnet", 60.0, base.Decision(bigger, "scale_up", 110.0, 100.0), running)
    assert format_decision(record) == (
        "plan resnet50:6c/1.00 (was resnet50:4c/1.00) reason=scale_up load=100rps forecast=110rps solve=5ms"
    )
