"""The trace options of simulate, forecast, load and run, as a user meets them: exit codes, hints, notes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from infadapter.cli import main
from infadapter.cli.trace import MAX_SIMULATED_REQUESTS

EPOCH_S = 1_630_454_400


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``infadapter ARGV`` through the console-script edge; (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exited:
        main([*argv])
        raise SystemExit(0)
    out = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 0), out.out, out.err


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    per_core = (("resnet18", 24), ("resnet34", 13), ("resnet50", 10), ("resnet101", 5), ("resnet152", 3.5))
    rows = {n: [{"cpu": c, "capacityRps": k * c} for c in range(1, 21)] for n, k in per_core}
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump({"kind": "Profile", "sloMs": 750, "variants": rows}), encoding="utf-8")
    return path


@pytest.fixture
def epoch_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    stamps = np.sort(EPOCH_S + rng.uniform(0, 300, 9000)).astype(np.int64)  # ~30 rps for 5 minutes
    path = tmp_path / "epoch.txt"
    path.write_text("".join(f"{s}\n" for s in stamps), encoding="utf-8")
    return path


def test_simulate_reads_an_epoch_seconds_file_as_request_times(capsys: pytest.CaptureFixture[str], profile: Path, epoch_file: Path) -> None:
    code, out, err = cli(capsys, "simulate", "--trace", str(epoch_file), "--profile", str(profile), "--policies", "ours", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["requests"] == 9000 and result["window"]["duration_s"] == 300  # before: MemoryError (7.57 TiB)
    code, out, err = cli(capsys, "simulate", "--trace", str(epoch_file), "--profile", str(profile), "--policies", "ours")
    assert code == 0 and "note: epoch.txt: times read as seconds since 1970" in err


def test_simulate_refuses_more_requests_than_it_can_hold_before_allocating(capsys: pytest.CaptureFixture[str], profile: Path, tmp_path: Path) -> None:
    trace = tmp_path / "huge.txt"
    trace.write_text(" ".join([str(EPOCH_S)] * 30), encoding="utf-8")  # epoch seconds read as counts, one line
    code, _, err = cli(capsys, "simulate", "--trace", str(trace), "--profile", str(profile), "--format", "counts")
    assert code == 2
    assert f"more than the simulator takes ({MAX_SIMULATED_REQUESTS:,}" in err and "--format" in err
    assert "internal error" not in err


@pytest.mark.parametrize("command", [["forecast", "evaluate"], ["forecast", "train", "--out", "w.pt"], ["simulate"]])
def test_an_ambiguous_trace_exits_2_with_a_hint_naming_format(capsys: pytest.CaptureFixture[str], tmp_path: Path, profile: Path, command: list[str]) -> None:
    trace = tmp_path / "rel.txt"
    trace.write_text("".join(f"{s}\n" for s in sorted(np.random.default_rng(1).integers(0, 100, 400))), encoding="utf-8")
    extra = ["--profile", str(profile)] if command == ["simulate"] else []
    code, _, err = cli(capsys, *command, "--trace", str(trace), *extra)
    assert code == 2
    assert "--format timestamps" in err and str(trace) in err and "hint:" in err


def test_load_names_a_bad_trace_before_sending(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    trace = tmp_path / "bad.txt"
    trace.write_text("5\n6\nsix\n", encoding="utf-8")
    code, _, err = cli(capsys, "load", "--url", "127.0.0.1:9", "--trace", str(trace))
    assert code == 2 and "--trace" in err and "line 3: not a number: 'six'" in err


@pytest.mark.parametrize(
    ("command", "args", "option"),
    [
        (["simulate"], ["--format", "parquet"], "--format"),
        (["forecast", "evaluate", "--trace", "t.txt"], ["--interval", "0"], "--interval"),
        (["load", "--url", "127.0.0.1:9", "--rate", "1"], ["--time-unit", "fortnights"], "--time-unit"),
        (["run", "-f", "examples/demo.yaml"], ["--format", "counts", "--column", "rps"], "--column"),
    ],
)
def test_bad_trace_options_exit_2_naming_the_option(capsys: pytest.CaptureFixture[str], command: list[str], args: list[str], option: str) -> None:
    code, _, err = cli(capsys, *command, *args)
    assert code == 2 and option in err and "hint:" in err, err


def test_per_minute_counts_through_forecast(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    minutes = np.random.default_rng(2).poisson(3000, 60 * 24)  # one day of per-minute counts
    trace = tmp_path / "minutes.txt"
    trace.write_text("\n".join(map(str, minutes)), encoding="utf-8")
    code, out, err = cli(capsys, "forecast", "evaluate", "--trace", str(trace), "--interval", "60", "--models", "last", "--train-days", "0.5", "--json")
    assert code == 0, err
    assert json.loads(out)["windows"] > 0 and "spread evenly" in err
