"""``infadapter forecast train|evaluate`` on a small synthetic trace file."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from infadapter.cli import app

from .synthetic import bursty_series, with_gaps


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    series = with_gaps(bursty_series(3 * 7200, seed=1), every_s=7200, gap_s=300)
    path = tmp_path_factory.mktemp("trace") / "trace.txt"
    path.write_text(" ".join(str(int(v)) for v in series))
    return path


def test_evaluate_prints_the_measures_of_each_model_as_json(trace: Path) -> None:
    days = 2 * 7200 / 86400
    result = CliRunner().invoke(app, ["forecast", "evaluate", "--trace", str(trace), "--models", "ewma,last,ours", "--train-days", f"{days}", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["models"]) == {"ewma", "last", "ours"}
    for measures in report["models"].values():
        assert set(measures) >= {"mape", "under_ratio", "over_provision_ratio", "pinball", "fit_s", "predict_ms"}
        assert 0 <= measures["under_ratio"] <= 1


def test_evaluate_without_json_prints_a_table(trace: Path) -> None:
    result = CliRunner().invoke(app, ["forecast", "evaluate", "--trace", str(trace), "--models", "last", "--train-days", "0.1"])
    assert result.exit_code == 0, result.output
    assert "under_ratio" in result.stdout and "last" in result.stdout


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--models", "prophet"], "unknown model"),
        (["--train-days", "30"], "leave nothing to score"),
        (["--quantile", "1.5"], "--quantile"),
    ],
)
def test_evaluate_refuses_bad_arguments_without_a_traceback(trace: Path, args: list[str], expect: str) -> None:
    result = CliRunner().invoke(app, ["forecast", "evaluate", "--trace", str(trace), *args])
    assert isinstance(result.exception, Exception) or result.exit_code == 2
    message = str(result.exception) + result.output
    assert expect in message


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed (pip install torch==2.13.0)")
def test_train_writes_weights_that_evaluate_can_use(trace: Path, tmp_path: Path) -> None:
    out = tmp_path / "w.pt"
    days = 2 * 7200 / 86400
    result = CliRunner().invoke(app, ["forecast", "train", "--trace", str(trace), "--train-days", f"{days}", "--epochs", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and json.loads(result.stdout)["fit_s"] > 0
    result = CliRunner().invoke(
        app, ["forecast", "evaluate", "--trace", str(trace), "--models", "lstm", "--train-days", f"{days}", "--lstm-weights", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert np.isfinite(json.loads(result.stdout)["models"]["lstm"]["mape"])
