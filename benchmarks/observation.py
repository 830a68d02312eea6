"""How late the operator's observer sees a change of load: real Prometheus, the operator's own reading of it.

``--targets`` router-shaped exporters (the one the cluster tests scrape: ``envoy_http_downstream_rq_total``, the
integral of a rate the benchmark sets; each its own service, so each its own scrape phase) are scraped by a real
Prometheus every ``--scrape-s`` seconds. The load steps between ``--low`` and ``--high`` rps ``--changes`` times,
each at a random point of its second and after a dwell that outlasts the ``irate`` lookback. Meanwhile the
observer the operator runs (``History`` over ``Observer.arrival_history_rps``: ``irate`` at every second) reads
each service three ways (:data:`CADENCES`): every ``--poll-s`` seconds (when the data itself shows the change),
once a scrape interval on the operator's 1-s timer (as it stepped before 2026-12-06), and as it steps now, just
after each scrape lands (``next_step_s``). A change is seen when a second that ends after it holds a rate past the
middle of the two loads; its lag is that time less the end of the change's second: the simulator's
``Latencies.observe_s`` where its loop steps every second; where it steps every ``step_s`` (whole seconds) on a
fixed grid, a change's second ends 0 to ``step_s`` - 1 whole seconds before a step sees it, hence
``simulator_observe_s`` = the mean lag - (``step_s`` - 1) / 2.

Prints one JSON object on stdout (progress on stderr): per scrape interval and reader, every lag, their mean,
median and 90th percentile, and the changes never seen (``missed``). Measured here (2026-12-06): see
``docs/simulator.md``. A wrong option exits with code 2 and names it.

    .venv/bin/python benchmarks/observation.py [--scrape-s 5,1] [--changes 10] [--targets 12] [--poll-s 0.2]
        [--low 20] [--high 60] [--seed 0]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NAMESPACE = "bench"
#: seconds of history the observer keeps (the forecast window is longer; a step needs only its last seconds)
WINDOW_S = 60


def seen_at(history: np.ndarray[Any, np.dtype[np.float64]], end_s: int, change_s: float, threshold: float, rising: bool) -> bool:
    """Whether ``history`` (its last element the second that ends at ``end_s``) holds, for a second that ends
    after ``change_s``, a rate past ``threshold`` in the change's direction."""
    first = history.size - 1 - (end_s - (math.floor(change_s) + 1))  # the second that holds the change
    if first >= history.size:
        return False
    after = history[max(0, first) :]
    after = after[~np.isnan(after)]
    return bool(np.any(after >= threshold if rising else after <= threshold))


def lag_summary(lags: Sequence[float]) -> dict[str, Any]:
    """The lags of one scrape interval: each, and their mean, median and 90th percentile (None where none)."""
    done = sorted(x for x in lags if math.isfinite(x))
    if not done:
        return {"lags_s": [], "mean_s": None, "median_s": None, "p90_s": None, "missed": len(lags)}
    return {
        "lags_s": [round(x, 2) for x in lags if math.isfinite(x)],
        "mean_s": round(statistics.fmean(done), 2),
        "median_s": round(statistics.median(done), 2),
        "p90_s": round(float(np.percentile(done, 90)), 2),
        "missed": len(lags) - len(done),
    }


def dwells(count: int, scrape_s: float, seed: int) -> list[int]:
    """Whole seconds between steps: long enough for the rate to settle in every scrape it is read from (two
    intervals past the lookback), and a random remainder so the steps meet the scrapes at every phase."""
    rng = random.Random(seed)
    base = math.ceil(4 * scrape_s) + 3
    return [base + rng.randrange(max(1, math.ceil(scrape_s)) + 1) for _ in range(count)]


def _sleep_until(t: float) -> None:
    while (left := t - time.time()) > 0:
        time.sleep(min(left, 0.05))


#: how each reader steps: ``data`` as often as ``--poll-s`` (when the history first shows a change); ``fixed`` once an
#: interval after its last step (the operator until 2026-12-06); ``operator`` as it steps now (``next_step_s``)
CADENCES = ("data", "fixed", "operator")
#: the operator's timer wakes this often (the chart's ``operator.timerResolutionSeconds``) and steps when one is due
TIMER_S = 1.0


class Reader:
    """One service's observer read at one cadence: its history, when it steps next, its timer's phase."""

    def __init__(self, cadence: str, scrape_s: float, phase_s: float) -> None:
        from infadapter.operator.history import History

        self.cadence, self.scrape_s, self.phase_s = cadence, scrape_s, phase_s
        self.history = History(WINDOW_S, scrape_s)
        self.due_s = -math.inf

    def step(self, observer: Any, name: str, now_s: float, poll_s: float) -> bool:
        """Read if a step is due (True); schedule the next one as the cadence does."""
        from infadapter.errors import MetricsUnavailable
        from infadapter.operator.history import next_step_s

        if now_s < self.due_s:
            return False
        with contextlib.suppress(MetricsUnavailable):  # not scraped yet: the operator holds, and steps again
            self.history.update(observer, NAMESPACE, name, now_s)
        if self.cadence == "data":
            self.due_s = now_s + poll_s
        else:
            at = self.due_s if math.isfinite(self.due_s) else now_s  # the timer's wake this step stands for (read up to a poll later)
            every = max(1.0, self.scrape_s)
            planned = at + every if self.cadence == "fixed" else next_step_s(self.history.landed_s, at, self.scrape_s)
            self.due_s = self.phase_s + math.ceil((planned - self.phase_s) / TIMER_S - 1e-9) * TIMER_S  # the timer's next wake
        return True


def measure(scrape_s: float, args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    """One Prometheus at ``scrape_s`` scraping ``args.targets`` routers (each its own service, so each its own
    scrape phase): the lag of each of ``args.changes`` steps at each, read at each of :data:`CADENCES`."""
    from infadapter.metrics.prometheus import Observer
    from infadapter.runtime.local.prometheus import PrometheusProcess, ScrapeJob
    from tests.cluster.kube import ArrivalExporter

    names = [f"observed-{i}" for i in range(args.targets)]
    exporters = [ArrivalExporter() for _ in names]
    for exporter, name in zip(exporters, names, strict=True):
        exporter.set_rate(NAMESPACE, name, args.low)
    prom = PrometheusProcess(jobs=(ScrapeJob("router", honor_labels=True),), scrape_interval_s=scrape_s)
    prom.set_targets("router", "exporters", [e.address for e in exporters], {})
    rng = random.Random(args.seed)
    readers = {c: [Reader(c, scrape_s, rng.random() * TIMER_S) for _ in names] for c in CADENCES}
    lags: dict[str, list[float]] = {c: [] for c in CADENCES}
    try:
        prom.start()
        prom.wait_for_targets(job="router", count=len(exporters), timeout_s=30)
        observer = Observer(prom.url, scrape_interval_s=scrape_s, timeout_s=2.0)
        rate, change_s = args.low, time.time() + math.ceil(6 * scrape_s) + 2  # the first: once the histories fill
        for k, dwell in enumerate(dwells(args.changes, scrape_s, args.seed)):
            change_s = math.floor(change_s) + rng.random()  # anywhere in its second, as load changes
            _read_until(observer, readers, names, change_s, args.poll_s)
            rate = args.high if rate == args.low else args.low
            for exporter, name in zip(exporters, names, strict=True):
                exporter.set_rate(NAMESPACE, name, rate)
            step = _seen(observer, readers, names, change_s, rate == args.high, (args.low + args.high) / 2.0, args.poll_s)
            for cadence, got in step.items():
                lags[cadence] += got
            seen = "; ".join(f"{c} {', '.join(f'{x:.2f}' for x in v)} s" for c, v in step.items())
            log(f"   scrape {scrape_s:g} s, step {k + 1}/{args.changes} to {rate:g} rps: {seen}")
            change_s = time.time() + dwell  # the next: a dwell after this one was seen
        observer.close()
    finally:
        prom.stop()
        for exporter in exporters:
            exporter.close()
    every = max(1.0, scrape_s)
    out: dict[str, Any] = {"scrape_interval_s": scrape_s, "operator_step_s": every, "targets": args.targets}
    for cadence in CADENCES:
        out[cadence] = lag_summary(lags[cadence])
    # the simulator's loop steps every ``every`` on a grid of whole seconds: a second that ends between two steps
    # waits 0 to every - 1 s more for the next, so its ``observe_s`` is what the operator's reader waited, less that
    out["simulator_observe_s"] = {c: round(out[c]["mean_s"] - (every - 1.0) / 2.0, 2) for c in ("fixed", "operator") if out[c]["mean_s"] is not None}
    return out


def _read_until(observer: Any, readers: dict[str, list[Reader]], names: Sequence[str], until_s: float, poll_s: float) -> None:
    """Keep every reader stepping as it would until ``until_s`` (the operator does not stop between changes)."""
    while (now := time.time()) < until_s:
        for row in readers.values():
            for reader, name in zip(row, names, strict=True):
                reader.step(observer, name, now, poll_s)
        time.sleep(min(poll_s, max(0.0, until_s - time.time())))


def _seen(
    observer: Any, readers: dict[str, list[Reader]], names: Sequence[str], change_s: float, rising: bool, threshold: float, poll_s: float
) -> dict[str, list[float]]:
    """Per cadence, each service's lag: when a step of its reader first showed the change, less ``change_s + 1``."""
    lags = {c: [math.inf] * len(names) for c in readers}
    deadline = change_s + 1 + 4 * max(r.scrape_s for row in readers.values() for r in row) + 15
    while time.time() < deadline and any(math.isinf(x) for row in lags.values() for x in row):
        now = time.time()
        for cadence, row in readers.items():
            for i, (reader, name) in enumerate(zip(row, names, strict=True)):
                stepped = reader.step(observer, name, now, poll_s)
                if stepped and math.isinf(lags[cadence][i]) and seen_at(reader.history.values, math.floor(now), change_s, threshold, rising):
                    lags[cadence][i] = now - (change_s + 1)
        time.sleep(poll_s)
    return lags


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scrape-s", default="1,5", help="scrape intervals to measure, seconds, comma-separated (default 1,5)")
    parser.add_argument("--changes", type=int, default=12, help="steps of load per scrape interval (default 12)")
    parser.add_argument("--low", type=float, default=20.0, help="the lower load, rps (default 20)")
    parser.add_argument("--high", type=float, default=60.0, help="the higher load, rps (default 60)")
    parser.add_argument("--targets", type=int, default=4, help="routers scraped at once, each at its own phase (default 4)")
    parser.add_argument("--poll-s", type=float, default=0.1, help="how often the observer is read, seconds (default 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the dwells between steps (default 0)")
    args = parser.parse_args(argv)
    try:
        args.scrape = [float(x) for x in args.scrape_s.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--scrape-s: {args.scrape_s!r} is not a comma-separated list of seconds (e.g. 1,5)")
    if not args.scrape or any(not (math.isfinite(x) and 0.5 <= x <= 60) for x in args.scrape):
        parser.error("--scrape-s: each interval must be between 0.5 and 60 seconds (e.g. 1,5)")
    if not 1 <= args.changes <= 1000:
        parser.error(f"--changes: {args.changes} must be between 1 and 1000")
    if not (math.isfinite(args.low) and math.isfinite(args.high) and 0 <= args.low < args.high <= 1e6):
        parser.error("--low/--high: need 0 <= --low < --high <= 1000000 rps")
    if not 1 <= args.targets <= 50:
        parser.error(f"--targets: {args.targets} must be between 1 and 50")
    if not (math.isfinite(args.poll_s) and 0.01 <= args.poll_s <= 1.0):
        parser.error(f"--poll-s: {args.poll_s} must be between 0.01 and 1 second")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    results = []
    for scrape_s in args.scrape:
        log(f"== Prometheus scraping every {scrape_s:g} s, {args.changes} steps between {args.low:g} and {args.high:g} rps")
        results.append(measure(scrape_s, args, log))
    print(json.dumps({"low_rps": args.low, "high_rps": args.high, "poll_s": args.poll_s, "intervals": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
