"""The one reason classifier and the decision record every mode writes."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from infadapter.control import DECISION_REASONS, classify, record_from_plan
from infadapter.metrics.decisionlog import describe_plan, format_decision
from infadapter.planning import Plan, VariantPlan

from .fixtures import plan

OLD = plan(("slow", 8.0, 1.0), load_rps=30.0)
NEW = plan(("fast", 2.0, 0.6), ("slow", 4.0, 0.4), load_rps=50.0)


@pytest.mark.parametrize(
    ("new", "previous", "available", "expected"),
    [
        (NEW, OLD, False, "metrics_unavailable"),
        (None, OLD, True, "hold"),
        (replace(NEW, status="infeasible"), OLD, True, "infeasible"),
        (NEW, OLD, True, "variant_change"),
        (NEW, None, True, "scale_up"),
        (plan(("slow", 6.0, 1.0)), plan(("slow", 4.0, 1.0)), True, "scale_up"),
        (plan(("slow", 2.0, 1.0)), plan(("slow", 4.0, 1.0)), True, "scale_down"),
        (plan(("fast", 2.0, 0.3), ("slow", 4.0, 0.7)), NEW, True, "hold"),  # re-weighted only
    ],
)
def test_the_reason_is_classified_from_the_change(new: Plan | None, previous: Plan | None, available: bool, expected: str) -> None:
    assert classify(new, previous, metrics_available=available) == expected
    assert expected in DECISION_REASONS


def test_same_total_cores_in_more_replicas_is_classified_by_capacity() -> None:
    one = Plan((VariantPlan("fast", 4.0, 1, capacity_rps=80.0),))
    two = Plan((VariantPlan("fast", 2.0, 2, capacity_rps=85.0),))
    assert (classify(two, one), classify(one, two)) == ("scale_up", "scale_down")


def test_a_record_of_a_new_plan_says_what_changed_and_how_long_the_solve_took() -> None:
    record = record_from_plan("default", "m", 5.0, replace(NEW, solve_ms=4.0), OLD, observed_rps=45.0, forecast_rps=50.0)
    assert record.reason == "variant_change" and record.solve_s == pytest.approx(0.004)
    assert describe_plan(record.plan) == "fast:2c/0.60 slow:4c/0.40"
    assert format_decision(record).startswith("plan fast:2c/0.60 slow:4c/0.40 (was slow:8c/1.00) reason=variant_change")


def test_a_record_that_keeps_the_plan_shows_it_and_solved_nothing() -> None:
    kept = record_from_plan("default", "m", 6.0, None, NEW, observed_rps=math.nan, forecast_rps=math.nan, reason="metrics_unavailable")
    assert kept.plan == kept.previous_plan and not kept.changed and kept.solve_s is None
    assert "(unchanged) reason=metrics_unavailable load=n/a forecast=n/a solve=n/a" in format_decision(kept)
    infeasible = record_from_plan("default", "m", 7.0, replace(NEW, status="infeasible"), NEW, observed_rps=900, forecast_rps=1000)
    assert (infeasible.reason, infeasible.status) == ("infeasible", "infeasible")
