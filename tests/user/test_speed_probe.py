"""The fidelity benchmark's reading of the host's speed second by second (``benchmarks/speedprobe.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from speedprobe import HALF_WINDOW_S, SpeedProbe, speed_by_second


def test_each_second_reads_the_mean_of_the_samples_near_it_against_the_reference() -> None:
    start = 1_000.0
    # two samples a second: 10 ms of CPU per inference, 12.5 ms (a host 20 % slow) from 10 s to 16 s
    samples = [(start + k / 2, 0.0125 if 20 <= k < 32 else 0.010, 0.0) for k in range(48)]
    samples[40] = (samples[40][0], 0.019, 0.0)  # one slow inference at 20 s: the seconds near it read it, averaged
    speeds = speed_by_second(samples, start, 24, reference_cpu_ms=10.0)
    assert len(speeds) == 24
    assert speeds[2] == 1.0 and speeds[5] == 1.0 and speeds[23] == 1.0
    assert speeds[13] == pytest.approx(0.8)  # the slow stretch, read where every near sample is in it
    assert all(0.8 <= s <= 1.0 for s in speeds)
    assert speeds[20] == pytest.approx(10.0 / (10.0 + 9.0 / 9), abs=1e-3)  # 9 samples within 2 s of 20.5 s, one 9 ms slower
    assert HALF_WINDOW_S < 3  # a slow stretch of a few seconds is not averaged away


def test_seconds_without_samples_take_the_nearest_known_and_no_samples_mean_a_steady_host() -> None:
    start = 0.0
    samples = [(1.5, 0.020, 0.0), (2.0, 0.020, 0.0)]  # a host at half the reference's speed, seen only near 1-2 s
    assert speed_by_second(samples, start, 10, reference_cpu_ms=10.0) == [0.5] * 10
    assert speed_by_second([], start, 3, reference_cpu_ms=10.0) == [1.0, 1.0, 1.0]
    assert speed_by_second(samples, start, 3, reference_cpu_ms=0.0) == [1.0, 1.0, 1.0]


def test_a_runs_raw_samples_are_kept_on_its_own_clock_and_only_within_it() -> None:
    probe = SpeedProbe.__new__(SpeedProbe)  # the samples alone: no child process to time inferences
    probe.samples = [(99.5, 0.010, 0.0), (100.0, 0.012, 0.0), (150.25, 0.0111, 0.0), (280.5, 0.010, 0.0)]
    assert probe.samples_within(100.0, 180.0) == [[0.0, 12.0], [50.25, 11.1]]
    assert probe.samples_within(300.0, 180.0) == []
