"""Nothing but our JSON reaches stdout: HiGHS's banner and CBC's log stay inside the solver.

Run in fresh processes, because HiGHS prints its banner once per process, at its first instance.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> dict[str, Any]:
    """The command's stdout, parsed as one JSON object (fails on anything else there)."""
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


def _plan(*args: str) -> dict[str, Any]:
    return _run(sys.executable, "-c", "from infadapter.cli import main; main()", "plan", *args, "--json")


@pytest.fixture
def cpu_profile(tmp_path: Path) -> Path:
    per_core = (("resnet18", 24), ("resnet34", 13), ("resnet50", 10), ("resnet101", 5), ("resnet152", 3.5))
    rows = {n: [{"cpu": c, "capacityRps": k * c} for c in range(1, 21)] for n, k in per_core}
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump({"kind": "Profile", "sloMs": 750, "variants": rows}), encoding="utf-8")
    return path


@pytest.fixture
def gpu_service(tmp_path: Path) -> tuple[Path, Path]:
    """A spec whose large variant may take a GPU, and a profile that measured it: the MILP's case."""
    spec = {
        "apiVersion": "infadapter.io/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "gpu", "namespace": "default"},
        "spec": {
            "modelName": "gpu",
            "variants": [
                {"name": "small", "accuracy": 0.70, "loadTimeSeconds": 5, "source": {"uri": "pvc://m/small", "format": "onnx"}},
                {"name": "large", "accuracy": 0.80, "loadTimeSeconds": 9, "gpu": True, "source": {"uri": "pvc://m/large", "format": "onnx"}},
            ],
            "budget": {"cpu": 8, "gpu": 1},
            "resources": {"cpuStep": 1, "minCpu": 1, "maxCpu": 8},
        },
    }
    rows = {
        "small": [{"cpu": c, "capacityRps": 20 * c} for c in range(1, 9)],
        "large": [{"cpu": c, "capacityRps": 4 * c} for c in range(1, 9)] + [{"cpu": 1, "gpus": 1, "capacityRps": 300}],
    }
    spec_path, profile_path = tmp_path / "spec.yaml", tmp_path / "gpu-profile.yaml"
    spec_path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    profile_path.write_text(yaml.safe_dump({"kind": "Profile", "sloMs": 750, "variants": rows}), encoding="utf-8")
    return spec_path, profile_path


@pytest.mark.parametrize("backend", ["highs", "cbc"])
def test_plan_json_with_a_milp_backend_is_pure_json(cpu_profile: Path, backend: str) -> None:
    out = _plan("--profile", str(cpu_profile), "--load", "60", "--current", "resnet152=20", "--backend", backend)
    assert (out["status"], out["backend"]) == ("optimal", backend)


def test_plan_json_for_a_gpu_service_names_the_milp_and_is_pure_json(gpu_service: tuple[Path, Path]) -> None:
    spec, profile = gpu_service
    out = _plan("--spec", str(spec), "--profile", str(profile), "--load", "250")
    assert (out["status"], out["backend"]) == ("optimal", "highs")  # auto: GPU options need the MILP
    assert [v["gpus"] for v in out["variants"] if v["name"] == "large"] == [1]


def test_the_solver_benchmark_prints_only_json() -> None:
    out = _run(sys.executable, "benchmarks/solver.py", "--backends", "highs", "--cases", "paper_size", "--repeats", "1")
    assert out["backends"]["highs"]["solved_by"] == {"highs": 40}
