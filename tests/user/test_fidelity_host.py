"""What a fidelity batch's host did beside its runs: the late requests in the stretches its speed probe read slow
(``benchmarks/fidelity_host.py``), and a batch replayed on another batch's profile (``--profile-of``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from fidelity_host import SLOW_HOST, slow_host_counts, slow_host_of, slow_host_shares, slow_windows
from fidelity_runs import load_runs, rebased

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_a_slow_second_marks_the_second_before_it_and_the_three_after_it_where_its_backlog_drains() -> None:
    speeds: list[float | None] = [1.0] * 12
    speeds[5] = SLOW_HOST - 0.1
    speeds[11] = None  # a second the probe did not read is not slow
    assert [int(x) for x in slow_windows(speeds)] == [0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0]
    assert not slow_windows([SLOW_HOST] * 4).any()  # at the threshold: not slow


def test_the_late_requests_in_a_slow_stretch_are_counted_apart_from_the_rest() -> None:
    speeds: list[float | None] = [1.0] * 10
    speeds[2] = 0.7  # stretch: seconds 1-5
    sent = [0.5, 1.5, 2.2, 2.7, 4.9, 6.0, 7.5, 9.9]
    latency = [50.0, 250.0, 400.0, -1.0, 80.0, 30.0, 300.0, 40.0]  # late: over 200 ms, or failed (-1)
    counts = slow_host_counts(sent, latency, speeds, 200.0)
    assert counts == {
        "slow_seconds": 1,
        "seconds": 10,
        "seconds_in_stretches": 5,
        "requests": 8,
        "requests_in_stretches": 4,
        "late": 4,
        "late_in_stretches": 3,
    }
    shares = slow_host_shares([counts, counts])
    assert shares["requests"] == 16 and shares["late_share"] == 0.75 and shares["time_share"] == 0.5
    assert shares["late_ratio_in_stretches"] == 0.75 and shares["late_ratio_elsewhere"] == 0.25
    with pytest.raises(ValueError, match="one latency per request"):
        slow_host_counts(sent, latency[:-1], speeds, 200.0)
    # a batch saved before the probe read each second says so
    assert slow_host_of([{"measured": {}}]).startswith("not measured")


def test_a_batch_replayed_on_another_profile_reads_its_hosts_speed_against_that_profiles_probe() -> None:
    rows = [{"host_speed": 1.0, "host_by_second": [1.0, None, 0.8]}, {"host_speed": None}]
    rebased(rows, {"cpu_ms": 10.0}, {"cpu_ms": 11.0})  # the other profile's host was 10 % slower: the runs' read faster
    assert rows[0] == {"host_speed": 1.1, "host_by_second": [1.1, None, 0.88]} and rows[1] == {"host_speed": None}
    unknown = [{"host_speed": 0.9}]
    rebased(unknown, {}, {"cpu_ms": 11.0})  # a profile measured without the probe: nothing to rebase on
    assert unknown == [{"host_speed": 0.9}]


def test_a_file_that_is_not_a_saved_batch_is_refused_by_name(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not a saved batch"):
        load_runs(text)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": 0}), encoding="utf-8")
    with pytest.raises(ValueError, match="not a saved batch of this format"):
        load_runs(other)
    # --profile-of needs --from-runs, and a file: exit 2 naming the option, before anything is measured
    done = subprocess.run([sys.executable, str(BENCHMARKS / "fidelity.py"), "--profile-of", str(other)], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "--profile-of" in done.stderr and "--from-runs" in done.stderr and not done.stdout
