"""GPUs end to end: each instance is simulated at its own measured capacity, a variant profiled only on
GPUs is planned and simulated, GPU cost shows in every output, and a GPU-less budget is a clear warning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from infadapter.cli import app
from infadapter.control import Action, Latencies, VariantTarget
from infadapter.planning import plan_for_load
from infadapter.planning.gaps import gpu_warnings
from infadapter.profiles import load_profile
from infadapter.sim.actuator import SimActuator
from infadapter.sim.engine import Timeline
from infadapter.sim.run import simulate
from infadapter.spec import load_spec

runner = CliRunner()

#: ``big`` serves 4 rps on 4 cores but 220 rps with one GPU (and 4 cores); ``vit`` was measured only on a GPU
PROFILE = {
    "kind": "Profile",
    "sloMs": 750,
    "variants": {
        "small": [{"cpu": c, "capacityRps": 20 * c} for c in (1, 2, 4, 8)],
        "big": [{"cpu": 1, "capacityRps": 1}, {"cpu": 4, "capacityRps": 4}, {"cpu": 8, "capacityRps": 8}, {"cpu": 4, "gpus": 1, "capacityRps": 220}],
        "vit": [{"cpu": 4, "gpus": 1, "capacityRps": 150}],
    },
}


def _spec(variants: list[dict[str, object]], gpus: int) -> dict[str, object]:
    return {
        "apiVersion": "infadapter.io/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "gpu-demo"},
        "spec": {
            "modelName": "demo",
            "variants": variants,
            "slo": {"latencyMs": 750, "percentile": 99},
            "budget": {"cpu": 16, "gpu": gpus},
            "resources": {"cpuStep": 1, "minCpu": 1, "maxCpu": 8, "maxReplicas": 2},
        },
    }


SMALL = {"name": "small", "accuracy": 0.70, "loadTimeSeconds": 2}
BIG = {"name": "big", "accuracy": 0.78, "loadTimeSeconds": 3, "gpu": True}
VIT = {"name": "vit", "accuracy": 0.81, "loadTimeSeconds": 5, "gpu": True}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {
        "profile": tmp_path / "profile.yaml",
        "big": tmp_path / "big.yaml",  # small + big, one GPU
        "vit": tmp_path / "vit.yaml",  # small + big + vit (GPU only), one GPU
        "nogpu": tmp_path / "nogpu.yaml",  # the same without a GPU budget
        "trace": tmp_path / "trace.txt",
    }
    out["profile"].write_text(yaml.safe_dump(PROFILE), encoding="utf-8")
    out["big"].write_text(yaml.safe_dump(_spec([SMALL, BIG], 1)), encoding="utf-8")
    out["vit"].write_text(yaml.safe_dump(_spec([SMALL, BIG, VIT], 1)), encoding="utf-8")
    out["nogpu"].write_text(yaml.safe_dump(_spec([SMALL, BIG, VIT], 0)), encoding="utf-8")
    counts = np.concatenate((np.full(60, 100), np.linspace(100, 140, 120).round(), np.full(120, 140)))  # within vit's 150
    out["trace"].write_text("\n".join(str(int(c)) for c in counts) + "\n", encoding="utf-8")
    return out


def test_a_gpu_plan_is_simulated_at_the_gpu_capacity_not_at_its_cores(files: dict[str, Path]) -> None:
    """One GPU replica of ``big`` (220 rps) must not be simulated as its 4 cores (4 rps): 99.99 % violations before."""
    spec, profile = load_spec(files["big"]), load_profile(files["profile"])
    start = plan_for_load(spec, profile, 150.0)
    assert [(v.name, v.gpus) for v in start.variants] == [("big", 1)]
    runs = simulate(spec, profile, np.full(240, 150.0), ["ours", "oracle"], start=start)
    for run in runs.values():
        assert run.summary["slo_violation_ratio"] < 0.002, run.name
        assert run.summary["avg_gpu"] == pytest.approx(1.0)
        assert run.summary["avg_cpu"] == pytest.approx(4.0)
        assert {i.gpus for i in run.timeline.instances.values()} == {1}


def test_a_variant_profiled_only_on_gpu_is_planned_and_its_gpu_cost_printed(files: dict[str, Path]) -> None:
    result = runner.invoke(app, ["plan", "--profile", str(files["profile"]), "--spec", str(files["vit"]), "--load", "120", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [(v["name"], v["gpus"], v["cpu"]) for v in out["variants"]] == [("vit", 1, 4.0)]
    assert (out["cost_cpu"], out["cost_gpu"], out["warnings"]) == (4.0, 1, [])
    table = runner.invoke(app, ["plan", "--profile", str(files["profile"]), "--spec", str(files["vit"]), "--load", "120"])
    assert table.exit_code == 0, table.output
    assert "4 cores, 1 GPUs" in table.stdout


def test_simulate_end_to_end_on_a_gpu_only_variant(files: dict[str, Path]) -> None:
    """The oracle and ours serve a load the GPU plan covers with no violation; GPU cost in JSON and table."""
    args = ["simulate", "--trace", str(files["trace"]), "--format", "counts", "--spec", str(files["vit"]), "--profile", str(files["profile"]), "--history", "0"]
    result = runner.invoke(app, [*args, "--policies", "ours,oracle,msplus,vpa", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out["policies"]) == {"ours", "oracle", "msplus", "vpa:small", "vpa:big"}  # vpa only where CPU was measured
    for name in ("ours", "oracle"):
        row = out["policies"][name]
        assert row["slo_violation_ratio"] < 0.001, name
        assert row["avg_gpu"] == pytest.approx(1.0), name
    assert out["policies"]["msplus"]["avg_gpu"] < 0.5  # the start (vit on its GPU) until its first plan: CPU only (noted)
    assert any("CPU sizes only" in note for note in out["notes"]["msplus"])
    table = runner.invoke(app, [*args, "--policies", "ours"])
    assert table.exit_code == 0, table.output
    assert "avg GPUs" in table.stdout


def test_gpu_true_without_a_gpu_budget_is_a_warning_not_silence(files: dict[str, Path]) -> None:
    spec, profile = load_spec(files["nogpu"]), load_profile(files["profile"])
    warnings = gpu_warnings(spec, profile)
    assert len(warnings) == 2
    assert "(big) has gpu: true but spec.budget.gpu is 0" in warnings[0]
    assert "(vit) was profiled only on GPUs" in warnings[1] and "never planned" in warnings[1]
    result = runner.invoke(app, ["plan", "--profile", str(files["profile"]), "--spec", str(files["nogpu"]), "--load", "50", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["warnings"] == warnings  # stdout stays one JSON object
    assert "warning: spec.variants[1] (big) has gpu: true but spec.budget.gpu is 0" in result.stderr
    args = [
        "simulate",
        "--trace",
        str(files["trace"]),
        "--format",
        "counts",
        "--spec",
        str(files["nogpu"]),
        "--profile",
        str(files["profile"]),
        "--history",
        "0",
        "--policies",
        "ours",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "budget.gpu is 0" in result.stderr


def test_no_warning_when_the_gpus_are_usable(files: dict[str, Path]) -> None:
    assert gpu_warnings(load_spec(files["vit"]), load_profile(files["profile"])) == []


def test_other_hardware_replaces_a_replica_and_its_gpu_is_never_counted_early(files: dict[str, Path]) -> None:
    """CPU -> GPU at the same core count is a new replica (cold start), never an in-place resize; until
    it serves, the controller does not see the CPU replica as the GPU's capacity."""
    spec = load_spec(files["big"])
    timeline = Timeline()
    actuator = SimActuator(spec, Latencies(), timeline)
    actuator.execute(Action((VariantTarget("big", 4.0, 1, 0),), {"big": 1.0}), 0.0)
    actuator.execute(Action((VariantTarget("big", 4.0, 1, 1, in_place=True),), {"big": 1.0}), 10.0)
    first, second = timeline.instances.values()
    assert (first.gpus, first.end_s) == (0, second.serve_from_s)
    assert (second.gpus, second.cost_from_s, second.serve_from_s) == (1, 10.0, 10.0 + 3.0 + 4.0)
    assert actuator.state(12.0).variant("big").ready_cores == ()  # type: ignore[union-attr]
    assert actuator.state(17.5).variant("big").ready_cores == (4.0,)  # type: ignore[union-attr]


def test_gpu_series_and_cost_count_starting_and_draining_instances(files: dict[str, Path]) -> None:
    spec, profile = load_spec(files["big"]), load_profile(files["profile"])
    runs = simulate(spec, profile, np.full(60, 150.0), ["static:big@4"], with_series=True)
    assert runs["static:big@4"].summary["avg_gpu"] == 0.0  # a static CPU plan
    runs = simulate(spec, profile, np.full(60, 150.0), ["ours"], start=plan_for_load(spec, profile, 150.0), with_series=True)
    assert runs["ours"].series["gpus"].tolist() == [1.0] * 60


def test_the_report_shows_gpu_cost(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    args = [
        "simulate",
        "--trace",
        str(files["trace"]),
        "--format",
        "counts",
        "--spec",
        str(files["vit"]),
        "--profile",
        str(files["profile"]),
        "--history",
        "0",
        "--policies",
        "ours",
        "--report",
        str(out),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    text = (out / "report.md").read_text(encoding="utf-8")
    assert "avg_gpu" in text and "## GPUs allocated" in text
    assert (out / "gpus.png").stat().st_size > 0
