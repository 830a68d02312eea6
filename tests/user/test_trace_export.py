"""``infadapter trace export``: a per-second trace from a REAL Prometheus scraping a counter served here.

The counter grows by 10 requests a second; Prometheus scrapes it every second for ~4 s (marked slow: a real
process, ~10 s in all). The
exported trace must hold exactly the counter's increase over the range (as Prometheus evaluates it),
read back by ``load_trace``; chunked queries must give the same trace as one query.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from infadapter.cli import main
from infadapter.errors import InvalidInput
from infadapter.runtime.local.prometheus import PrometheusProcess, ScrapeJob, find_prometheus
from infadapter.traces import load_trace
from infadapter.traces.prometheus import MAX_POINTS_PER_QUERY, connect, export_series, parse_time

RATE_RPS = 10.0


def serve(render: Callable[[], str]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@dataclass(frozen=True)
class Scraped:
    url: str
    start_s: int  # a whole second with samples on both sides
    end_s: int

    def value_at(self, query: str, at_s: float) -> float:
        answer = requests.get(f"{self.url}/api/v1/query", params={"query": query, "time": at_s}, timeout=5).json()
        return float(answer["data"]["result"][0]["value"][1])


@pytest.fixture(scope="module")
def scraped() -> Iterator[Scraped]:
    if find_prometheus() is None:
        pytest.skip("the prometheus binary is absent (apt-get install -y --no-install-recommends prometheus)")
    born = time.time()
    ticks = iter(range(10**9))

    def metrics() -> str:
        elapsed = time.time() - born
        flip = 5 if next(ticks) % 2 else 3  # a gauge that goes up and down: not a counter
        return (
            "# TYPE trace_requests_total counter\n"
            f"trace_requests_total {1000 + math.floor(RATE_RPS * elapsed)}\n"
            "# TYPE trace_split_total counter\n"
            f'trace_split_total{{kind="a"}} {elapsed:.3f}\ntrace_split_total{{kind="b"}} {elapsed:.3f}\n'
            f"# TYPE trace_gauge gauge\ntrace_gauge {flip}\n"
        )

    server = serve(metrics)
    prom = PrometheusProcess(jobs=(ScrapeJob("trace"),), scrape_interval_s=1.0)
    prom.set_targets("trace", "local", [f"127.0.0.1:{server.server_port}"])
    try:
        prom.start()
        prom.wait_for_targets(job="trace", timeout_s=30)
        first = math.ceil(time.time())
        deadline = time.monotonic() + 30
        while time.time() < first + 4.5 and time.monotonic() < deadline:  # four whole seconds of 1 s scrapes
            time.sleep(0.25)
        yield Scraped(prom.url, first, first + 4)
    finally:
        prom.stop()
        server.shutdown()
        server.server_close()


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        main([*argv])
        raise SystemExit(0)
    code = exited.value.code
    return (code if isinstance(code, int) else 0), capsys.readouterr().err


@pytest.mark.slow
def test_export_writes_the_counters_increase_per_second(scraped: Scraped, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "trace.csv"
    code, err = cli(
        capsys,
        "trace",
        "export",
        "--prometheus",
        scraped.url,
        "--query",
        "trace_requests_total",
        "--start",
        str(scraped.start_s),
        "--end",
        str(scraped.end_s),
        "--out",
        str(out),
    )
    assert code == 0, err
    expected = scraped.value_at("trace_requests_total", scraped.end_s) - scraped.value_at("trace_requests_total", scraped.start_s)
    series = load_trace(out, gap_s=None, cache_dir=False)
    assert np.nansum(series) == expected and 3 * RATE_RPS <= expected <= 5 * RATE_RPS
    assert series.size <= 4 and "wrote" in err
    assert out.read_text(encoding="utf-8").startswith("# infadapter trace export")


@pytest.mark.slow
def test_chunked_queries_give_the_same_trace(scraped: Scraped) -> None:
    client = connect(scraped.url, 10)
    whole = export_series(client, "trace_requests_total", scraped.start_s, scraped.end_s)
    chunked = export_series(client, "trace_requests_total", scraped.start_s, scraped.end_s, chunk_points=2)
    assert whole.queries == 1 and chunked.queries == 3  # 5 points in chunks of 2
    assert np.array_equal(whole.per_second, chunked.per_second, equal_nan=True)


@pytest.mark.slow
def test_a_rate_query_is_exported_as_requests_per_second(scraped: Scraped) -> None:
    export = export_series(connect(scraped.url, 10), "trace_gauge", scraped.start_s, scraped.end_s, rate=True)
    known = export.per_second[~np.isnan(export.per_second)]
    assert known.size >= 3 and set(known.tolist()) <= {3.0, 5.0}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("query", "expect", "hint"),
    [
        ("sum(rate(trace_requests_total[1m]", "Prometheus refused", "PromQL"),
        ("trace_split_total", "several series", "sum("),
        ("trace_gauge", "not a counter", "--rate"),
        ("trace_absent_total", "no data", "time range"),
    ],
)
def test_bad_queries_exit_2_naming_the_query(scraped: Scraped, tmp_path: Path, capsys: pytest.CaptureFixture[str], query: str, expect: str, hint: str) -> None:
    out = tmp_path / "t.csv"
    code, err = cli(
        capsys,
        "trace",
        "export",
        "--prometheus",
        scraped.url,
        "--query",
        query,
        "--start",
        str(scraped.start_s),
        "--end",
        str(scraped.end_s),
        "--out",
        str(out),
    )
    assert code == 2, err
    assert "--query" in err and expect in err and hint in err
    assert not out.exists()


def test_an_unreachable_prometheus_fails_fast_with_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    code, err = cli(capsys, "trace", "export", "--prometheus", "http://127.0.0.1:9", "--query", "up", "--start", "now-1m", "--out", str(tmp_path / "t.csv"))
    assert code == 1 and "cannot query Prometheus" in err and "internal error" not in err
    assert time.monotonic() - started < 20


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--start", "0"], "--start"),  # 55 years: refused before any query
        (["--start", "yesterday"], "--start"),
        (["--start", "now", "--end", "now-1h"], "--end"),
        (["--start", "now-1m", "--step", "0"], "--step"),
        (["--start", "now-1m", "--prometheus", "localhost:9090"], "--prometheus"),
    ],
)
def test_bad_arguments_exit_2_naming_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], option: str) -> None:
    base = {"--prometheus": "http://127.0.0.1:9", "--query": "up", "--out": str(tmp_path / "t.csv")}
    given = dict(zip(args[::2], args[1::2], strict=True))
    argv = [item for key, value in {**base, **given}.items() for item in (key, value)]
    code, err = cli(capsys, "trace", "export", *argv)
    assert code == 2 and option in err and "hint:" in err, err


def test_time_forms() -> None:
    now = 1_700_000_000.0
    assert parse_time("now", "--start", now) == now
    assert parse_time("now-90s", "--start", now) == now - 90
    assert parse_time("-2h", "--start", now) == now - 7200
    assert parse_time("1630454400", "--start", now) == 1630454400
    assert parse_time("2021-09-01T00:00:00Z", "--start", now) == 1630454400
    assert parse_time("2021-09-01T02:00:00+02:00", "--start", now) == 1630454400
    with pytest.raises(InvalidInput, match="--end"):
        parse_time("tomorrow", "--end", now)


class CountingClient:
    """A Prometheus stand-in that enforces Prometheus' point limit and serves a counter of 3 rps."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def custom_query_range(self, query: str, start_time: datetime, end_time: datetime, step: str) -> list[dict[str, Any]]:
        start, end, every = int(start_time.timestamp()), int(end_time.timestamp()), int(step)
        points = (end - start) // every + 1
        if points > MAX_POINTS_PER_QUERY:
            raise AssertionError(f"{points} points: Prometheus would refuse the query")
        self.calls.append(points)
        return [{"metric": {}, "values": [[t, str(3 * t)] for t in range(start, end + 1, every)]}]


def test_a_day_is_asked_in_chunks_under_prometheus_limit() -> None:
    client = CountingClient()
    export = export_series(client, "x", 1_630_454_400, 1_630_454_400 + 86400)
    assert len(client.calls) == 9 and sum(client.calls) == 86401
    assert export.per_second.size == 86400 and np.all(export.per_second == 3)
