"""Shadow mode (pure): the current configuration priced at the predicted load beside the recommendation, and a
status that is written when the comparison says something new, not at every forecast."""

from __future__ import annotations

from typing import Any

import pytest

from infadapter.errors import InvalidInput
from infadapter.operator.report import Seen, desired_status
from infadapter.operator.shadow import compare
from infadapter.planning import plan_for_load
from infadapter.profiles import profile_from_dict
from infadapter.spec import parse_spec
from tests.cluster.kube import PROFILE

VARIANTS = [{"name": "small", "accuracy": 0.70}, {"name": "large", "accuracy": 0.80}]


def spec(**shadow: Any) -> Any:
    body = {"variants": VARIANTS, "budget": {"cpu": 8}, "resources": {"maxCpu": 4, "maxReplicas": 2}, "mode": "Recommend"}
    return parse_spec(body | {"shadow": {"loadQuery": "sum(rate(requests_total[1m]))", **shadow}}, "test")


def test_the_current_configuration_is_priced_at_the_predicted_load() -> None:
    profile = profile_from_dict(PROFILE, "test")
    s = spec(current=[{"variant": "large", "cpu": 1, "replicas": 2}])  # 8 rps
    recommended = plan_for_load(s, profile, 38.0)  # past what "large" serves
    comparison = compare(s, profile, recommended, 38.0)
    assert comparison is not None and comparison.current is not None
    status = comparison.status()
    assert status["currentCapacityRps"] == 8.0 and status["currentServesPredictedLoad"] is False
    assert status["currentCostCpu"] == 2.0
    assert status["costCpuDifference"] == pytest.approx(recommended.cost_cpu - 2.0, abs=1e-3)
    assert status["recommended"] == recommended.describe() and "small" in status["recommended"]
    assert "does not serve (capacity 8.0 rps)" in comparison.message()
    assert compare(s, profile, recommended, 5.0).serves  # type: ignore[union-attr]


def test_a_configuration_the_profile_cannot_price_is_said_so() -> None:
    profile = profile_from_dict(PROFILE, "test")
    s = spec(current=[{"variant": "large", "cpu": 1, "gpus": 1}])  # the profile measured no GPU
    comparison = compare(s, profile, plan_for_load(s, profile, 5.0), 5.0)
    assert comparison is not None and comparison.current is None and comparison.problem
    assert "problem" in comparison.status()


def test_shadow_needs_recommend_mode_and_known_variants() -> None:
    body = {"variants": VARIANTS, "shadow": {"loadQuery": "q", "current": [{"variant": "large", "cpu": 1}]}}
    with pytest.raises(InvalidInput, match="mode: Recommend"):
        parse_spec(body, "test")
    with pytest.raises(InvalidInput, match="not a variant of the spec"):
        spec(current=[{"variant": "huge", "cpu": 1}])


def test_the_status_changes_when_the_comparison_does_not_with_every_forecast() -> None:
    profile = profile_from_dict(PROFILE, "test")
    s = spec(current=[{"variant": "large", "cpu": 1, "replicas": 2}])
    plan = plan_for_load(s, profile, 30.0)
    first = desired_status({}, Seen("Recommend", 1, plan=plan, shadow=compare(s, profile, plan, 30.0)), 0.0)
    assert first["shadow"]["predictedLoadRps"] == 30.0
    again = desired_status(first, Seen("Recommend", 1, plan=plan, shadow=compare(s, profile, plan, 30.5)), 5.0)
    assert "shadow" not in again, "the same comparison at a slightly other load: nothing to write"
    decided = desired_status(first, Seen("Recommend", 1, plan=plan, decided=True, shadow=compare(s, profile, plan, 31.0)), 10.0)
    assert decided["shadow"]["predictedLoadRps"] == 31.0
