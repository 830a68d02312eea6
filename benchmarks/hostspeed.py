"""The host's speed from one moment to the next: how much a fixed piece of CPU work swings on this machine.

One thread repeats a small pure-Python computation for ``--seconds`` and counts how many it finishes in
every window of ``--window`` seconds (wall clock: what a server's requests see, time the hypervisor gives
to other machines included). Each window's count over the mean count is the host's *relative speed*
then. A cloud VM sharing its physical cores swings by tens of percent from one second to the next;
``benchmarks/fidelity.py`` measures this before its runs and hands the series to the simulator
(:class:`infadapter.sim.machine.Machine` ``jitter``). Run it on an otherwise idle machine.

Prints one JSON object on stdout: the windows' relative speeds and their summary (percentiles,
coefficient of variation, the correlation of one window with the next).

    .venv/bin/python benchmarks/hostspeed.py [--seconds 30] [--window 0.25]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infadapter.sim.machine import SAMPLES_PER_S  # noqa: E402

#: one unit of work: about 0.1-0.3 ms here, so a 0.25 s window counts ~1,000 of them (0.1 % resolution)
UNIT = 2_000


def _unit() -> int:
    total = 0
    for i in range(UNIT):
        total += i * i % 7
    return total


def relative_speeds(seconds: float, window_s: float = 1.0 / SAMPLES_PER_S) -> list[float]:
    """The host's speed in each ``window_s`` of ``seconds``, relative to the mean over them all."""
    if not 0.0 < window_s <= seconds:
        raise ValueError(f"window {window_s} s must be above 0 and at most the {seconds} s measured")
    counts: list[int] = []
    start = time.perf_counter()
    edge = start + window_s
    end = start + seconds
    done = 0
    while True:
        _unit()
        done += 1
        now = time.perf_counter()
        while now >= edge and edge <= end:  # a unit that spans windows counts in the one it ends in
            counts.append(done)
            done = 0
            edge += window_s
        if edge > end:
            break
    mean = statistics.fmean(counts)
    return [round(c / mean, 4) for c in counts]


def summary(speeds: list[float]) -> dict[str, float]:
    def pct(q: float) -> float:  # nearest rank: a window measured, not an interpolation
        return float(np.percentile(speeds, q, method="nearest"))

    mean = statistics.fmean(speeds)
    lag1 = statistics.correlation(speeds[:-1], speeds[1:]) if len(speeds) > 2 and len(set(speeds)) > 1 else 0.0
    return {
        "windows": len(speeds),
        "p5": pct(5),
        "p50": pct(50),
        "p95": pct(95),
        "min": min(speeds),
        "max": max(speeds),
        "cv": round(statistics.pstdev(speeds) / mean, 4),
        "lag1_correlation": round(lag1, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--window", type=float, default=1.0 / SAMPLES_PER_S, help="seconds per window")
    args = parser.parse_args()
    if not 0.0 < args.window <= args.seconds:
        parser.error("--window must be above 0 and at most --seconds")
    speeds = relative_speeds(args.seconds, args.window)
    print(json.dumps({"window_s": args.window, "summary": summary(speeds), "relative_speeds": speeds}))


if __name__ == "__main__":
    main()
