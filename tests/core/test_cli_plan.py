"""`infadapter plan`: the JSON contract and clear errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infadapter.cli import app

runner = CliRunner()


@pytest.fixture
def tiny_profile(tmp_path: Path) -> Path:
    path = tmp_path / "profile.yaml"
    per_core = (("resnet18", 24), ("resnet34", 13), ("resnet50", 10), ("resnet101", 5), ("resnet152", 3.5))
    rows = {n: [{"cpu": c, "capacityRps": k * c} for c in range(1, 21)] for n, k in per_core}
    import yaml

    path.write_text(yaml.safe_dump({"kind": "Profile", "sloMs": 750, "variants": rows}), encoding="utf-8")
    return path


def test_plan_json_has_the_documented_fields(tiny_profile: Path) -> None:
    result = runner.invoke(app, ["plan", "--profile", str(tiny_profile), "--load", "60", "--current", "resnet152=20", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert set(out) >= {"status", "variants", "objective", "accuracy", "cost_cpu", "solve_ms"}
    assert out["status"] == "optimal"
    assert sum(v["weight"] for v in out["variants"]) == pytest.approx(1.0)
    assert {"name", "cpu", "replicas", "weight", "capacity_rps"} <= set(out["variants"][0])
    assert sum(v["capacity_rps"] for v in out["variants"]) >= 60 - 1e-6


def test_plan_table_without_json(tiny_profile: Path) -> None:
    result = runner.invoke(app, ["plan", "--profile", str(tiny_profile), "--load", "100"])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "objective" in result.output


def test_overload_is_flagged_not_raised(tiny_profile: Path) -> None:
    result = runner.invoke(app, ["plan", "--profile", str(tiny_profile), "--load", "5000", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["status"] == "infeasible"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--current", "resnet9=20"], "unknown variant 'resnet9'"),
        (["--budget-cores", "-3"], "--budget-cores"),
        (["--cost-weight", "-1"], "--cost-weight"),
        (["--load", "-5"], "--load"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(tiny_profile: Path, args: list[str], needle: str) -> None:
    base = ["plan", "--profile", str(tiny_profile), "--load", "60"]
    result = runner.invoke(app, base + args)
    assert result.exit_code == 2
    assert needle in result.output
    assert "Traceback" not in result.output


def test_malformed_spec_exits_2_naming_the_fields(tiny_profile: Path, tmp_path: Path, resnet_spec_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = resnet_spec_path.read_text(encoding="utf-8").replace("accuracy: 0.7613", "accuracy: high").replace("cpu: 20", "cpu: -20")
    bad.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["plan", "--profile", str(tiny_profile), "--load", "60", "--spec", str(bad)])
    assert result.exit_code == 2
    assert "spec.variants[2].accuracy" in result.output
    assert "spec.budget.cpu" in result.output


def test_missing_profile_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["plan", "--profile", str(tmp_path / "none.csv"), "--load", "60"])
    assert result.exit_code == 2
    assert "no such file" in result.output
