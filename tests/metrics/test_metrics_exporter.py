"""The prometheus_client exporter: names, values, label-set lifecycle, HTTP endpoint."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from infadapter.metrics.decisionlog import DECISION_REASONS, DecisionRecord, VariantRecord
from infadapter.metrics.exporter import METRICS, InfAdapterMetrics

PLAN = {"resnet50": VariantRecord(4, 2, 0.6, 160.0), "resnet18": VariantRecord(2, 1, 0.4, 60.0)}


def _record(**changes: object) -> DecisionRecord:
    fields = {
        "namespace": "default",
        "name": "resnet",
        "now_s": 1000.0,
        "reason": "scale_up",
        "observed_rps": 100.0,
        "forecast_rps": 120.0,
        "plan": PLAN,
        "previous_plan": {},
        "accuracy": 0.733,
        "cost_cpu": 10.0,
        "objective": 0.7,
        "solve_s": 0.003,
        "slo_violation_ratio": 0.02,
        "reconfiguration_s": 3.0,
    }
    fields.update(changes)
    return DecisionRecord(**fields)  # type: ignore[arg-type]


def _samples(metrics: InfAdapterMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def _value(metrics: InfAdapterMetrics, metric: str, /, **labels: str) -> float:
    return _samples(metrics)[(metric, frozenset(labels.items()))]


def _names(metrics: InfAdapterMetrics) -> set[str]:
    return {name for name, _labels in _samples(metrics)}


def test_metric_names_follow_the_convention_and_labels_are_service_and_variant_only() -> None:
    for info in METRICS:
        assert re.fullmatch(r"infadapter_[a-z_]+_(rps|ratio|cores|devices|price|seconds|replicas|objective|feasible|total)", info.name)
        assert set(info.labels) <= {"namespace", "name", "variant", "reason"}
        assert info.name.endswith("_total") == (info.kind == "counter")


def test_one_decision_exports_every_metric_with_its_value() -> None:
    metrics = InfAdapterMetrics()
    metrics.describe_service("default", "resnet", slo_latency_s=0.75, slo_target_ratio=0.99, variant_accuracy={"resnet50": 0.7613, "resnet18": 0.69758})
    metrics.observe(_record())
    metrics.observe(_record(now_s=1030.0, observed_rps=130.0, reason="hold", previous_plan=PLAN))
    metrics.observe_shadow("default", "resnet", cost_cpu=12.0, accuracy=0.75, capacity_rps=90.0)
    exported = _names(metrics)
    for info in METRICS:
        wanted = f"{info.name}_count" if info.kind == "histogram" else info.name
        assert wanted in exported, info.name
    svc = {"namespace": "default", "name": "resnet"}
    assert _value(metrics, "infadapter_observed_load_rps", **svc) == 130.0
    assert _value(metrics, "infadapter_predicted_load_rps", **svc) == 120.0
    assert _value(metrics, "infadapter_forecast_error_rps", **svc) == pytest.approx(10.0)  # 130 - 120
    assert _value(metrics, "infadapter_planned_cpu_cores", **svc, variant="resnet50") == 8.0  # 2 x 4 cores
    assert _value(metrics, "infadapter_planned_replicas", **svc, variant="resnet50") == 2.0
    assert _value(metrics, "infadapter_planned_weight_ratio", **svc, variant="resnet18") == 0.4
    assert _value(metrics, "infadapter_planned_capacity_rps", **svc, variant="resnet50") == 160.0
    assert _value(metrics, "infadapter_plan_feasible", **svc) == 1.0
    assert _value(metrics, "infadapter_decisions_total", **svc, reason="scale_up") == 1.0
    assert _value(metrics, "infadapter_decisions_total", **svc, reason="hold") == 1.0
    assert _value(metrics, "infadapter_decisions_total", **svc, reason="infeasible") == 0.0
    assert _value(metrics, "infadapter_solver_duration_seconds_count", **svc) == 2.0
    assert _value(metrics, "infadapter_reconfiguration_duration_seconds_sum", **svc) == 6.0
    assert _value(metrics, "infadapter_slo_latency_seconds", **svc) == 0.75
    assert _value(metrics, "infadapter_last_decision_timestamp_seconds", **svc) == 1030.0
    assert _value(metrics, "infadapter_shadow_current_capacity_rps", **svc) == 90.0


def test_every_reason_has_a_counter_from_the_first_decision() -> None:
    metrics = InfAdapterMetrics()
    metrics.observe(_record())
    reasons = {dict(labels)["reason"] for name, labels in _samples(metrics) if name == "infadapter_decisions_total"}
    assert reasons == set(DECISION_REASONS)


def test_infeasible_plan_sets_feasible_to_zero() -> None:
    metrics = InfAdapterMetrics()
    metrics.observe(_record(reason="infeasible", status="infeasible"))
    assert _value(metrics, "infadapter_plan_feasible", namespace="default", name="resnet") == 0.0


def test_metrics_unavailable_keeps_the_plan_and_marks_the_load_unknown() -> None:
    metrics = InfAdapterMetrics()
    metrics.observe(_record())
    metrics.observe(_record(reason="metrics_unavailable", observed_rps=math.nan, forecast_rps=math.nan, plan={}))
    assert math.isnan(_value(metrics, "infadapter_observed_load_rps", namespace="default", name="resnet"))
    assert _value(metrics, "infadapter_predicted_load_rps", namespace="default", name="resnet") == 120.0
    assert _value(metrics, "infadapter_planned_cpu_cores", namespace="default", name="resnet", variant="resnet50") == 8.0


def test_a_variant_leaving_the_plan_loses_its_label_sets() -> None:
    metrics = InfAdapterMetrics()
    metrics.observe(_record())
    metrics.observe(_record(plan={"resnet50": VariantRecord(6, 1, 1.0, 120.0)}, previous_plan=PLAN))
    variants = {dict(labels).get("variant") for name, labels in _samples(metrics) if name.startswith("infadapter_planned")}
    assert variants == {"resnet50"}


def test_forget_removes_every_label_set_of_the_service_only() -> None:
    metrics = InfAdapterMetrics()
    for name in ("resnet", "other"):
        metrics.describe_service("default", name, slo_latency_s=0.5, slo_target_ratio=0.99, variant_accuracy={"resnet18": 0.7})
        metrics.observe(_record(name=name))
    metrics.forget("default", "resnet")
    names = {dict(labels).get("name") for _metric, labels in _samples(metrics)}
    assert names == {"other"}
    metrics.forget("default", "never-seen")  # no error
    metrics.observe(_record())  # and it can come back
    assert _value(metrics, "infadapter_decisions_total", namespace="default", name="resnet", reason="scale_up") == 1.0


def test_serve_exposes_the_metrics_over_http() -> None:
    metrics = InfAdapterMetrics()
    metrics.observe(_record())
    port = metrics.serve()
    try:
        body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        metrics.close()
    assert 'infadapter_planned_weight_ratio{name="resnet",namespace="default",variant="resnet50"} 0.6' in body
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_two_exporters_in_one_process_do_not_clash() -> None:
    first, second = InfAdapterMetrics(), InfAdapterMetrics()
    first.observe(_record())
    assert "infadapter_observed_load_rps" not in {n for n, labels in _samples(second) if labels}


def test_describe_spec_exports_the_slo_and_declared_accuracies() -> None:
    from infadapter.spec import load_resource

    resource = load_resource(Path(__file__).resolve().parents[2] / "examples" / "resnet.yaml")
    metrics = InfAdapterMetrics()
    metrics.describe_spec("default", "resnet", resource.spec)
    svc = {"namespace": "default", "name": "resnet"}
    assert _value(metrics, "infadapter_slo_latency_seconds", **svc) == 0.75
    assert _value(metrics, "infadapter_slo_target_ratio", **svc) == 0.99
    assert _value(metrics, "infadapter_variant_accuracy_ratio", **svc, variant="resnet152") == 0.78312


def test_the_observability_doc_lists_every_metric() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "observability.md").read_text()
    for info in METRICS:
        assert f"| `{info.name}` | {info.kind} |" in doc, info.name


def test_a_tick_without_a_solve_records_no_solver_time() -> None:
    metrics = InfAdapterMetrics()
    metrics.observe(_record())
    metrics.observe(_record(reason="hold", previous_plan=PLAN, solve_s=None))
    assert _value(metrics, "infadapter_solver_duration_seconds_count", namespace="default", name="resnet") == 1.0
    assert _value(metrics, "infadapter_decisions_total", namespace="default", name="resnet", reason="hold") == 1.0


def test_the_plans_gpus_and_price_are_exported_beside_its_cores() -> None:
    metrics = InfAdapterMetrics()
    metrics.observe(_record(cost_gpu=3.0, cost=4.2))
    assert _value(metrics, "infadapter_cost_cpu_cores", namespace="default", name="resnet") == 10.0
    assert _value(metrics, "infadapter_cost_gpu_devices", namespace="default", name="resnet") == 3.0
    assert _value(metrics, "infadapter_cost_price", namespace="default", name="resnet") == pytest.approx(4.2)
