"""The embedded loop against real servers: decisions act on the runtime, the dashboard has data, faults are held."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from infadapter.embedded import EmbeddedRun
from infadapter.metrics.dashboard_check import check_dashboard
from infadapter.profiles import Profile
from infadapter.spec import InferenceServiceSpec
from tests.embedded.conftest import bursty_rates

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "manifests" / "dashboards" / "infadapter.json"


def test_short_run_adapts_and_every_dashboard_panel_has_data(
    embedded_spec: InferenceServiceSpec, tiny_profile: Profile, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    failures: list[str] = []

    def check(runtime: Any) -> None:
        deadline = time.monotonic() + 20
        while True:  # the exporter's last decision and the last scrapes may still be due
            failures[:] = check_dashboard(runtime.prometheus_url, DASHBOARD, {"namespace": "default", "name": "resnet"}, range_s=120, step_s=2)
            if not failures or time.monotonic() > deadline:
                return
            time.sleep(2)

    run = EmbeddedRun(embedded_spec, tiny_profile, tiny_models, bursty_rates(36), live=False, before_stop=check)
    summary = run.run()
    assert failures == [], "\n".join(failures)
    assert summary.requests > 500 and summary.errors == 0
    assert summary.reconfigurations >= 1, [r.reason for r in run.records]
    assert 0 < summary.avg_cpu <= 2.5 and 0.69 <= summary.avg_accuracy <= 0.74
    assert summary.accuracy_source == "served"
    report = run.write_report(tmp_path / "report", summary)
    assert report.is_file() and (tmp_path / "report" / "load.png").is_file()
    assert set(summary.to_json()) == {"requests", "errors", "slo_violation_ratio", "avg_cpu", "avg_accuracy", "p99_latency_ms", "reconfigurations"}


def test_prometheus_down_holds_the_last_plan_says_so_and_recovers(
    embedded_spec: InferenceServiceSpec, tiny_profile: Profile, tiny_models: dict[str, Path]
) -> None:
    run = EmbeddedRun(embedded_spec, tiny_profile, tiny_models, bursty_rates(40, 20.0, 40.0), live=False)

    def fault() -> None:
        while run.load_started_wall_s is None:  # the faults hit the control loop, not the start (a slow one took 6 s)
            time.sleep(0.1)
        time.sleep(3)
        prom = run._runtime.prometheus  # type: ignore[union-attr]
        os.kill(prom.process.pid, signal.SIGSTOP)  # hung: alive but not answering
        time.sleep(12)
        os.kill(prom.process.pid, signal.SIGCONT)
        time.sleep(6)
        prom.process.kill()  # gone: the supervisor restarts it

    injector = threading.Thread(target=fault, daemon=True)
    injector.start()
    summary = run.run()
    injector.join(5)
    reasons = [(r.now_s, r.reason) for r in run.records]
    held = [r for r in run.records if r.reason == "metrics_unavailable"]
    assert held, reasons
    assert all(r.plan == r.previous_plan for r in held), "the last plan is held while metrics are unavailable"
    last_held = max(r.now_s for r in held)
    assert any(t > last_held and reason != "metrics_unavailable" for t, reason in reasons), f"never recovered: {reasons}"
    assert any(e.kind == "prometheus_restarted" for e in run.events)
    assert summary.metrics_unavailable_ticks >= 1 and summary.errors == 0
