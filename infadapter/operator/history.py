"""The router's per-second arrivals over the forecast window, kept in memory and refreshed incrementally.

Each step asks Prometheus only for the seconds since the last one, plus an overlap of a few scrape intervals
(the newest seconds change until their scrape has landed), instead of the whole window (600 points by
default) — what makes a step every scrape interval affordable for many services.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Protocol

import numpy as np

from infadapter.errors import MetricsUnavailable
from infadapter.metrics.prometheus import LoadSource

FloatArray = np.ndarray[Any, np.dtype[np.float64]]

#: how long after the second in which a scrape first shows the operator steps: Prometheus has stored it by then
LANDING_MARGIN_S = 0.25


class ArrivalSource(Protocol):
    def arrival_history_rps(
        self, namespace: str, name: str, start_s: float, end_s: float, lookback_s: float | None = None, source: LoadSource = "router"
    ) -> FloatArray: ...

    def query_history_rps(self, query: str, start_s: float, end_s: float) -> FloatArray: ...

    def newest_scrape_s(self, namespace: str, name: str, source: LoadSource = "router") -> float | None: ...


class History:
    """The last ``window_s`` seconds (NaN = unknown), the last element the second that ends at ``end_s``."""

    def __init__(self, window_s: float, scrape_interval_s: float, source: LoadSource = "router", query: str | None = None) -> None:
        self.source: LoadSource = source  # the router's requests, or the Triton servers' (behind a Gateway)
        self.query = query  # or the spec's own load query (a shadowed service)
        self.window_s = max(1, int(window_s))
        self.overlap_s = math.ceil(4 * scrape_interval_s) + 2
        self.end_s: int | None = None
        self.values: FloatArray = np.full(self.window_s, np.nan)
        #: the first second that holds the newest scrape (Prometheus evaluates each second with the samples up to
        #: it); None: none seen
        self.landed_s: int | None = None

    def update(self, source: ArrivalSource, namespace: str, name: str, now_s: float) -> None:
        """Fetch what is new up to ``now_s``; raises what the source raises (nothing is changed then)."""
        now = math.floor(now_s)
        start = now - self.window_s + 1
        fetch_from = start if self.end_s is None or self.end_s < start else max(start, self.end_s - self.overlap_s)
        if self.query is not None:
            fetched = source.query_history_rps(self.query, fetch_from, now)
        else:
            fetched = source.arrival_history_rps(namespace, name, fetch_from, now, source=self.source)
        if fetched.size == 0 or bool(np.all(np.isnan(fetched))):
            # no series at all for the newest seconds: the router (or the servers) is not scraped or not
            # labelled — say so now, while the controller holds the plan on what it saw before
            if self.query is not None:
                raise MetricsUnavailable(f"the load query of {namespace}/{name} returned no value since {fetch_from - now} s: {self.query[:200]}")
            what = "router traffic" if self.source == "router" else "Triton request"
            raise MetricsUnavailable(f"no {what} series for {namespace}/{name} since {fetch_from - now} s")
        self._note_landing(source, namespace, name, fetch_from, fetched)
        self.values = self.window(now)
        tail = self.values[fetch_from - start :]
        known = ~np.isnan(fetched[: tail.size])
        tail[: known.size][known] = fetched[: tail.size][known]
        self.end_s = now

    def _note_landing(self, source: ArrivalSource, namespace: str, name: str, fetch_from: int, fetched: FloatArray) -> None:
        """Where the newest scrape landed: from its time where Prometheus says it, else from the second at which
        the rate last changed (``irate`` repeats the same two samples until the next scrape)."""
        landed: int | None = None
        if self.query is None:
            with contextlib.suppress(MetricsUnavailable):  # only the phase of the steps depends on it
                scraped = source.newest_scrape_s(namespace, name, self.source)
                landed = math.ceil(scraped) if scraped is not None and math.isfinite(scraped) else None
        if landed is None and (changed := newest_change(fetched)) is not None:
            landed = fetch_from + changed
        if landed is not None:
            self.landed_s = max(self.landed_s if self.landed_s is not None else landed, landed)

    def window(self, now_s: float) -> FloatArray:
        """The window ending at ``now_s``: what is held, NaN for seconds not fetched (a copy)."""
        now = math.floor(now_s)
        out: FloatArray = np.full(self.window_s, np.nan)
        if self.end_s is None:
            return out
        shift = now - self.end_s  # how far the window moved since the last fetch
        if shift >= self.window_s or shift < 0:
            return out if shift >= 0 else self.values.copy()
        out[: self.window_s - shift] = self.values[shift:]
        return out


def newest_change(values: FloatArray) -> int | None:
    """The index of the newest second whose rate differs from the one before it (both known): where a scrape
    landed, since between scrapes ``irate`` repeats the same two samples (None: no change)."""
    before, after = values[:-1], values[1:]
    changed = np.flatnonzero(~np.isnan(before) & ~np.isnan(after) & (before != after))
    return int(changed[-1]) + 1 if changed.size else None


def next_step_s(landed_s: float | None, now_s: float, interval_s: float) -> float:
    """When the operator should step next: just after the next scrape lands, so that it acts on a new scrape at
    once rather than up to an interval later (at the chart's 5-s scrapes a change reached the operator's decisions
    5.5 s after its second on average, against 6.9 s stepping every interval: ``benchmarks/observation.py``).

    The scrapes come every ``interval_s`` from the newest one seen (``landed_s``); one that is late is looked for
    again every second. Where none was seen for two intervals (no series, or a rate that does not move: an idle
    service), once an interval from now.
    """
    every = max(1.0, interval_s)
    if landed_s is None or now_s - landed_s > 2.0 * every:
        return now_s + every
    readable = landed_s + LANDING_MARGIN_S  # the newest scrape's first second can be read from then
    if now_s < readable:  # scraped, but its second has not ended yet
        return readable
    return readable + every if now_s < readable + every else now_s + 1.0
