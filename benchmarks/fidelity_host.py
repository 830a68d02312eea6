"""How much of a measured run's lateness came while the host ran slow: the requests sent in the stretches around
the seconds the speed probe (``benchmarks/speedprobe.py``) read the host below :data:`SLOW_HOST`, and their late share.

Replayed on the saved batches B-P of 2026-12-05/06 (45 runs), these stretches were 2.1 % of the time and 2.2 % of
the requests, and held 7.1 % of the late requests: 8.1 % of the requests sent in them were late, 2.4 % of the others.
Batch I's three runs sent 41 % of their late requests in them (5 % of its time; 28 % of those requests late): in
one second of its first run the medians Envoy logged rose from 77 to 473 ms on ResNet-50 and from 47 to 151 ms on
ResNet-18, both servers at once. In such stretches of batches K and L the probe, which samples every 0.5 s, went
0.7-1.8 s without a sample. The host stalled, which neither the run's mean host speed nor its speed second by
second reproduces in the simulator. ``measured_slow_host`` gives these figures per run and pooled, so that a
batch's error can be told apart from its host's stalls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: a second the probe read the host below this speed (relative to the profile's) is slow: on the saved batches B-P
#: the per-second readings had mean 0.99 and standard deviation 0.047, and 0.9 % of 9,900 seconds were below 0.85
SLOW_HOST = 0.85
#: a slow second's stretch: from the second before it (the probe's readings are means over +-2 s) to the end of
#: the third after it, while the backlog it left drains
BEFORE_S, AFTER_S = 1, 3


#: the counts of :func:`slow_host_counts`, in its order
COUNTS = ("slow_seconds", "seconds", "seconds_in_stretches", "requests", "requests_in_stretches", "late", "late_in_stretches")


def slow_windows(by_second: Sequence[float | None], below: float = SLOW_HOST) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Per second, whether it lies in a slow second's stretch (:data:`BEFORE_S` before it to :data:`AFTER_S` after)."""
    inside = np.zeros(len(by_second), dtype=bool)
    for second in slow_seconds(by_second, below):
        inside[max(0, second - BEFORE_S) : second + AFTER_S + 1] = True
    return inside


def slow_seconds(by_second: Sequence[float | None], below: float = SLOW_HOST) -> list[int]:
    """The seconds the probe read the host below ``below`` (a second it did not read is not slow)."""
    return [k for k, v in enumerate(by_second) if v is not None and v < below]


def slow_host_counts(sent_s: Sequence[float], latency_ms: Sequence[float], by_second: Sequence[float | None], slo_ms: float) -> dict[str, int]:
    """The counts behind :func:`slow_host_shares` of one run: its seconds, requests and late requests (over the SLO or
    failed: a latency below 0), all and within the slow stretches. ``latency_ms`` in the order of ``sent_s``."""
    if len(sent_s) != len(latency_ms):
        raise ValueError(f"{len(sent_s)} send times for {len(latency_ms)} latencies: give one latency per request")
    inside = slow_windows(by_second)
    sent = np.asarray(sent_s, dtype=np.float64)
    latency = np.asarray(latency_ms, dtype=np.float64)
    second = np.clip(sent.astype(np.int64), 0, max(0, inside.size - 1))
    within = inside[second] if inside.size else np.zeros(sent.size, dtype=bool)
    late = (latency < 0.0) | (latency > slo_ms)
    return {
        "slow_seconds": len(slow_seconds(by_second)),
        "seconds": int(inside.size),
        "seconds_in_stretches": int(np.count_nonzero(inside)),
        "requests": int(sent.size),
        "requests_in_stretches": int(np.count_nonzero(within)),
        "late": int(np.count_nonzero(late)),
        "late_in_stretches": int(np.count_nonzero(late & within)),
    }


def slow_host_shares(counts: Sequence[dict[str, int]]) -> dict[str, Any]:
    """Runs' :func:`slow_host_counts` summed, and the shares they give: of the time, the requests and the late
    requests in the slow stretches, and the late ratio inside them and outside."""
    total = {key: sum(c[key] for c in counts) for key in COUNTS}

    def share(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    return {
        **total,
        "time_share": share(total["seconds_in_stretches"], total["seconds"]),
        "requests_share": share(total["requests_in_stretches"], total["requests"]),
        "late_share": share(total["late_in_stretches"], total["late"]),
        "late_ratio_in_stretches": share(total["late_in_stretches"], total["requests_in_stretches"]),
        "late_ratio_elsewhere": share(total["late"] - total["late_in_stretches"], total["requests"] - total["requests_in_stretches"]),
    }


def slow_host_of(runs: Sequence[dict[str, Any]]) -> dict[str, Any] | str:
    """:func:`slow_host_shares` of the runs' ``measured_slow_host`` counts, or why there are none."""
    counts = [r["measured_slow_host"] for r in runs if r.get("measured_slow_host")]
    return slow_host_shares(counts) if counts else "not measured (runs saved before the speed probe read each second)"
