"""Progress of the long commands: on stderr, only on a terminal or with --progress; stdout untouched."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from infadapter.cli import progress as progress_module
from infadapter.cli.defaults import PAPER_SPEC

from .conftest import Cli


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    path = tmp_path / "trace.txt"
    path.write_text("\n".join(str(30 + i % 7) for i in range(120)), encoding="utf-8")
    return path


def test_simulate_shows_progress_only_when_asked_off_a_terminal(cli: Cli, trace: Path, paper_like_profile: Path) -> None:
    base = ["simulate", "--trace", str(trace), "--profile", str(paper_like_profile), "--spec", str(PAPER_SPEC), "--policies", "ours,msplus", "--json"]
    code, _, err = cli(*base)
    assert code == 0 and "progress" not in err  # not a terminal, not asked
    code, out, err = cli(*base, "--progress")
    assert code == 0 and json.loads(out)["policies"]  # stdout stays one JSON object
    assert "progress: 100% msplus: done" in err


def test_forecast_evaluate_counts_fits_and_ticks(cli: Cli, tmp_path: Path) -> None:
    trace = tmp_path / "load.txt"
    trace.write_text("\n".join(str(int(v)) for v in 40 + 10 * np.sin(np.arange(3000) / 60)), encoding="utf-8")
    base = ["forecast", "evaluate", "--trace", str(trace), "--train-days", "0.01", "--models", "ewma,last", "--json"]
    code, out, err = cli(*base, "--progress")
    assert code == 0 and set(json.loads(out)["models"]) == {"ewma", "last"}
    assert "progress: 100% last: tick 35/35 ticks" in err
    code, _, err = cli(*base, "--no-progress")
    assert code == 0 and "progress" not in err


def test_a_terminal_gets_a_bar_without_asking(cli: Cli, trace: Path, paper_like_profile: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)  # the captured stderr plays a terminal
    assert progress_module.wanted(None) is True and progress_module.wanted(False) is False
    code, out, err = cli("simulate", "--trace", str(trace), "--profile", str(paper_like_profile), "--spec", str(PAPER_SPEC), "--policies", "ours")
    assert code == 0 and "ours" in out and "start:" in out  # the results on stdout, as without a bar
    assert "simulate" in err and "progress:" not in err  # a rich bar, not the plain lines
