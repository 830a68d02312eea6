"""A user's mistakes in `plan` and `simulate`: each exits 2 naming the option, with a hint, before any long work.

Each test names the message users got before (in its docstring) and checks the exact message they get now.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from infadapter.cli.defaults import PAPER_SPEC

from .conftest import Cli

GPU_SPEC = {
    "apiVersion": "infadapter.io/v1alpha1",
    "kind": "InferenceService",
    "metadata": {"name": "svc"},
    "spec": {
        "modelName": "svc",
        "variants": [
            {"name": "effnet-b3", "accuracy": 0.816, "loadTimeSeconds": 5},
            {"name": "resnet50", "accuracy": 0.7613, "loadTimeSeconds": 7, "gpu": True},
        ],
        "slo": {"latencyMs": 200, "percentile": 99},
        "budget": {"cpu": 64, "gpu": 4},
        "resources": {"cpuStep": 1, "minCpu": 1, "maxCpu": 16, "maxReplicas": 8, "gpusPerReplica": [1]},
    },
}
GPU_PROFILE = {
    "kind": "Profile",
    "sloMs": 200,
    "variants": {
        "effnet-b3": [{"cpu": c, "capacityRps": 6 * c} for c in (1, 2, 4, 8, 16)],
        "resnet50": [*({"cpu": c, "capacityRps": 10 * c} for c in (1, 2, 4, 8, 16)), {"cpu": 2, "gpus": 1, "capacityRps": 900}],
    },
}


@pytest.fixture
def gpu_files(tmp_path: Path) -> dict[str, Path]:
    spec, profile = tmp_path / "svc.yaml", tmp_path / "svc-profile.yaml"
    spec.write_text(yaml.safe_dump(GPU_SPEC), encoding="utf-8")
    profile.write_text(yaml.safe_dump(GPU_PROFILE), encoding="utf-8")
    return {"spec": spec, "profile": profile}


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    path = tmp_path / "trace.txt"
    path.write_text("\n".join(str(30 + i % 7) for i in range(120)), encoding="utf-8")
    return path


@pytest.fixture
def no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulation must not start: a check that comes after it is a check that comes too late."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the simulation ran before the arguments were checked")

    monkeypatch.setattr("infadapter.sim.run.simulate", refuse)


def flat(text: str) -> str:
    return " ".join(text.split())


def test_a_profile_without_a_variant_of_the_spec_is_named_by_its_option(cli: Cli, trace: Path, paper_like_profile: Path, no_run: None) -> None:
    """Before: `invalid profile: spec.variants[1].name ...` (which file?); a variant measured only on GPUs was
    `internal error (KeyError: "profile has no points for variant 'resnet34' with 0 GPU(s)")`."""
    raw = yaml.safe_load(paper_like_profile.read_text(encoding="utf-8"))
    del raw["variants"]["resnet34"]
    paper_like_profile.write_text(yaml.safe_dump(raw), encoding="utf-8")
    code, _, err = cli("simulate", "--trace", str(trace), "--profile", str(paper_like_profile), "--spec", str(PAPER_SPEC), "--policies", "ours")
    assert code == 2
    assert flat(err) == (
        f"error: invalid --profile {paper_like_profile}: - spec.variants[1].name: variant 'resnet34' has no capacity in the "
        "profile (it has resnet101, resnet152, resnet18, resnet50) "
        "(hint: profile it with `infadapter profile` or rename the variant)"
    )


def test_a_variant_measured_only_on_gpus_is_a_warning_not_an_internal_error(cli: Cli, trace: Path, paper_like_profile: Path) -> None:
    raw = yaml.safe_load(paper_like_profile.read_text(encoding="utf-8"))
    raw["variants"]["resnet34"] = [{"cpu": 2, "gpus": 1, "capacityRps": 300}]
    paper_like_profile.write_text(yaml.safe_dump(raw), encoding="utf-8")
    code, _, err = cli("simulate", "--trace", str(trace), "--profile", str(paper_like_profile), "--spec", str(PAPER_SPEC), "--policies", "ours,msplus")
    assert code == 0 and "internal error" not in err
    assert "warning: spec.variants[1] (resnet34) was profiled only on GPUs" in flat(err)


def test_report_pointing_at_a_file_is_refused_before_the_simulation(cli: Cli, trace: Path, paper_like_profile: Path, tmp_path: Path, no_run: None) -> None:
    """Before: the whole simulation ran, then `internal error (FileExistsError: [Errno 17] File exists: 'existing.md')`."""
    existing = tmp_path / "existing.md"
    existing.write_text("mine\n", encoding="utf-8")
    base = ["simulate", "--trace", str(trace), "--profile", str(paper_like_profile), "--spec", str(PAPER_SPEC), "--policies", "ours"]
    code, _, err = cli(*base, "--report", str(existing))
    assert code == 2 and existing.read_text(encoding="utf-8") == "mine\n"
    assert flat(err) == (
        f"error: invalid arguments: - --report: {existing} is a file, not a directory "
        "(hint: give a directory for report.md and the plots, e.g. --report reports/sim)"
    )
    code, _, err = cli(*base, "--report", str(existing / "sub"))
    assert code == 2 and f"--report: cannot make {existing / 'sub'}: {existing} is a file" in flat(err)


@pytest.mark.parametrize("policies", ["", " , "])
def test_no_policy_is_an_error_not_an_empty_table(cli: Cli, trace: Path, paper_like_profile: Path, no_run: None, policies: str) -> None:
    """Before: an empty table and exit 0."""
    code, out, err = cli("simulate", "--trace", str(trace), "--profile", str(paper_like_profile), "--spec", str(PAPER_SPEC), "--policies", policies)
    assert code == 2 and out == ""
    assert flat(err) == (
        f"error: invalid arguments: - --policies: no policy given ({policies!r}) (hint: name at least one, e.g. "
        "--policies ours,msplus,oracle (default: ours,infadapter-paper,msplus,vpa,oracle))"
    )


def test_a_bad_policy_late_in_the_list_stops_the_run_before_the_first(cli: Cli, trace: Path, paper_like_profile: Path, no_run: None) -> None:
    """Before: `ours` was simulated in full, then `invalid policy: policy: 'bogus': unknown policy`."""
    code, _, err = cli("simulate", "--trace", str(trace), "--profile", str(paper_like_profile), "--spec", str(PAPER_SPEC), "--policies", "ours,bogus")
    assert code == 2
    assert flat(err) == (
        "error: invalid arguments: - --policies: 'bogus': unknown policy (hint: one of ours, infadapter-paper, msplus, "
        "oracle, vpa:<variant>, static:<variant>@<cores>)"
    )


def test_forgetting_spec_names_the_spec_that_was_used(cli: Cli, trace: Path, paper_like_profile: Path) -> None:
    """Before: examples/resnet.yaml was used silently."""
    note = f"note: no --spec: the paper's service, {PAPER_SPEC} (5 ResNets, SLO p99 750 ms, 20 cores) (hint: --spec FILE for yours)"
    code, out, err = cli("simulate", "--trace", str(trace), "--profile", str(paper_like_profile), "--policies", "ours")
    assert code == 0 and note in flat(err)
    code, out, err = cli("simulate", "--trace", str(trace), "--profile", str(paper_like_profile), "--policies", "ours", "--json")
    assert code == 0 and err == "" and json.loads(out)["spec"] == str(PAPER_SPEC)
    code, out, err = cli("plan", "--profile", str(paper_like_profile), "--load", "50")
    assert code == 0 and note in flat(err)


def test_forgetting_spec_outside_the_source_checkout_asks_for_it(cli: Cli, paper_like_profile: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("infadapter.cli.defaults.PAPER_SPEC", tmp_path / "not-installed.yaml")
    code, _, err = cli("plan", "--profile", str(paper_like_profile), "--load", "50")
    assert code == 2
    assert flat(err) == (
        f"error: invalid arguments: - --spec: missing, and the default (the paper's service, {tmp_path / 'not-installed.yaml'}) "
        "is not there: it ships with the source checkout only (hint: pass --spec FILE, your InferenceService YAML)"
    )


def test_backend_dp_with_gpu_options_names_the_backend(cli: Cli, gpu_files: dict[str, Path]) -> None:
    """Before: `internal error (NotApplicable: GPU options); this is a bug`."""
    code, _, err = cli("plan", "--spec", str(gpu_files["spec"]), "--profile", str(gpu_files["profile"]), "--load", "500", "--backend", "dp")
    assert code == 2
    assert flat(err) == (
        "error: invalid arguments: - --backend: the dynamic program (dp) solves CPU-only problems on a core grid, and this "
        "spec offers GPU options (gpu: true and budget.gpu) (hint: use --backend auto (it picks HiGHS here), highs or cbc)"
    )


def test_current_takes_replicas_and_gpus(cli: Cli, gpu_files: dict[str, Path]) -> None:
    """Before: `--current: '8x4' is not a number of cores (hint: write e.g. resnet152=20)`."""
    base = ["plan", "--spec", str(gpu_files["spec"]), "--profile", str(gpu_files["profile"]), "--load", "190", "--json"]
    code, out, err = cli(*base, "--current", "effnet-b3=8x4")
    assert code == 0, err
    chosen = json.loads(out)
    # 8 cores x 4 replicas of effnet-b3 serve 192 rps: keeping them costs no transition, so the plan is exactly that
    assert [(v["name"], v["cpu"], v["replicas"], v["gpus"]) for v in chosen["variants"]] == [("effnet-b3", 8.0, 4, 0)]
    code, out, err = cli(*base, "--current", "resnet50=2x3:gpu=1")
    assert code == 0, err


EXAMPLES = "(hint: e.g. resnet152=20, resnet50=2x3 or resnet50=2x3:gpu=1)"


@pytest.mark.parametrize(
    ("current", "message"),
    [
        ("effnet-b3=8x0", f"--current: 'effnet-b3=8x0': replicas must be a whole number 1..10000, got '0' {EXAMPLES}"),
        (
            "resnet50=2x3:gpu=2",
            "--current: resnet50 was not measured with 2 GPU(s) (the profile has: 1) (hint: profile that size, or give a measured GPU count)",
        ),
        ("resnet50=2:tpu=1", f"--current: 'resnet50=2:tpu=1': 'tpu=1' is not gpu=N (N GPUs per replica, 0..64) {EXAMPLES}"),
        ("effnet-b3", f"--current: 'effnet-b3' is not VARIANT=CORES[xREPLICAS][:gpu=N] {EXAMPLES}"),
    ],
)
def test_a_bad_current_names_the_part(cli: Cli, gpu_files: dict[str, Path], current: str, message: str) -> None:
    code, _, err = cli("plan", "--spec", str(gpu_files["spec"]), "--profile", str(gpu_files["profile"]), "--load", "100", "--current", current)
    assert code == 2 and flat(err) == f"error: invalid arguments: - {message}"


def test_start_plan_sets_and_shows_what_runs_when_the_window_begins(cli: Cli, trace: Path, paper_like_profile: Path) -> None:
    """Before: `No such option: --start-plan`; the start (resnet152 on 20 cores) was not shown."""
    base = ["simulate", "--trace", str(trace), "--profile", str(paper_like_profile), "--spec", str(PAPER_SPEC), "--policies", "ours"]
    code, out, _ = cli(*base)
    assert code == 0
    assert (
        "start: resnet152:20c/1.00 (default: the most accurate variant at its largest size; --start-plan to change; static and vpa "
        "policies start on their own plan)"
    ) in out
    code, out, _ = cli(*base, "--start-plan", "resnet50=4x2", "--json")
    assert code == 0
    start = json.loads(out)["start"]
    assert start["source"] == "--start-plan" and [(v["name"], v["cpu"], v["replicas"]) for v in start["plan"]] == [("resnet50", 4.0, 2)]
    code, out, _ = cli(*base, "--start-plan", "cold", "--json")
    assert code == 0 and json.loads(out)["start"] == {"source": "--start-plan", "plan": "cold"}


def test_a_start_plan_the_spec_cannot_run_is_refused_before_the_run(cli: Cli, trace: Path, paper_like_profile: Path, no_run: None) -> None:
    code, _, err = cli(
        "simulate", "--trace", str(trace), "--profile", str(paper_like_profile), "--spec", str(PAPER_SPEC), "--policies", "ours", "--start-plan", "resnet9=4"
    )
    assert code == 2
    assert flat(err) == (
        "error: invalid arguments: - --start-plan: unknown variant 'resnet9' (hint: use one of resnet18, resnet34, resnet50, resnet101, resnet152)"
    )


def test_simulate_reports_the_whole_window_of_a_trace(cli: Cli, tmp_path: Path, paper_like_profile: Path) -> None:
    counts = tmp_path / "counts.txt"
    counts.write_text(" ".join(str(int(c)) for c in np.full(60, 20)), encoding="utf-8")
    code, out, _ = cli("simulate", "--trace", str(counts), "--profile", str(paper_like_profile), "--spec", str(PAPER_SPEC), "--policies", "ours", "--json")
    assert code == 0 and json.loads(out)["window"] == {"start_s": 0, "duration_s": 60}
