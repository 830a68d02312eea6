"""A per-second trace from a Prometheus series (``infadapter trace export``), written as a CSV trace.

The series is sampled with ``query_range`` on a grid ``start + k·step``: a counter's increase between two
points is the requests of that step (a reset counts the value after it, as Prometheus' ``increase``
does), spread evenly over its seconds; with ``rate`` the series already is requests per second.
Prometheus refuses more than 11,000 points per series in one query, so the range is asked in chunks.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from infadapter.errors import FieldError, InvalidInput, MetricsUnavailable
from infadapter.traces.options import MAX_TRACE_S
from infadapter.traces.timestamps import iso_time

FloatArray = npt.NDArray[np.float64]

#: Prometheus' own limit on points per series in one query_range (it answers 400 beyond it)
MAX_POINTS_PER_QUERY = 11_000
CHUNK_POINTS = 10_000
#: more decreases than this share of steps means the series is not a counter
_MAX_RESET_RATIO = 0.1
_DURATION = re.compile(r"^(?:now)?\s*-\s*(\d+(?:\.\d+)?)\s*([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class RangeClient(Protocol):
    """What is used of ``prometheus_api_client.PrometheusConnect`` (tests may pass a fake)."""

    def custom_query_range(self, query: str, start_time: datetime, end_time: datetime, step: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Export:
    """Per-second requests from ``start_s`` (NaN where Prometheus had no sample)."""

    per_second: FloatArray
    start_s: int
    step_s: int
    queries: int

    @property
    def missing_s(self) -> int:
        return int(np.isnan(self.per_second).sum())


def _arg(option: str, message: str, hint: str) -> InvalidInput:
    return InvalidInput([FieldError(option, message, hint)], source="arguments")


def parse_time(text: str, option: str, now_s: float) -> float:
    """``now``, ``now-15m`` (or ``-15m``; s, m, h, d), epoch seconds, or ISO-8601 (UTC unless it says)."""
    value = text.strip().lower()
    if value == "now":
        return now_s
    relative = _DURATION.match(value)
    if relative:
        return now_s - float(relative.group(1)) * _UNIT_S[relative.group(2)]
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if math.isfinite(number) and number >= 0:
            return number
        raise _arg(option, f"{text!r} is not a time", "epoch seconds >= 0, an ISO-8601 date, now or now-1h")
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _arg(option, f"{text!r} is not a time", "epoch seconds, an ISO-8601 date (2021-08-01T12:00:00Z), now or now-1h") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def connect(url: str, timeout_s: float) -> RangeClient:
    """A Prometheus client with few, quick retries (an unreachable server should fail in seconds)."""
    from prometheus_api_client import PrometheusConnect
    from urllib3.util.retry import Retry

    retry = Retry(total=2, backoff_factor=0.2, status_forcelist=[502, 503, 504])
    client: RangeClient = PrometheusConnect(url=url.rstrip("/"), disable_ssl=True, retry=retry, timeout=timeout_s)
    return client


def export_series(
    client: RangeClient, query: str, start_s: float, end_s: float, step_s: int = 1, *, rate: bool = False, chunk_points: int = CHUNK_POINTS
) -> Export:
    """Per-second requests of ``query`` over [start, end) (whole steps), asked in chunks of ``chunk_points``."""
    errors = _check_range(start_s, end_s, step_s)
    if errors:
        raise InvalidInput(errors, source="arguments")
    first = math.floor(start_s)
    steps = int((math.floor(end_s) - first) // step_s)
    values = np.full(steps + 1, np.nan)  # the grid first + k·step, k = 0..steps
    labels: dict[str, str] | None = None
    queries = 0
    for k0 in range(0, steps + 1, chunk_points):
        k1 = min(k0 + chunk_points - 1, steps)
        series = _query(client, query, first + k0 * step_s, first + k1 * step_s, step_s)
        queries += 1
        for entry in series:
            labels = _one_series(labels, entry.get("metric", {}))
            for stamp, text in entry.get("values", []):
                k = round((float(stamp) - first) / step_s)
                if 0 <= k <= steps:
                    values[k] = float(text)
    if labels is None:
        raise _arg(
            "--query",
            f"no data for {query!r} between {_iso(first)} and {_iso(first + steps * step_s)}",
            "check the query in Prometheus' UI and the time range (--start/--end)",
        )
    per_step = values[1:] * step_s if rate else _increases(values)
    known = per_step[~np.isnan(per_step)]
    if known.size and (not np.all(np.isfinite(known)) or known.min() < 0):
        raise _arg("--query", "the series has negative or infinite values", "export a counter, or a rate with --rate")
    return Export(np.repeat(per_step / step_s, step_s), first, step_s, queries)


def _check_range(start_s: float, end_s: float, step_s: int) -> list[FieldError]:
    errors: list[FieldError] = []
    if not 1 <= step_s <= 3600:
        errors.append(FieldError("--step", f"{step_s} is not a number of seconds in 1..3600", "e.g. --step 1"))
    elif not end_s - start_s >= step_s:
        errors.append(FieldError("--end", f"{_iso(end_s)} is not at least one step after --start {_iso(start_s)}", "give a later --end"))
    elif end_s - start_s > MAX_TRACE_S:
        errors.append(FieldError("--start", f"the range spans {(end_s - start_s) / 86400:.3g} days, more than {MAX_TRACE_S // 86400}", "export shorter ranges"))
    return errors


def _query(client: RangeClient, query: str, start_s: int, end_s: int, step_s: int) -> list[dict[str, Any]]:
    import requests
    from prometheus_api_client.exceptions import PrometheusApiClientException

    start, end = datetime.fromtimestamp(start_s, UTC), datetime.fromtimestamp(end_s, UTC)
    try:
        return client.custom_query_range(query, start, end, str(step_s))
    except PrometheusApiClientException as exc:
        text = str(exc)
        found = re.search(r'"error":"((?:[^"\\]|\\.)*)"', text)
        if "HTTP Status Code 400" in text or "HTTP Status Code 422" in text:
            raise _arg(
                "--query",
                f"Prometheus refused {query!r}: {found.group(1) if found else text[:300]}",
                "check the PromQL, e.g. sum(envoy_http_downstream_rq_total)",
            ) from None
        raise MetricsUnavailable(f"Prometheus answered {text[:300]}") from None
    except requests.RequestException as exc:
        raise MetricsUnavailable(f"cannot query Prometheus ({type(exc).__name__}: {str(exc)[:200]}); is --prometheus right?") from None


def _one_series(seen: dict[str, str] | None, labels: dict[str, str]) -> dict[str, str]:
    if seen is not None and seen != labels:
        raise _arg(
            "--query", f"the query returns several series ({_show(seen)}, {_show(labels)}, …)", "aggregate them into one, e.g. sum(...) or sum by () (...)"
        )
    return labels


def _show(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _increases(values: FloatArray) -> FloatArray:
    """Per-step increases of a counter; a decrease is a reset and counts the value after it."""
    rises = np.diff(values)
    with np.errstate(invalid="ignore"):  # NaN (no sample) is neither a rise nor a reset
        resets = rises < 0
    defined = int((~np.isnan(rises)).sum())
    if int(resets.sum()) >= 2 and int(resets.sum()) > _MAX_RESET_RATIO * defined:  # a restart or two is a reset
        raise _arg(
            "--query",
            f"the series goes down at {int(resets.sum())} of {defined} steps: it is not a counter",
            "add --rate if it already is requests per second (e.g. sum(rate(x[1m]))); else export the counter itself",
        )
    return np.where(resets, values[1:], rises)


def _iso(epoch_s: float) -> str:
    return iso_time(epoch_s) or f"{epoch_s:.10g} (epoch seconds)"


def write_csv(export: Export, out: Path, header: Sequence[str]) -> int:
    """Write ``t_sec,rps`` (seconds with data only) after ``#`` comment lines, atomically; return the rows."""
    known = np.flatnonzero(~np.isnan(export.per_second))
    lines = [f"# {' '.join(line.split())}" for line in header]
    lines.append(f"# t_sec 0 = {_iso(export.start_s)}; seconds without data have no row (read back as 0 requests)")
    lines.append("t_sec,rps")
    lines.extend(f"{int(t)},{export.per_second[t]:.10g}" for t in known)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _arg("--out", f"cannot write {out}: {exc.strerror}", "give a writable file path") from None
    return int(known.size)
