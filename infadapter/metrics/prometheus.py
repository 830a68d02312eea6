"""Observe: PromQL queries for the router (Envoy) and the servers (Triton), run with prometheus-api-client.

Label conventions (the runtime's scrape configuration provides them; see docs/observability.md):

* every router and server series carries the service's ``namespace`` and ``name`` as target labels;
* Triton series carry ``variant`` as a target label (one scrape target per variant replica);
* Envoy cluster series carry ``variant``, copied from ``envoy_cluster_name`` by a metric relabelling
  (the cluster of variant ``resnet50`` is named ``resnet50``).

The query builders (``*_query``) are pure and also feed the Grafana dashboard; :class:`Observer` runs
them and raises :class:`~infadapter.errors.MetricsUnavailable` when Prometheus cannot answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import requests
import requests.auth
from prometheus_api_client.exceptions import PrometheusApiClientException
from prometheus_api_client.prometheus_connect import PrometheusConnect
from urllib3.util.retry import Retry

from infadapter.errors import MetricsUnavailable

# Envoy (admin /stats/prometheus): counters and histograms in milliseconds
ROUTER_REQUESTS = "envoy_http_downstream_rq_total"
ROUTER_RESPONSES_BY_CLASS = "envoy_http_downstream_rq_xx"
ROUTER_LATENCY_MS_BUCKET = "envoy_http_downstream_rq_time_bucket"
CLUSTER_REQUESTS = "envoy_cluster_upstream_rq_total"
CLUSTER_LATENCY_MS_BUCKET = "envoy_cluster_upstream_rq_time_bucket"
#: Envoy's admin listener counts its own (scrape) requests: keep it out of the load
NOT_ADMIN = 'envoy_http_conn_manager_prefix!="admin"'

# Triton (:8002/metrics): counters, durations in microseconds
SERVER_SUCCESS = "nv_inference_request_success"
SERVER_FAILURE = "nv_inference_request_failure"
SERVER_REQUEST_DURATION_US = "nv_inference_request_duration_us"
SERVER_QUEUE_DURATION_US = "nv_inference_queue_duration_us"


def selector(namespace: str, name: str, *extra: str) -> str:
    """``namespace="ns",name="svc"`` plus extra matchers; values may be Grafana variables (``$name``)."""
    parts = [f'namespace="{namespace}"', f'name="{name}"', *extra]
    return ",".join(parts)


def _window(window_s: float | str) -> str:
    return window_s if isinstance(window_s, str) else f"{max(1, round(window_s))}s"


def arrival_rate_query(namespace: str, name: str, window_s: float | str = 60) -> str:
    """Requests per second arriving at the router (all responses, failures included)."""
    return f"sum(rate({ROUTER_REQUESTS}{{{selector(namespace, name, NOT_ADMIN)}}}[{_window(window_s)}]))"


#: where the load is read: our router's downstream requests, or (behind a Gateway, whose metrics are its own)
#: the requests the variants' Triton servers received, answered or failed — what reached no server is not seen
LoadSource = Literal["router", "servers"]
LOAD_SOURCES: dict[str, str] = {"router": "router arrival rate", "servers": "Triton request rate (behind a Gateway)"}


def arrival_history_query(namespace: str, name: str, lookback_s: float | str = 5, source: LoadSource = "router") -> str:
    """Per-step arrival rate for a range query: ``irate`` over the last two scrapes at each step."""
    if source == "servers":
        counters = f'__name__=~"{SERVER_SUCCESS}|{SERVER_FAILURE}",{selector(namespace, name)}'
        return f"sum(irate({{{counters}}}[{_window(lookback_s)}]))"
    return f"sum(irate({ROUTER_REQUESTS}{{{selector(namespace, name, NOT_ADMIN)}}}[{_window(lookback_s)}]))"


def newest_scrape_query(namespace: str, name: str, source: LoadSource = "router") -> str:
    """When the load's counters were last scraped (the newest sample's time, in seconds): the operator steps just
    after the next scrape lands."""
    if source == "servers":
        return f'max(timestamp({{__name__=~"{SERVER_SUCCESS}|{SERVER_FAILURE}",{selector(namespace, name)}}}))'
    return f"max(timestamp({ROUTER_REQUESTS}{{{selector(namespace, name, NOT_ADMIN)}}}))"


def variant_rate_query(namespace: str, name: str, window_s: float | str = 60) -> str:
    """Requests per second the router sent to each variant."""
    return f"sum by (variant) (rate({CLUSTER_REQUESTS}{{{selector(namespace, name)}}}[{_window(window_s)}]))"


def served_rate_query(namespace: str, name: str, window_s: float | str = 60) -> str:
    """Requests per second each variant's servers answered successfully."""
    return f"sum by (variant) (rate({SERVER_SUCCESS}{{{selector(namespace, name)}}}[{_window(window_s)}]))"


def error_rate_query(namespace: str, name: str, window_s: float | str = 60) -> str:
    """5xx responses per second at the router."""
    matchers = selector(namespace, name, NOT_ADMIN, 'envoy_response_code_class="5"')
    return f"sum(rate({ROUTER_RESPONSES_BY_CLASS}{{{matchers}}}[{_window(window_s)}]))"


def latency_buckets_query(namespace: str, name: str, window_s: float | str = 60) -> str:
    """Rate of end-to-end (router) latency histogram buckets, by ``le`` in milliseconds."""
    matchers = selector(namespace, name, NOT_ADMIN)
    return f"sum by (le) (rate({ROUTER_LATENCY_MS_BUCKET}{{{matchers}}}[{_window(window_s)}]))"


def latency_quantile_query(namespace: str, name: str, quantile: float, window_s: float | str = 60) -> str:
    """End-to-end latency quantile at the router, in seconds."""
    return f"histogram_quantile({quantile:g}, {latency_buckets_query(namespace, name, window_s)}) / 1000"


def served_accuracy_query(namespace: str, name: str, window_s: float | str = 60) -> str:
    """Request-weighted declared accuracy of the variants that actually served (from Triton counters)."""
    served = served_rate_query(namespace, name, window_s)
    accuracy = f"max by (variant) (infadapter_variant_accuracy_ratio{{{selector(namespace, name)}}})"
    return f"sum({served} * on (variant) {accuracy}) / sum({served})"


# -- running the queries --

#: seconds per range query of the history (Prometheus refuses more than 11,000 points per series)
HISTORY_CHUNK_S = 10_000


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


def _to_seconds(value: float | datetime) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


class _BearerFile(requests.auth.AuthBase):
    """``Authorization: Bearer <the file's content>``, read at each request (the token never appears in errors)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        with open(self.path, encoding="utf-8") as handle:
            request.headers["Authorization"] = f"Bearer {handle.read().strip()}"
        return request


class Observer:
    """Runs PromQL against one Prometheus and returns numbers (never pandas)."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        retries: int = 1,
        scrape_interval_s: float = 1.0,
        ca_file: str | None = None,
        token_file: str | None = None,
    ) -> None:
        """``ca_file``: verify an https Prometheus against this bundle (else the system's); ``token_file``: send
        its content as a bearer token, re-read at every request (projected tokens rotate)."""
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        #: how often Prometheus scrapes the router: the history's ``irate`` looks back 4 intervals
        self.scrape_interval_s = scrape_interval_s
        session = requests.Session()
        session.verify = ca_file if ca_file else True
        if token_file:
            session.auth = _BearerFile(token_file)
        self._client = PrometheusConnect(
            url=self.url,
            session=session,
            retry=Retry(total=retries, backoff_factor=0.1, status_forcelist=(502, 503, 504)),
            timeout=max(1, math.ceil(timeout_s)),
        )

    def close(self) -> None:
        self._client.close()

    # -- generic --

    def query(self, promql: str, at_s: float | None = None) -> list[Sample]:
        """Instant vector (or scalar) result as samples; raises MetricsUnavailable when Prometheus fails."""
        params = {} if at_s is None else {"time": f"{at_s:.3f}"}
        try:
            result: Any = self._client.custom_query(promql, params=params)
        except (requests.RequestException, PrometheusApiClientException) as exc:
            raise MetricsUnavailable(f"Prometheus at {self.url} failed on {promql!r}: {exc}") from exc
        if len(result) == 2 and isinstance(result[0], int | float) and isinstance(result[1], str):
            return [Sample({}, float(result[1]))]  # a scalar result: [time, "value"]
        return [Sample(dict(item.get("metric", {})), float(item["value"][1])) for item in result]

    def query_range(
        self, promql: str, start_s: float, end_s: float, step_s: float = 1.0
    ) -> list[tuple[dict[str, str], npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
        """Range query: for each series, (labels, times in s, values)."""
        start = datetime.fromtimestamp(start_s, tz=UTC)
        end = datetime.fromtimestamp(end_s, tz=UTC)
        try:
            result: Any = self._client.custom_query_range(promql, start, end, step=f"{step_s:g}s")
        except (requests.RequestException, PrometheusApiClientException) as exc:
            raise MetricsUnavailable(f"Prometheus at {self.url} failed on {promql!r}: {exc}") from exc
        series = []
        for item in result:
            values = item.get("values", [])
            times = np.array([float(t) for t, _ in values], dtype=float)
            data = np.array([float(v) for _, v in values], dtype=float)
            series.append((dict(item.get("metric", {})), times, data))
        return series

    def scalar(self, promql: str, at_s: float | None = None) -> float:
        """A query expected to return one number; raises MetricsUnavailable when it returns nothing."""
        samples = self.query(promql, at_s)
        if not samples:
            raise MetricsUnavailable(f"no data for {promql!r} (is the target scraped and labelled?)")
        return samples[0].value

    def by_label(self, promql: str, label: str, at_s: float | None = None) -> dict[str, float]:
        return {s.labels.get(label, ""): s.value for s in self.query(promql, at_s)}

    # -- what the loop needs --

    def arrival_rate_rps(self, namespace: str, name: str, window_s: float = 60, at_s: float | None = None) -> float:
        """Mean arrival rate over the window. Like every ``rate()``, it reads low while the series is younger
        than the window (a freshly started router or Prometheus): keep ``window_s`` within the data."""
        return self.scalar(arrival_rate_query(namespace, name, window_s), at_s)

    def variant_rates_rps(self, namespace: str, name: str, window_s: float = 60, at_s: float | None = None) -> dict[str, float]:
        return self.by_label(variant_rate_query(namespace, name, window_s), "variant", at_s)

    def served_rates_rps(self, namespace: str, name: str, window_s: float = 60, at_s: float | None = None) -> dict[str, float]:
        return self.by_label(served_rate_query(namespace, name, window_s), "variant", at_s)

    def error_rate_rps(self, namespace: str, name: str, window_s: float = 60, at_s: float | None = None) -> float:
        samples = self.query(error_rate_query(namespace, name, window_s), at_s)
        return samples[0].value if samples else 0.0  # no 5xx series yet = no errors

    def latency_quantiles_ms(
        self,
        namespace: str,
        name: str,
        quantiles: Sequence[float] = (0.5, 0.99),
        window_s: float = 60,
        at_s: float | None = None,
    ) -> dict[float, float]:
        """End-to-end latency quantiles at the router (interpolated inside histogram buckets)."""
        buckets = self._buckets(namespace, name, window_s, at_s)
        return {q: histogram_quantile_ms(q, buckets) for q in quantiles}

    def slo_violation_ratio(self, namespace: str, name: str, slo_ms: float, window_s: float = 60, at_s: float | None = None) -> float:
        """(requests slower than the SLO + 5xx responses) / requests over the window; 0 with no requests.

        The share under the SLO is interpolated linearly inside the bucket holding ``slo_ms``; give the
        router a bucket boundary at the SLO to make it exact. A slow 5xx is counted once (capped at 1).
        """
        buckets = self._buckets(namespace, name, window_s, at_s)
        total = buckets[-1][1] if buckets else 0.0
        if total <= 0:
            return 0.0
        within = fraction_below(slo_ms, buckets) * total
        errors = self.error_rate_rps(namespace, name, window_s, at_s)
        return min(1.0, (max(0.0, total - within) + errors) / total)

    def _buckets(self, namespace: str, name: str, window_s: float, at_s: float | None) -> list[tuple[float, float]]:
        raw = self.by_label(latency_buckets_query(namespace, name, window_s), "le", at_s)
        if not raw:
            raise MetricsUnavailable(f"no router latency histogram for {namespace}/{name}")
        return sorted((float(le), value) for le, value in raw.items())

    def arrival_history_rps(
        self, namespace: str, name: str, start_s: float, end_s: float, lookback_s: float | None = None, source: LoadSource = "router"
    ) -> npt.NDArray[np.float64]:
        """Per-second arrivals from ``start_s`` to ``end_s`` (both included), oldest first, NaN where unknown.

        This is the forecaster's input (``Observation.history_rps``). A gap in scraping (target down,
        Prometheus restarted) comes back as NaN, never as zero load. Each second holds the rate between
        the last two scrapes before it (``irate``), so with a scrape interval above 1 s the history is a
        step function. Long ranges are fetched in chunks (Prometheus returns at most 11,000 points per
        series and query).
        """
        # irate needs two samples inside the lookback: four scrape intervals survive a missed scrape
        lookback = lookback_s if lookback_s is not None else max(5.0, 4.0 * self.scrape_interval_s)
        return self.query_history_rps(arrival_history_query(namespace, name, lookback, source), start_s, end_s)

    def newest_scrape_s(self, namespace: str, name: str, source: LoadSource = "router") -> float | None:
        """The time of the newest scrape of the service's load counters (None: no series)."""
        samples = self.query(newest_scrape_query(namespace, name, source))
        times = [x.value for x in samples if math.isfinite(x.value)]
        return max(times) if times else None

    def query_history_rps(self, query: str, start_s: float, end_s: float) -> npt.NDArray[np.float64]:
        """``query`` (a rate in requests per second) at every second from ``start_s`` to ``end_s``, oldest first;
        the series it returns are summed; NaN where none has a value (see :meth:`arrival_history_rps`)."""
        start, end = math.floor(start_s), math.floor(end_s)
        history = np.full(end - start + 1, np.nan)
        for chunk_start in range(start, end + 1, HISTORY_CHUNK_S):
            chunk_end = min(end, chunk_start + HISTORY_CHUNK_S - 1)
            for _labels, times, values in self.query_range(query, chunk_start, chunk_end):
                index = np.round(times - start).astype(int)
                keep = (index >= 0) & (index < history.size)
                index, part = index[keep], values[keep]
                history[index] = np.where(np.isnan(history[index]), part, history[index] + part)
        return history


def fraction_below(threshold: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Share of observations <= ``threshold`` from cumulative ``(le, count)`` buckets (linear inside a bucket)."""
    if not buckets or buckets[-1][1] <= 0:
        return 1.0
    total = buckets[-1][1]
    lower_le, lower_count = 0.0, 0.0
    for le, count in buckets:
        if threshold <= le:
            if math.isinf(le):
                return lower_count / total  # beyond the last finite bucket: nothing more is known to be fast
            span = le - lower_le
            share = 1.0 if span <= 0 else (threshold - lower_le) / span
            return (lower_count + share * (count - lower_count)) / total
        lower_le, lower_count = le, count
    return 1.0


def histogram_quantile_ms(quantile: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Same interpolation as PromQL's ``histogram_quantile`` on cumulative ``(le, count)`` buckets; NaN if empty."""
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    total = buckets[-1][1]
    rank = quantile * total
    lower_le, lower_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower_le  # PromQL returns the upper bound of the last finite bucket
            span = count - lower_count
            return le if span <= 0 else lower_le + (le - lower_le) * (rank - lower_count) / span
        lower_le, lower_count = le, count
    return lower_le
