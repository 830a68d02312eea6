"""Named scenarios, default data paths, benchmark windows, and the report glue.

The paper's window: ``workload[15·86400 + 82·60 : 15·86400 + 103·60]`` in the authors' starter, i.e.
trace seconds **1,300,920 – 1,302,180** (0-based indices into the per-second Twitter trace). This is the
window ``../shared/data/infadapter_eval_segment_rps.csv`` holds (its ``trace_index`` column starts at
1,300,920, 121,697 requests, burst at minute 10). The issue text quotes 1,301,320 – 1,302,580: that is
the same length shifted by 400 s, matches no expression of the authors' code and puts the burst at
minute 3, so the simulator uses the code's (and the CSV's) convention.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infadapter.cache import cache_root
from infadapter.errors import FieldError, InvalidInput
from infadapter.sim.engine import FloatArray

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"
DEFAULT_TRACE = SHARED_DATA / "twitter_trace_2021-08_workload.tbz2"
DEFAULT_PROFILE = SHARED_DATA / "capacity_result_Feb_21.csv"
DEFAULT_SPEC = ROOT / "examples" / "resnet.yaml"
#: the paper's LSTM (14 days of the Twitter trace, 30 epochs, seed 7) as ``benchmarks/paper.py`` caches it
DEFAULT_LSTM = cache_root() / "lstm-twitter-14d.pt"

PAPER_START_S = 15 * 86400 + 82 * 60  # 1,300,920
PAPER_DURATION_S = 21 * 60
PAPER_SLO_MS = 750.0
#: history the operator would hold before the window (ours/oracle use it; the paper's adapter
#: only saw its own run, as its dispatcher counter started with the run)
PRE_HISTORY_S = 24 * 3600


@dataclass(frozen=True)
class Window:
    start_s: int
    duration_s: int
    label: str


def paper_window() -> Window:
    return Window(PAPER_START_S, PAPER_DURATION_S, "paper")


def require_file(path: Path | None, default: Path, what: str, option: str) -> Path:
    """``path`` or the shared-data default; InvalidInput with a hint when neither exists."""
    chosen = path if path is not None else default
    if not chosen.is_file():
        where = f"{chosen}" if path is not None else f"the default {default}"
        raise InvalidInput([FieldError(option, f"no {what} at {where}", f"pass {option} PATH")], "arguments")
    return chosen


def burst_windows(
    series_rps: FloatArray,
    count: int = 10,
    *,
    first_day: int = 15,
    last_day: int = 22,
    duration_s: int = PAPER_DURATION_S,
    lead_s: int = 600,
    avoid: tuple[tuple[int, int], ...] = (),
    pre_s: int = PRE_HISTORY_S,
) -> list[Window]:
    """The ``count`` largest bursts of days ``first_day``..``last_day`` (documented rule).

    A burst's size is the rise of the 1-minute mean rate over the mean of the 10 minutes before it.
    Windows start ``lead_s`` before the burst minute (like the paper's, whose burst is at minute 10),
    contain no masked (NaN) second, overlap neither each other nor ``avoid``, and have ``pre_s`` of
    history before them. Greedy by burst size.
    """
    begin = max(first_day * 86400, pre_s + lead_s)
    end = min(series_rps.size, last_day * 86400) - duration_s
    minutes = (end - begin) // 60
    base = begin
    block = series_rps[base : base + minutes * 60].reshape(minutes, 60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN minutes are collection gaps
        mean = np.nanmean(block, axis=1) if minutes else np.empty(0)
    scores = np.full(minutes, -np.inf)
    for i in range(10, minutes):
        before = mean[i - 10 : i]
        if np.isnan(before).any() or math.isnan(mean[i]):
            continue
        scores[i] = mean[i] - before.mean()
    chosen: list[Window] = []
    taken = list(avoid)
    for i in np.argsort(-scores):
        if not math.isfinite(scores[i]) or len(chosen) >= count:
            break
        start = base + int(i) * 60 - lead_s
        stop = start + duration_s
        if start < begin - lead_s or stop > series_rps.size or np.isnan(series_rps[start:stop]).any():
            continue
        if any(start < b and a < stop for a, b in taken):
            continue
        taken.append((start, stop))
        chosen.append(Window(start, duration_s, f"burst@{start}"))
    return sorted(chosen, key=lambda w: w.start_s)


def write_sim_report(directory: Path, runs: Mapping[str, Any], *, title: str, slo_ms: float, notes: str = "") -> Path:
    """PNG plots + ``report.md`` for simulated runs (via :mod:`infadapter.metrics.report`)."""
    from infadapter.metrics.report import PolicySeries, write_report

    series = {}
    rows = []
    for name, run in runs.items():
        s = run.series
        cores = {k.split(":", 1)[1]: v for k, v in s.items() if k.startswith("cores:")}
        series[name] = PolicySeries(
            t_s=s["t_s"],
            load_rps=s["load_rps"],
            forecast_rps=s["forecast_rps"],
            capacity_rps=s["capacity_rps"],
            cpu_cores=s["cpu_cores"],
            accuracy=s["accuracy"],
            p99_ms=s["p99_ms"],
            violation_ratio=s["violation_ratio"],
            gpus=s.get("gpus"),
            variant_cores=cores,
        )
        rows.append({"policy": name, **run.summary})
    return write_report(directory, series, rows, title=title, slo_ms=slo_ms, notes=notes)
