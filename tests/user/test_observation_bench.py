"""``benchmarks/observation.py``: how late the operator's observer sees a change of load (real Prometheus)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

from observation import dwells, lag_summary, main, seen_at  # noqa: E402


def test_a_change_is_seen_only_in_a_second_that_ends_after_it() -> None:
    history = np.array([20.0, 20.0, 20.0, 40.0, 60.0])  # the seconds ending at 96..100
    assert seen_at(history, 100, 98.3, 40.0, rising=True)  # second 98-99 ends after the change at 98.3: it holds 40
    assert seen_at(history, 100, 98.3, 50.0, rising=True)  # a later second holds 60
    assert not seen_at(history, 100, 99.6, 70.0, rising=True)  # none holds 70
    assert not seen_at(history, 100, 100.2, 40.0, rising=True)  # no second after it yet
    assert not seen_at(np.array([60.0, 60.0, 20.0, 20.0]), 100, 98.5, 40.0, rising=True)  # the high load came before
    assert seen_at(np.array([60.0, 60.0, np.nan, 20.0]), 100, 98.5, 40.0, rising=False)  # falling; an unscraped second skipped
    assert not seen_at(np.array([60.0, np.nan, np.nan]), 100, 98.5, 40.0, rising=False)


def test_the_summary_counts_a_change_never_seen_as_missed_not_as_a_lag() -> None:
    out = lag_summary([0.5, 1.5, math.inf, 1.0])
    assert out["mean_s"] == 1.0 and out["median_s"] == 1.0 and out["missed"] == 1
    assert out["lags_s"] == [0.5, 1.5, 1.0]
    assert lag_summary([math.inf])["mean_s"] is None


def test_steps_wait_out_the_lookback_and_fall_at_every_phase_of_the_scrapes() -> None:
    waits = dwells(200, 5.0, seed=3)
    assert min(waits) >= 4 * 5 + 3 and set(waits) == set(range(23, 29))  # 4 intervals + 3 s, then 0-5 s more
    assert dwells(5, 5.0, seed=3) == dwells(5, 5.0, seed=3)


@pytest.mark.parametrize(("flag", "value"), [("--scrape-s", "1,x"), ("--scrape-s", "0.1"), ("--changes", "0"), ("--low", "80"), ("--targets", "0")])
def test_a_wrong_option_names_itself_and_exits_2(flag: str, value: str) -> None:
    done = subprocess.run([sys.executable, str(BENCH / "observation.py"), flag, value], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert flag in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_one_second_scrapes_are_seen_within_about_a_second_of_their_end(capsys: pytest.CaptureFixture[str]) -> None:
    """Real Prometheus scraping two routers every second; the load steps twice (about 30 s)."""
    assert main(["--scrape-s", "1", "--changes", "2", "--targets", "2", "--seed", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    (one,) = out["intervals"]
    assert one["scrape_interval_s"] == 1.0 and one["operator_step_s"] == 1.0
    for cadence in ("data", "fixed", "operator"):  # read continuously, once a second, and as the operator steps
        assert one[cadence]["missed"] == 0
        assert len(one[cadence]["lags_s"]) == 4  # two changes at two routers, each seen
        assert all(-1.0 <= lag <= 3.0 for lag in one[cadence]["lags_s"])
    assert one["data"]["mean_s"] <= one["fixed"]["mean_s"] + 0.2  # reading more often never sees later
    assert set(one["simulator_observe_s"]) == {"fixed", "operator"}
