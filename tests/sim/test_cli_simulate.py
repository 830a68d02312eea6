"""``infadapter simulate``: the JSON contract, the report, and clear errors (exit code 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from infadapter.cli import app

runner = CliRunner()
KEYS = {"slo_violation_ratio", "avg_cpu", "avg_gpu", "avg_cost", "avg_accuracy", "p99_latency_ms", "dropped_ratio", "reconfigurations"}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    per_core = (("resnet18", 24), ("resnet34", 13), ("resnet50", 10), ("resnet101", 5), ("resnet152", 3.5))
    rows = {n: [{"cpu": c, "capacityRps": k * c} for c in range(1, 21)] for n, k in per_core}
    profile = tmp_path / "profile.yaml"
    profile.write_text(yaml.safe_dump({"kind": "Profile", "sloMs": 750, "variants": rows}), encoding="utf-8")
    rng = np.random.default_rng(0)
    counts = np.concatenate((rng.poisson(40, 900), rng.poisson(150, 200), rng.poisson(40, 200)))
    trace = tmp_path / "trace.txt"
    trace.write_text(" ".join(str(int(c)) for c in counts), encoding="utf-8")
    return {"profile": profile, "trace": trace}


def test_json_has_every_policy_and_measure(files: dict[str, Path]) -> None:
    result = runner.invoke(
        app,
        [
            "simulate",
            "--trace",
            str(files["trace"]),
            "--profile",
            str(files["profile"]),
            "--start",
            "600",
            "--duration",
            "700",
            "--policies",
            "ours,infadapter-paper,vpa:resnet50,oracle",
            "--seed",
            "1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert set(out["policies"]) == {"ours", "infadapter-paper", "vpa:resnet50", "oracle"}
    for row in out["policies"].values():
        assert set(row) == KEYS
        assert 0.0 <= row["slo_violation_ratio"] <= 1.0
        assert 0.0 < row["avg_cpu"] <= 20.0
    assert out["window"] == {"start_s": 600, "duration_s": 700}


def test_report_writes_plots_and_markdown(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = runner.invoke(
        app, ["simulate", "--trace", str(files["trace"]), "--profile", str(files["profile"]), "--policies", "ours,static:resnet50@10", "--report", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert (out / "report.md").is_file()
    assert (out / "load.png").stat().st_size > 1000
    assert "static:resnet50@10" in (out / "report.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenario", "nope"], "unknown scenario"),
        (["--policies", "magic"], "unknown policy"),
        (["--start", "99999999"], "past the trace"),
        (["--arrivals", "bursty"], "unknown mode"),
        (["--latencies", "fast"], "--latencies: unknown mode 'fast'"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(files: dict[str, Path], args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    from infadapter.cli import main

    argv = ["infadapter", "simulate", "--trace", str(files["trace"]), "--profile", str(files["profile"]), *args]
    old = sys.argv
    sys.argv = argv
    try:
        with pytest.raises(SystemExit) as exit_info:
            main()
    finally:
        sys.argv = old
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err.replace("\n", " ")


def test_missing_default_data_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["simulate", "--trace", str(tmp_path / "absent.txt"), "--profile", str(tmp_path / "p.yaml")])
    assert result.exit_code != 0


def test_the_mode_s_latencies_change_what_a_burst_costs(files: dict[str, Path]) -> None:
    """Kubernetes' slower starts and weight propagation (MODE_LATENCIES) make the burst cost more than the embedded
    mode's: its new replicas serve later and the replaced ones are held longer."""
    outs = {}
    for mode in ("embedded", "kubernetes"):
        args = ["simulate", "--trace", str(files["trace"]), "--profile", str(files["profile"]), "--start", "800", "--duration", "400"]
        result = runner.invoke(app, [*args, "--policies", "ours", "--latencies", mode, "--json"])
        assert result.exit_code == 0, result.output
        outs[mode] = json.loads(result.output)
        assert outs[mode]["inputs"]["latencies"] == mode
    fast, slow = outs["embedded"]["policies"]["ours"], outs["kubernetes"]["policies"]["ours"]
    assert fast["reconfigurations"] >= 1  # the burst was acted on in both
    assert slow["slo_violation_ratio"] > fast["slo_violation_ratio"]
