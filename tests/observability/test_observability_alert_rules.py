"""The alert rules: valid for promtool, unit-tested with promtool, and the PrometheusRule says the same."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from infadapter.metrics.exporter import METRICS
from infadapter.runtime.local.prometheus import find_promtool

ALERTS = Path(__file__).resolve().parents[2] / "manifests" / "alerts"
needs_promtool = pytest.mark.skipif(find_promtool() is None, reason="promtool is absent (scripts/setup.sh unpacks Debian's)")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([find_promtool() or "promtool", *args], cwd=ALERTS, capture_output=True, text=True, timeout=60, check=False)


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    result = _promtool("check", "rules", "rules.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


@needs_promtool
def test_alerts_fire_when_and_only_when_they_should_promtool_unit_tests() -> None:
    result = _promtool("test", "rules", "rules-test.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_prometheus_rule_carries_the_same_groups() -> None:
    rule = yaml.safe_load((ALERTS / "prometheusrule.yaml").read_text())
    plain = yaml.safe_load((ALERTS / "rules.yaml").read_text())
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert rule["metadata"]["name"] == "infadapter"
    assert rule["spec"] == plain


def test_every_alert_is_documented_and_reads_existing_metrics() -> None:
    ours = {info.name for info in METRICS}
    groups = yaml.safe_load((ALERTS / "rules.yaml").read_text())["groups"]
    alerts = [rule for group in groups for rule in group["rules"]]
    assert {a["alert"] for a in alerts} == {
        "InfAdapterSLOBurnRateFast",
        "InfAdapterSLOBurnRateSlow",
        "InfAdapterPlanInfeasible",
        "InfAdapterMetricsUnavailable",
        "InfAdapterOperatorDown",
    }
    for alert in alerts:
        assert alert["labels"]["severity"] in {"warning", "critical"}
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
        used = set(re.findall(r"\b(infadapter_[a-z_]+)", alert["expr"]))
        assert used <= ours, (alert["alert"], used - ours)
