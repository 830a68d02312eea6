"""Reports a user can decide from: the inputs recorded, ratios as percentages, the budget on the cost plot,
a decision log per policy, and the per-second series in ``--json`` only when asked (a small synthetic trace)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from infadapter import __version__
from infadapter.metrics.report import format_cell, percent
from tests.user.conftest import Cli

SPEC = """\
apiVersion: infadapter.io/v1alpha1
kind: InferenceService
metadata: {name: small, namespace: default}
spec:
  modelName: resnet
  variants:
    - {name: resnet18, accuracy: 0.69758, loadTimeSeconds: 2}
    - {name: resnet50, accuracy: 0.7613, loadTimeSeconds: 3}
  slo: {latencyMs: 750, percentile: 99}
  objective: {costWeight: 0.05, transitionWeight: 0.001}
  budget: {cpu: 8}
  resources: {cpuStep: 1, minCpu: 1, maxCpu: 8, maxReplicas: 1}
"""
POLICIES = ("ours", "msplus")


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    rows = {n: [{"cpu": c, "capacityRps": k * c} for c in range(1, 9)] for n, k in (("resnet18", 24), ("resnet50", 10))}
    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump({"kind": "Profile", "sloMs": 750, "variants": rows}), encoding="utf-8")
    rng = np.random.default_rng(0)
    counts = np.concatenate((rng.poisson(30, 120), rng.poisson(70, 60), rng.poisson(30, 60)))
    trace = tmp_path / "trace.txt"
    trace.write_text(" ".join(str(int(c)) for c in counts), encoding="utf-8")
    return {"spec": spec, "profile": profile, "trace": trace}


def _simulate(cli: Cli, files: dict[str, Path], *extra: str) -> tuple[int, str, str]:
    return cli(
        "simulate",
        "--spec",
        str(files["spec"]),
        "--profile",
        str(files["profile"]),
        "--trace",
        str(files["trace"]),
        "--start",
        "20",
        "--duration",
        "200",
        "--policies",
        ",".join(POLICIES),
        "--history",
        "0",
        "--seed",
        "3",
        *extra,
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _json(cli: Cli, files: dict[str, Path], *extra: str) -> dict[str, Any]:
    code, out, err = _simulate(cli, files, "--json", *extra)
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


def test_json_records_the_inputs_with_their_hashes(cli: Cli, inputs: dict[str, Path]) -> None:
    recorded = _json(cli, inputs)["inputs"]
    assert recorded["spec"] == {"path": str(inputs["spec"].resolve()), "sha256": _sha256(inputs["spec"])}
    assert recorded["profile"] == {"path": str(inputs["profile"].resolve()), "sha256": _sha256(inputs["profile"])}
    assert recorded["trace"]["path"] == str(inputs["trace"].resolve())
    assert recorded["window"] == {"start_s": 20, "duration_s": 200}
    assert recorded["slo"] == {"latency_ms": 750.0, "percentile": 99.0}
    assert recorded["budget"] == {"cpu": 8.0, "gpu": 0}
    assert recorded["seed"] == 3
    assert recorded["policies"] == list(POLICIES)
    assert recorded["infadapter_version"] == __version__


def test_report_md_records_the_inputs_and_prints_ratios_as_percentages(cli: Cli, inputs: dict[str, Path], tmp_path: Path) -> None:
    code, out, err = _simulate(cli, inputs, "--report", str(tmp_path / "r"))
    assert code == 0, err
    text = (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    inputs_section = text.split("## Inputs", 1)[1].split("## Summary", 1)[0]
    for needle in (
        f"| spec.sha256 | {_sha256(inputs['spec'])} |",
        f"| profile.sha256 | {_sha256(inputs['profile'])} |",
        "| seed | 3 |",
        "| window.start_s | 20 |",
        "| window.duration_s | 200 |",
        "| slo.latency_ms | 750 |",
        "| budget.cpu | 8 |",
        f"| infadapter_version | {__version__} |",
        "| policies | ours, msplus |",
    ):
        assert needle in inputs_section
    summary = text.split("## Summary", 1)[1].split("\n## ", 1)[0]
    assert "e-0" not in summary and "e+0" not in summary
    rows = [line for line in summary.splitlines() if line.startswith("| ") and not line.startswith("| policy")]
    assert len(rows) == len(POLICIES)
    for line in rows:  # each policy row: violations, accuracy and drops as percentages
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] in POLICIES
        assert cells[1].endswith(" %") and cells[5].endswith(" %") and cells[7].endswith(" %"), line
    assert "inputs: spec" in out and "seed 3" in out


def test_percentages_never_use_exponents() -> None:
    assert percent(7.395e-05) == "0.0074 %"
    assert percent(0.0006) == "0.06 %"
    assert percent(0.702) == "70.20 %"
    assert percent(0.0) == "0.00 %"
    assert percent(1e-9) == "< 0.0001 %"
    assert percent(float("nan")) == "n/a"
    assert format_cell("slo_violation_ratio", 7.395e-05) == "0.0074 %"
    assert format_cell("avg_accuracy", 0.74623) == "74.62 %"
    assert format_cell("requests", 121697.0) == "121697"
    assert format_cell("avg_cpu", 11.9512) == "11.95"


def test_cost_plot_draws_the_budget_line(cli: Cli, inputs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.axes import Axes

    lines: list[tuple[float, str]] = []
    original = Axes.axhline

    def spy(self: Axes, y: float = 0, *args: Any, **kwargs: Any) -> Any:
        lines.append((y, kwargs.get("label", "")))
        return original(self, y, *args, **kwargs)

    monkeypatch.setattr(Axes, "axhline", spy)
    code, _, err = _simulate(cli, inputs, "--report", str(tmp_path / "r"))
    assert code == 0, err
    assert (8.0, "budget") in lines
    assert (750.0, "SLO") in lines
    assert (tmp_path / "r" / "cost.png").stat().st_size > 1000


def test_decision_log_has_one_line_per_decision_per_policy(cli: Cli, inputs: dict[str, Path], tmp_path: Path) -> None:
    code, out, err = _simulate(cli, inputs, "--report", str(tmp_path / "r"), "--json")
    assert code == 0, err
    decisions = json.loads(out)["decisions"]
    logged = [json.loads(line) for line in (tmp_path / "r" / "decisions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert logged == decisions
    assert {d["policy"] for d in decisions} == set(POLICIES)
    assert [d["t_s"] for d in decisions] == sorted(d["t_s"] for d in decisions)
    for d in decisions:  # when, what, why
        assert 0 <= d["t_s"] < 200 and d["trace_s"] == d["t_s"] + 20
        assert d["message"].startswith("plan ") and f"reason={d['reason']}" in d["message"]
        assert d["plan"] and all(v["cpu_cores"] > 0 for v in d["plan"].values())
    ours = [d for d in decisions if d["policy"] == "ours"]
    assert any(d["plan"] != d["previous_plan"] for d in ours), "ours re-plans on a burst from 30 to 70 rps"
    report = (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    assert "### ours" in report and "### msplus" in report and ours[-1]["message"] in report


def test_series_are_in_json_only_when_asked(cli: Cli, inputs: dict[str, Path]) -> None:
    assert "series" not in _json(cli, inputs)
    series = _json(cli, inputs, "--series")["series"]
    assert set(series) == set(POLICIES)
    for columns in series.values():
        assert columns["t_s"][:3] == [0.0, 1.0, 2.0] and len(columns["t_s"]) == 200
        assert {"load_rps", "cpu_cores", "capacity_rps", "accuracy", "p99_ms"} <= set(columns)
        assert all(len(values) == 200 for values in columns.values())


def test_series_without_json_is_a_usage_error(cli: Cli, inputs: dict[str, Path]) -> None:
    code, _, err = _simulate(cli, inputs, "--series")
    assert code == 2
    assert "--series" in err and "--json" in err
