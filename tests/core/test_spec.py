"""The InferenceService spec: defaults, camelCase YAML, and every error with a path and a hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from infadapter.errors import InvalidSpec
from infadapter.spec import Mode, ResizePolicy, load_resource, parse_resource, parse_spec


def test_paper_example_parses_with_the_papers_settings(resnet_spec_path: Path) -> None:
    resource = load_resource(resnet_spec_path)
    spec = resource.spec
    assert resource.metadata.name == "resnet"
    assert spec.variant_names == ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
    assert [v.accuracy for v in spec.variants] == [0.69758, 0.73314, 0.7613, 0.77374, 0.78312]
    assert [v.load_time_s for v in spec.variants] == [6.44, 6.79, 6.82, 7.77, 8.52]
    assert (spec.slo.latency_ms, spec.slo.percentile) == (750, 99)
    assert (spec.objective.cost_weight, spec.objective.transition_weight) == (0.05, 0.001)
    assert spec.budget.cpu == 20
    assert spec.adaptation.interval_s == 30
    assert spec.adaptation.resize_policy is ResizePolicy.IN_PLACE_OR_RECREATE


def test_defaults_fill_everything_but_the_variants() -> None:
    spec = parse_spec({"variants": [{"name": "a", "accuracy": 0.7}]})
    assert spec.mode is Mode.AUTO
    assert spec.slo.latency_ms == 750
    assert spec.forecast.model == "ours"
    assert spec.to_dict()["slo"] == {"latencyMs": 750.0, "percentile": 99.0}


def test_cpu_accepts_kubernetes_quantities() -> None:
    spec = parse_spec({"variants": [{"name": "a", "accuracy": 0.7}], "budget": {"cpu": "1500m"}, "resources": {"cpuStep": "250m"}})
    assert spec.budget.cpu == 1.5
    assert spec.resources.cpu_step == 0.25


def test_every_error_is_reported_with_its_path_and_a_hint() -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_spec(
            {
                "variants": [{"name": "A_B", "accuracy": "high"}, {"name": "b", "accuracy": 1.5}],
                "budget": {"cpu": -2},
                "slo": {"latencyMs": "fast"},
                "mode": "Sometimes",
                "bogus": 1,
            }
        )
    paths = {e.path for e in info.value.errors}
    assert {
        "spec.variants[0].name",
        "spec.variants[0].accuracy",
        "spec.variants[1].accuracy",
        "spec.budget.cpu",
        "spec.slo.latencyMs",
        "spec.mode",
        "spec.bogus",
    } <= paths
    assert all(e.hint for e in info.value.errors)


def test_duplicate_variant_names_are_refused() -> None:
    with pytest.raises(InvalidSpec, match="appears twice"):
        parse_spec({"variants": [{"name": "a", "accuracy": 0.7}, {"name": "a", "accuracy": 0.8}]})


def test_min_cpu_above_max_cpu_is_refused() -> None:
    with pytest.raises(InvalidSpec, match="swap"):
        parse_spec({"variants": [{"name": "a", "accuracy": 0.7}], "resources": {"minCpu": 4, "maxCpu": 2}})


def test_wrong_kind_and_api_version_are_named() -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_resource({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "spec": {"variants": [{"name": "a", "accuracy": 0.5}]}})
    assert [e.path for e in info.value.errors] == ["apiVersion"]


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec:\n  variants: [\n", encoding="utf-8")
    with pytest.raises(InvalidSpec, match="line"):
        load_resource(bad)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpec, match="cannot read"):
        load_resource(tmp_path / "nope.yaml")
