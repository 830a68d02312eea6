"""A user's cluster with two GPU types (examples/accelerators.yaml): plan, the hardware advice, simulate, run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.user.conftest import Cli

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "examples" / "accelerators.yaml"
PROFILE = ROOT / "examples" / "accelerators-profile.yaml"


def test_plan_json_names_each_deployments_hardware_the_cost_and_the_advice(cli: Cli) -> None:
    code, out, err = cli("plan", "-f", str(SPEC), "-p", str(PROFILE), "--load", "900", "--hardware", "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["status"] == "optimal" and plan["backend"] == "highs"
    hardware = {v["name"]: v["hardware"] for v in plan["variants"]}
    assert set(hardware.values()) <= {"cpu", "t4", "a100"} and "t4" in hardware.values()
    assert all(name.endswith(f"-{kind}") for name, kind in hardware.items() if kind != "cpu")
    prices = {"cpu": 0.04, "t4": 0.35, "a100": 2.90}
    by_hand = sum(v["replicas"] * (v["cpu"] * 0.04 + v["gpus"] * prices[v["hardware"]] * (v["hardware"] != "cpu")) for v in plan["variants"])
    assert plan["cost"] == pytest.approx(by_hand)
    assert sum(v["gpus"] * v["replicas"] for v in plan["variants"] if v["hardware"] == "t4") <= 4
    advice = plan["hardware"]
    assert set(advice) == {"resnet18", "resnet50", "resnet152"}
    first = advice["resnet50"][0]
    assert first["serves_all"] and first["hardware"] == "t4"  # cheaper than an A100 for 900 rps
    costs = [c["cost"] for c in advice["resnet50"] if c["serves_all"]]
    assert costs == sorted(costs)


def test_plan_warns_of_a_listed_type_the_profile_never_measured(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        SPEC.read_text(encoding="utf-8").replace(
            '      source: {uri: "pvc://models/resnet18", format: onnx}', '      source: {uri: "pvc://models/resnet18", format: onnx}\n      accelerators: [t4]'
        ),
        encoding="utf-8",
    )
    code, _, err = cli("plan", "-f", str(spec), "-p", str(PROFILE), "--load", "100")
    assert code == 0, err
    assert "spec.variants[0] (resnet18) lists accelerator t4, but the profile has no point of it on t4" in " ".join(err.split())


def test_simulate_prices_what_each_policy_held(cli: Cli, tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    trace.write_text("\n".join(str(300 + (i // 60) * 100) for i in range(240)), encoding="utf-8")
    args = ("simulate", "-f", str(SPEC), "--profile", str(PROFILE), "--trace", str(trace), "--format", "counts", "--history", "0")
    code, out, err = cli(*args, "--policies", "ours,static:resnet18@8", "--start-plan", "cold", "--json")
    assert code == 0, err
    rows = json.loads(out)["policies"]
    static = rows["static:resnet18@8"]
    assert static["avg_gpu"] == 0 and static["avg_cost"] == pytest.approx(static["avg_cpu"] * 0.04)
    ours = rows["ours"]
    assert ours["avg_gpu"] > 0  # it serves from GPUs, which the prices make cheaper per request
    assert ours["avg_cost"] > ours["avg_cpu"] * 0.04  # and pays for them
    assert ours["slo_violation_ratio"] < static["slo_violation_ratio"]


def test_run_refuses_named_accelerators_and_batch_sizes_before_anything_starts(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        SPEC.read_text(encoding="utf-8").replace("      accelerators: [t4, a100]\n", "      accelerators: [t4, a100]\n      batchSizes: [8]\n", 1),
        encoding="utf-8",
    )
    code, _, err = cli("run", "-f", str(spec), "--duration", "10")
    assert code == 2
    assert "spec.accelerators" in err and "spec.variants[1].batchSizes" in err and "embedded mode" in err and "Traceback" not in err


def test_plan_json_names_each_deployments_batch(cli: Cli, tmp_path: Path) -> None:
    spec, profile = tmp_path / "spec.yaml", tmp_path / "profile.yaml"
    spec.write_text(
        SPEC.read_text(encoding="utf-8").replace("      accelerators: [t4, a100]\n", "      accelerators: [t4, a100]\n      batchSizes: [8]\n", 1),
        encoding="utf-8",
    )
    batched = "    - {cpu: 2, gpus: 1, accelerator: t4, maxBatchSize: 8, capacityRps: 900}\n"
    profile.write_text(PROFILE.read_text(encoding="utf-8").replace("  resnet152:\n", batched + "  resnet152:\n"), encoding="utf-8")
    code, out, err = cli("plan", "-f", str(spec), "-p", str(profile), "--load", "900", "--json")
    assert code == 0, err
    batches = {v["name"]: v["batch"] for v in json.loads(out)["variants"]}
    assert batches.get("resnet50-t4-b8") == 8 and all(b == 0 for n, b in batches.items() if not n.endswith("-b8"))
