"""Pure parts of the observer: query builders and histogram arithmetic (same as PromQL's)."""

from __future__ import annotations

import math

import pytest

from infadapter.metrics import prometheus as q

BUCKETS = [(50.0, 30.0), (100.0, 60.0), (250.0, 85.0), (500.0, 90.0), (1000.0, 95.0), (math.inf, 100.0)]


def test_queries_select_the_service_and_exclude_envoys_admin_listener() -> None:
    query = q.arrival_rate_query("prod", "resnet", 30)
    assert query == ('sum(rate(envoy_http_downstream_rq_total{namespace="prod",name="resnet",envoy_http_conn_manager_prefix!="admin"}[30s]))')
    assert "[$__rate_interval]" in q.variant_rate_query("$namespace", "$name", "$__rate_interval")
    assert q.latency_quantile_query("a", "b", 0.99).startswith("histogram_quantile(0.99, sum by (le) (")


def test_fraction_below_interpolates_inside_the_bucket() -> None:
    assert q.fraction_below(500.0, BUCKETS) == pytest.approx(0.90)
    assert q.fraction_below(750.0, BUCKETS) == pytest.approx(0.925)
    assert q.fraction_below(25.0, BUCKETS) == pytest.approx(0.15)
    assert q.fraction_below(5000.0, BUCKETS) == pytest.approx(0.95)  # beyond the last finite bucket
    assert q.fraction_below(10.0, []) == 1.0


def test_histogram_quantile_matches_promql_interpolation() -> None:
    assert q.histogram_quantile_ms(0.5, BUCKETS) == pytest.approx(50 + 50 * 20 / 30)
    assert q.histogram_quantile_ms(0.9, BUCKETS) == pytest.approx(500.0)
    assert q.histogram_quantile_ms(0.99, BUCKETS) == pytest.approx(1000.0)  # in +Inf: the last finite bound
    assert math.isnan(q.histogram_quantile_ms(0.5, [(10.0, 0.0), (math.inf, 0.0)]))
