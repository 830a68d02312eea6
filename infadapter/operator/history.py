"""The router's per-second arrivals over the forecast window, kept in memory and refreshed incrementally.

Each step asks Prometheus only for the seconds since the last one, plus an overlap of a few scrape intervals
(the newest seconds change until their scrape has landed), instead of the whole window (600 points by
default) — what makes a step every scrape interval affordable for many services.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np

from infadapter.errors import MetricsUnavailable
from infadapter.metrics.prometheus import LoadSource

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


class ArrivalSource(Protocol):
    def arrival_history_rps(
        self, namespace: str, name: str, start_s: float, end_s: float, lookback_s: float | None = None, source: LoadSource = "router"
    ) -> FloatArray: ...

    def query_history_rps(self, query: str, start_s: float, end_s: float) -> FloatArray: ...


class History:
    """The last ``window_s`` seconds (NaN = unknown), the last element the second that ends at ``end_s``."""

    def __init__(self, window_s: float, scrape_interval_s: float, source: LoadSource = "router", query: str | None = None) -> None:
        self.source: LoadSource = source  # the router's requests, or the Triton servers' (behind a Gateway)
        self.query = query  # or the spec's own load query (a shadowed service)
        self.window_s = max(1, int(window_s))
        self.overlap_s = math.ceil(4 * scrape_interval_s) + 2
        self.end_s: int | None = None
        self.values: FloatArray = np.full(self.window_s, np.nan)

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
        self.values = self.window(now)
        tail = self.values[fetch_from - start :]
        known = ~np.isnan(fetched[: tail.size])
        tail[: known.size][known] = fetched[: tail.size][known]
        self.end_s = now

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
