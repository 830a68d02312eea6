"""Requests from a per-second trace, and the dispatcher's smooth weighted round-robin."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ArrivalMode = Literal["poisson", "paper", "loadgen"]

#: SWRR weights are quantised to this many slots per cycle (0.1 % resolution)
SWRR_SLOTS = 1000
#: the paper's load generator: offsets drawn with mean 1 / (1.5 × rate), i.e. ~2/3 of the second
PAPER_SPEEDUP = 1.5


def request_counts(trace_rps: FloatArray, rng: np.random.Generator) -> IntArray:
    """Whole requests per second: NaN (unknown) counts as 0; fractional rates round at random."""
    rates = np.nan_to_num(np.asarray(trace_rps, dtype=np.float64), nan=0.0)
    whole = np.floor(rates)
    counts: IntArray = (whole + (rng.random(rates.size) < rates - whole)).astype(np.int64)
    return counts


def arrival_times(trace_rps: FloatArray, rng: np.random.Generator, mode: ArrivalMode = "poisson") -> FloatArray:
    """Sorted arrival times (s from the trace start) of every request of the trace.

    ``poisson``: each second's requests uniformly in the second (a Poisson process given its count);
    ``paper``: the paper's generator, cumulative exponential offsets of mean 1/(1.5·count) from the
    second's start, which packs the second's requests into about its first 0.67 s; ``loadgen``: the
    project's open-loop load generator, whose count each second is Poisson with the trace's rate.
    """
    if mode == "loadgen":  # infadapter.loadgen.arrivals_in_second: Poisson counts, uniform in the second
        counts = rng.poisson(np.clip(np.nan_to_num(np.asarray(trace_rps, dtype=np.float64), nan=0.0), 0.0, None)).astype(np.int64)
    else:
        counts = request_counts(trace_rps, rng)
    seconds = np.repeat(np.arange(counts.size, dtype=np.float64), counts)
    if mode != "paper":
        return np.sort(seconds + rng.random(seconds.size))
    per = np.repeat(counts, counts).astype(np.float64)
    gaps = rng.exponential(1.0, seconds.size) / (PAPER_SPEEDUP * np.maximum(per, 1.0))
    cum = np.cumsum(gaps)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    base = np.repeat(np.concatenate(([0.0], cum))[starts], counts)
    return np.sort(seconds + (cum - base))


def quantise(weights: FloatArray, slots: int = SWRR_SLOTS) -> tuple[int, ...]:
    """Integer weights summing to ``slots`` (largest remainders), zero for non-positive weights."""
    w = np.clip(np.asarray(weights, dtype=np.float64), 0.0, None)
    if w.sum() <= 0:
        w = np.ones_like(w)
    scaled = w / w.sum() * slots
    ints = np.floor(scaled).astype(np.int64)
    order = np.argsort(-(scaled - ints), kind="stable")
    ints[order[: slots - int(ints.sum())]] += 1
    return tuple(int(i) for i in ints)


@lru_cache(maxsize=1024)
def swrr_cycle(int_weights: tuple[int, ...]) -> IntArray:
    """One cycle of smooth weighted round-robin (nginx's): the target index of each slot.

    Ties go to the lowest index (``argmax`` returns the first maximum); one numpy step per slot, so a
    split over hundreds of replicas costs as little as one over a few.
    """
    weights = np.asarray(int_weights, dtype=np.int64)
    total = int(weights.sum())
    current = np.zeros(weights.size, dtype=np.int64)
    out = np.empty(total, dtype=np.int64)
    for slot in range(total):
        current += weights
        best = int(current.argmax())
        current[best] -= total
        out[slot] = best
    return out


def route(count: int, weights: FloatArray) -> IntArray:
    """Targets of ``count`` consecutive requests under SWRR with ``weights`` (cycle restarted)."""
    cycle = swrr_cycle(quantise(weights))
    reps = -(-count // cycle.size) if count else 0
    targets: IntArray = np.tile(cycle, reps)[:count]
    return targets


def observed_counts(arrivals_s: FloatArray, trace_rps: FloatArray) -> FloatArray:
    """What a mode's observer counts each second: the requests that arrived in it (a second the trace does
    not know, NaN, stays unknown)."""
    trace = np.asarray(trace_rps, dtype=np.float64)
    seconds = np.minimum(arrivals_s.astype(np.int64), max(0, trace.size - 1))
    counts = np.bincount(seconds, minlength=trace.size).astype(np.float64)[: trace.size]
    counts[np.isnan(trace)] = np.nan
    return counts
