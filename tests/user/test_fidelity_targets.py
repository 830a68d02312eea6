"""The fidelity benchmark's targets batch by batch, beside what the measurement's own noise allows
(``benchmarks/fidelity_output.py``, ``benchmarks/fidelity_pool.py``)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from fidelity_output import exact_chance, standard_error, targets_met
from fidelity_pool import batch_by_batch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _row(violations: float, cpu: float = 1.7, p99: float = 300.0) -> dict[str, float]:
    return {"slo_violation_ratio": violations, "avg_cpu": cpu, "avg_accuracy": 0.73, "p99_latency_ms": p99, "reconfigurations": 16.0}


def test_an_exact_simulator_meets_a_target_as_often_as_the_measured_mean_falls_within_it() -> None:
    # runs 1 %, 3 % and 5 % violations: standard error 1.155 points, so P(|N(0, 1.155)| <= 0.5) = 0.335
    se = standard_error([_row(0.01), _row(0.03), _row(0.05)])
    assert se["violations_points"] == pytest.approx(1.155, abs=1e-3)
    chance = exact_chance(se)
    assert chance["violations_within_0.5_points"] == pytest.approx(math.erf(0.5 / (1.1547 * math.sqrt(2))), abs=1e-3)
    assert chance["violations_within_0.5_points"] == pytest.approx(0.335, abs=1e-3)
    assert chance["cpu_within_10pct"] == 1.0  # the same cores every run: any exact simulator meets it
    # the chance falls as the noise grows, and one run (no standard error) gives none
    assert exact_chance({**se, "violations_points": 0.2})["violations_within_0.5_points"] > 0.98
    assert math.isnan(exact_chance(standard_error([_row(0.01)]))["violations_within_0.5_points"])
    assert math.isnan(exact_chance({"violations_points": None})["p99_within_25pct"])  # type: ignore[dict-item]


def _batch(error_points: float, se_points: float, p99_relative: float = 0.0) -> dict[str, Any]:
    errors = {"violations_points": error_points, "cpu_relative": 0.01, "p99_relative": p99_relative}
    return {"errors": errors, "measured_standard_error": {"violations_points": se_points, "cpu_relative": 0.005, "p99_relative": 0.2}}


def test_batch_by_batch_counts_the_targets_met_beside_those_an_exact_simulator_would_meet() -> None:
    outputs = {"a": _batch(0.3, 0.2), "b": _batch(-1.2, 1.5, p99_relative=-0.4), "c": _batch(0.6, 1.0)}
    out = batch_by_batch(outputs)
    assert out["batches"] == 3
    assert out["met"] == {"violations_within_0.5_points": 1, "cpu_within_10pct": 3, "p99_within_25pct": 2}
    expected = sum(math.erf(0.5 / (s * math.sqrt(2))) for s in (0.2, 1.5, 1.0))
    assert out["met_by_an_exact_simulator"]["violations_within_0.5_points"] == pytest.approx(expected, abs=0.06)
    assert out["violations_rms_points"] == pytest.approx(math.sqrt((0.09 + 1.44 + 0.36) / 3), abs=1e-3)
    assert out["violations_floor_rms_points"] == pytest.approx(math.sqrt((0.04 + 2.25 + 1.0) / 3), abs=1e-3)
    assert targets_met(outputs["a"]["errors"])["violations_within_0.5_points"]
    # a batch of one run has no standard error: no floor can be given for the pool
    one_run = {**outputs, "d": {"errors": outputs["a"]["errors"], "measured_standard_error": {"violations_points": None}}}
    assert math.isnan(batch_by_batch(one_run)["violations_floor_rms_points"])


def _output(tmp: Path, name: str, errors_points: float, runs: list[float]) -> Path:
    rows = [{"simulated": _row(0.02), "measured": _row(v)} for v in runs]
    se = standard_error([r["measured"] for r in rows])
    path = tmp / name
    errors = {"violations_points": errors_points, "cpu_relative": 0.0, "p99_relative": 0.0}
    path.write_text(json.dumps({"errors": errors, "measured_standard_error": se, "runs": rows}), encoding="utf-8")
    return path


def test_the_pool_prints_the_batch_by_batch_figures_and_refuses_what_is_not_an_output(tmp_path: Path) -> None:
    a = _output(tmp_path, "a.json", 0.0, [0.02, 0.02, 0.02])
    b = _output(tmp_path, "b.json", -2.0, [0.02, 0.04, 0.06])
    done = subprocess.run([sys.executable, str(BENCHMARKS / "fidelity_pool.py"), str(a), str(b)], capture_output=True, text=True, check=True)
    out = json.loads(done.stdout)
    assert out["runs"] == 6 and out["batch_by_batch"]["met"]["violations_within_0.5_points"] == 1
    assert [x["targets"]["violations_within_0.5_points"] for x in out["batches"]] == [True, False]
    assert out["batch_by_batch"]["met_by_an_exact_simulator"]["violations_within_0.5_points"] == pytest.approx(1.3, abs=0.05)  # 1.0 (no spread) + 0.335
    bad = tmp_path / "bad.json"
    bad.write_text("{}", encoding="utf-8")
    refused = subprocess.run([sys.executable, str(BENCHMARKS / "fidelity_pool.py"), str(bad)], capture_output=True, text=True, check=False)
    assert refused.returncode == 2 and "not an output of benchmarks/fidelity.py" in refused.stderr and not refused.stdout


def test_each_run_is_simulated_at_the_host_speed_measured_beside_it_and_at_the_profiles_beside_that() -> None:
    from fidelity_models import run_hosts

    from infadapter.sim.machine import Machine

    machine = Machine(cores=2.0, seed=7)
    headline, at_profile = run_hosts(machine, 2, 0.94)
    assert headline.speed == 0.94 and headline.seed == 9  # the run's own seed, the run's measured speed
    assert at_profile is not None and at_profile.speed == machine.speed and at_profile.seed == 9
    # where the host was not probed beside the profile and the run, one host: the profile's speed
    alone, none = run_hosts(machine, 0, None)
    assert alone.speed == machine.speed and alone.seed == 7 and none is None


def test_each_run_is_simulated_with_its_controllers_own_phase_and_the_modes_mean_beside_it() -> None:
    from fidelity_models import at_phase, run_latencies

    from infadapter.control import MODE_LATENCIES
    from infadapter.planning import Plan

    mean = MODE_LATENCIES["embedded"]  # a second seen 1.5 s after it ends: the mean over the phases measured
    # a run whose controller decided at .2 past its seconds sees each second 1.2 s after it ends
    decided = [(2.19, Plan(()), "in_place"), (8.21, Plan(()), "in_place"), (14.2, Plan(()), "in_place")]
    phase = at_phase(mean, decided)[0].observe_s
    assert phase == pytest.approx(0.2, abs=0.01)
    assert run_latencies(mean, phase).observe_s == pytest.approx(1.2, abs=0.01)
    assert run_latencies(mean, phase).startup_s == mean.startup_s  # only the observer's delay is the run's own
    assert run_latencies(mean, 0.99).observe_s == pytest.approx(1.99)  # just before a second ends: that second is not in yet
    assert run_latencies(mean, None) == mean  # a run that decided nothing: the mode's mean
