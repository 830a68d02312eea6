"""Against a real Prometheus: every dashboard panel returns data, every alert expression runs (and the
expected ones fire), and the loop's queries return the synthetic load they were given."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import requests

from infadapter.errors import MetricsUnavailable
from infadapter.metrics.dashboard_check import (
    alert_expressions,
    check_dashboard,
    check_expressions,
    load_dashboard,
    main,
    panel_queries,
)
from infadapter.metrics.prometheus import Observer

pytestmark = pytest.mark.slow
T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "manifests" / "dashboards" / "infadapter.json"
RULES = ROOT / "manifests" / "alerts" / "rules.yaml"
NAMESPACE, NAME = "default", "resnet"  # the synthetic service (see conftest.py)
LOAD_RPS = 100.0
SHARES = {"resnet50": 0.6, "resnet18": 0.4}


def _eventually(check: Callable[[], T], ok: Callable[[T], bool], timeout_s: float = 15.0) -> T:
    """Poll ``check`` until ``ok`` (scrapes and rule evaluations run every second, later on a busy machine)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if ok(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def test_every_dashboard_panel_returns_data(live_stack: Any) -> None:
    variables = {"namespace": NAMESPACE, "name": NAME}
    failures = _eventually(lambda: check_dashboard(live_stack.url, DASHBOARD, variables), lambda f: not f)
    assert failures == []
    assert len(panel_queries(load_dashboard(DASHBOARD))) >= 20


def test_dashboard_check_reports_panels_without_data(live_stack: Any) -> None:
    failures = check_dashboard(live_stack.url, DASHBOARD, {"namespace": NAMESPACE, "name": "no-such-service"})
    assert len(failures) == len(panel_queries(load_dashboard(DASHBOARD)))
    assert all("no data" in failure for failure in failures)


def test_dashboard_check_reports_unresolved_variables(live_stack: Any) -> None:
    failures = check_dashboard(live_stack.url, DASHBOARD, {"namespace": NAMESPACE})
    assert failures and all("unresolved variable $name" in failure for failure in failures)


def _alert_rules() -> dict[str, str]:
    return alert_expressions(RULES)


def test_every_alert_expression_runs_and_the_expected_ones_fire(live_stack: Any) -> None:
    counts = check_expressions(live_stack.url, _alert_rules())
    assert counts == {
        "InfAdapterSLOBurnRateFast": 1,  # resnet: 20 % violations against a 1 % budget
        "InfAdapterSLOBurnRateSlow": 1,
        "InfAdapterPlanInfeasible": 1,  # tight
        "InfAdapterMetricsUnavailable": 1,  # blind
        "InfAdapterOperatorDown": 0,  # the exporter is up
    }
    expected = {("InfAdapterSLOBurnRateFast", NAME), ("InfAdapterPlanInfeasible", "tight"), ("InfAdapterMetricsUnavailable", "blind")}

    def alerts() -> set[tuple[str, str | None]]:
        return {(s.labels["alertname"], s.labels.get("name")) for s in Observer(live_stack.url).query("ALERTS")}

    assert expected <= _eventually(alerts, lambda who: expected <= who)  # pending: each has a `for`


def test_prometheus_loads_every_rule_healthy(live_stack: Any) -> None:
    groups = requests.get(f"{live_stack.url}/api/v1/rules", timeout=5).json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert {rule["name"] for rule in rules} == set(_alert_rules())
    assert all(rule["health"] == "ok" for rule in rules), [(r["name"], r.get("lastError")) for r in rules]


def test_operator_down_fires_when_the_exporter_is_not_scraped(live_stack: Any) -> None:
    expr = _alert_rules()["InfAdapterOperatorDown"].replace('job="infadapter"', 'job="not-scraped"')
    assert check_expressions(live_stack.url, {"down": expr}) == {"down": 1}


def test_observer_reads_the_router_load(live_stack: Any) -> None:
    observer = Observer(live_stack.url)
    # the window must lie inside the scraped data: rate() over 60 s of a 5 s old series divides by 60
    window_s = 3

    def close(value: float, want: float) -> bool:
        return abs(value - want) <= 0.05 * want

    # scrape timestamps jitter on a busy machine (a late answer carries a later counter): poll, then assert
    arrival = _eventually(lambda: observer.arrival_rate_rps(NAMESPACE, NAME, window_s), lambda v: close(v, LOAD_RPS), 20.0)
    assert arrival == pytest.approx(LOAD_RPS, rel=0.05)
    rates = _eventually(
        lambda: observer.variant_rates_rps(NAMESPACE, NAME, window_s),
        lambda r: r.keys() == SHARES.keys() and all(close(r[v], LOAD_RPS * s) for v, s in SHARES.items()),
        20.0,
    )
    assert rates.keys() == SHARES.keys()
    for variant, share in SHARES.items():
        assert rates[variant] == pytest.approx(LOAD_RPS * share, rel=0.05)
    served = _eventually(lambda: observer.served_rates_rps(NAMESPACE, NAME, window_s), lambda r: close(r.get("resnet50", 0.0), LOAD_RPS * 0.594), 20.0)
    assert served["resnet50"] == pytest.approx(LOAD_RPS * 0.6 * 0.99, rel=0.05)
    errors = _eventually(lambda: observer.error_rate_rps(NAMESPACE, NAME, window_s), lambda v: close(v, LOAD_RPS * 0.01), 20.0)
    assert errors == pytest.approx(LOAD_RPS * 0.01, rel=0.05)


def test_observer_latency_and_violations_match_the_histogram(live_stack: Any) -> None:
    observer = Observer(live_stack.url)
    quantiles = observer.latency_quantiles_ms(NAMESPACE, NAME, (0.5, 0.99))
    # 30 % <= 50 ms, 60 % <= 100 ms: the median interpolates to 83.3 ms (as histogram_quantile does)
    assert quantiles[0.5] == pytest.approx(50 + 50 * (0.5 - 0.3) / 0.3, rel=0.02)
    promql_p50 = observer.scalar(
        'histogram_quantile(0.5, sum by (le) (rate(envoy_http_downstream_rq_time_bucket{namespace="default",'
        'name="resnet",envoy_http_conn_manager_prefix!="admin"}[1m])))'
    )
    assert quantiles[0.5] == pytest.approx(promql_p50, rel=1e-6)
    # 10 % slower than 500 ms plus 1 % failed
    assert observer.slo_violation_ratio(NAMESPACE, NAME, slo_ms=500) == pytest.approx(0.11, abs=0.005)


def test_observer_history_is_per_second_and_nan_where_unknown(live_stack: Any) -> None:
    observer = Observer(live_stack.url)
    end = time.time()
    history = observer.arrival_history_rps(NAMESPACE, NAME, end - 60, end)
    assert history.shape == (61,)
    known = history[~np.isnan(history)]
    assert 3 <= known.size <= 61
    assert np.isnan(history[0])  # before Prometheus started
    # each second is the counter's increase between two scrapes, whose timestamps jitter on a busy machine:
    # the level must be right and most seconds close to it
    assert float(np.median(known)) == pytest.approx(LOAD_RPS, rel=0.05)
    assert np.mean(np.abs(known - LOAD_RPS) <= 0.2 * LOAD_RPS) >= 0.7


def test_observer_says_metrics_unavailable_for_an_unknown_service(live_stack: Any) -> None:
    observer = Observer(live_stack.url)
    with pytest.raises(MetricsUnavailable, match=r"no data"):
        observer.arrival_rate_rps(NAMESPACE, "no-such-service")
    with pytest.raises(MetricsUnavailable, match=r"no router latency histogram"):
        observer.slo_violation_ratio(NAMESPACE, "no-such-service", slo_ms=500)
    assert np.isnan(observer.arrival_history_rps(NAMESPACE, "no-such-service", time.time() - 5, time.time())).all()


def test_observer_raises_metrics_unavailable_when_prometheus_is_down() -> None:
    observer = Observer("http://127.0.0.1:9", timeout_s=1, retries=0)
    with pytest.raises(MetricsUnavailable, match=re.escape("127.0.0.1:9")):
        observer.arrival_rate_rps(NAMESPACE, NAME)


def test_the_synthetic_stack_is_what_these_tests_assume(live_stack: Any) -> None:
    assert (live_stack.namespace, live_stack.name, live_stack.load_rps) == (NAMESPACE, NAME, LOAD_RPS)
    assert live_stack.shares == SHARES
    assert (live_stack.dashboard, live_stack.rules) == (DASHBOARD, RULES)


def test_the_command_line_check_passes_and_counts_alerts(live_stack: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--prometheus", live_stack.url, "--var", f"namespace={NAMESPACE}", "--var", f"name={NAME}"])
    out = capsys.readouterr().out
    assert code == 0, out
    total = len(panel_queries(load_dashboard(DASHBOARD)))
    assert f"{total}/{total} panel queries return data" in out
    assert "alert InfAdapterPlanInfeasible: 1 series" in out
    assert main(["--prometheus", live_stack.url, "--var", f"namespace={NAMESPACE}", "--var", "name=nope", "--rules", ""]) == 1


def test_observer_reads_scalar_results(live_stack: Any) -> None:
    assert Observer(live_stack.url).scalar("scalar(vector(2) + 1)") == 3.0


def test_dashboard_check_reports_a_query_prometheus_rejects(live_stack: Any, tmp_path: Path) -> None:
    broken = {"panels": [{"title": "Broken", "targets": [{"refId": "A", "expr": "sum(rate(x[1m]) by"}]}]}
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    [failure] = check_dashboard(live_stack.url, path, {})
    assert failure.startswith("Broken [A]: query failed") and "parse error" in failure


def test_a_history_longer_than_prometheus_point_limit_is_fetched_in_chunks(live_stack: Any) -> None:
    end = time.time()
    history = Observer(live_stack.url).arrival_history_rps(NAMESPACE, NAME, end - 25_000, end)
    assert history.shape == (25_001,)
    assert np.isnan(history[:-60]).all() and np.nanmax(history[-60:]) == pytest.approx(LOAD_RPS, rel=0.2)
