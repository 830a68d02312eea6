"""Load generator: open-loop Poisson arrivals, per-request records, the project's SLO measures."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from infadapter.cli import app
from infadapter.loadgen import LoadGenerator, RequestRecord, arrivals_in_second, scaled_rates, summarize

from .conftest import MODEL_NAME


def test_summary_percentiles_violations_and_window() -> None:
    latencies = np.arange(1, 101, dtype=float)  # 1..100 ms, one request per 10 ms of send time
    records = [RequestRecord(i * 0.01, float(lat), True) for i, lat in enumerate(latencies)]
    records += [RequestRecord(0.5, 10_000.0, False, "timeout"), RequestRecord(1.5, 3.0, False, "server: 503")]
    report = summarize(records, slo_ms=90.0, duration_s=2.0)
    assert report.sent == 102 and report.ok == 100 and report.errors == 2
    assert report.p50_ms == pytest.approx(np.percentile(latencies, 50))
    assert report.p99_ms == pytest.approx(np.percentile(latencies, 99))
    assert report.max_ms == 100.0
    assert report.slo_violations == 10 + 2  # 91..100 ms are over, both failures count
    assert report.slo_violation_ratio == pytest.approx(12 / 102)
    assert report.achieved_rps == pytest.approx(51.0)
    assert report.goodput_rps == pytest.approx(45.0)
    assert report.error_kinds == {"timeout": 1, "server: 503": 1}

    window = summarize(records, slo_ms=90.0, start_s=0.5, end_s=1.0)
    assert window.sent == 51 and window.errors == 1  # sends at 0.50..0.99 and the failure at 0.5
    assert window.achieved_rps == pytest.approx(102.0)
    assert json.loads(json.dumps(window.to_dict()))["sent"] == 51


def test_completed_rate_counts_only_answers_inside_the_window() -> None:
    # a saturated server: 10 requests a second for 2 s, answered one every 0.2 s (5 per second) from t = 0.2
    records = [RequestRecord(i * 0.1, ((i + 1) * 0.2 - i * 0.1) * 1000.0, True) for i in range(20)]
    report = summarize(records, slo_ms=10_000.0, duration_s=2.0)
    assert report.achieved_rps == pytest.approx(10.0) and report.goodput_rps == pytest.approx(10.0)
    assert report.completed_rps == pytest.approx(9 / 2.0)  # answers at 0.2, 0.4, ..., 1.8 fall inside [0, 2)
    light = summarize(records[:5], slo_ms=10_000.0, duration_s=2.0)
    assert light.completed_rps == pytest.approx(5 / 2.0)  # below saturation: everything sent is answered in time


def test_empty_summary_has_no_percentiles() -> None:
    report = summarize([], slo_ms=100.0)
    assert report.sent == 0 and report.slo_violation_ratio == 0.0
    assert report.to_dict()["p99_ms"] is None


def test_arrivals_are_poisson_within_each_second() -> None:
    rng = np.random.default_rng(1)
    counts = [len(arrivals_in_second(40.0, rng)) for _ in range(2000)]
    assert np.mean(counts) == pytest.approx(40.0, rel=0.02)
    assert np.var(counts) == pytest.approx(40.0, rel=0.15)  # Poisson: variance = mean
    offsets = arrivals_in_second(500.0, rng)
    assert np.all(np.diff(offsets) >= 0) and offsets.min() >= 0 and offsets.max() < 1
    assert len(arrivals_in_second(float("nan"), rng)) == 0 and len(arrivals_in_second(0.0, rng)) == 0


def test_scaled_rates_drop_gaps() -> None:
    assert scaled_rates([100.0, float("nan"), 50.0], 0.1).tolist() == pytest.approx([10.0, 0.0, 5.0])


class SlowServer:
    """A fake Triton HTTP endpoint that answers every inference after ``delay_s`` (concurrently)."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.port = 0
        self.received = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        from aiohttp import web

        async def metadata(_: web.Request) -> web.Response:
            return web.json_response(
                {
                    "name": "slow",
                    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
                    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}],
                }
            )

        async def infer(request: web.Request) -> web.Response:
            await request.read()
            self.received += 1
            await asyncio.sleep(self.delay_s)
            return web.json_response({"model_name": "slow", "outputs": [{"name": "y", "datatype": "FP32", "shape": [1, 1], "data": [0.0]}]})

        async def unavailable(_: web.Request) -> web.Response:
            self.received += 1
            return web.Response(status=503, text="no healthy upstream")

        async def garbage(_: web.Request) -> web.Response:
            self.received += 1
            return web.Response(status=200, text="not json")

        async def start() -> None:
            application = web.Application()
            application.router.add_get("/v2/models/slow", metadata)
            application.router.add_post("/v2/models/slow/infer", infer)
            application.router.add_post("/v2/models/down/infer", unavailable)
            application.router.add_post("/v2/models/garbage/infer", garbage)
            runner = web.AppRunner(application)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self._ready.set()

        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def __enter__(self) -> SlowServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@pytest.fixture
def slow_server() -> Iterator[SlowServer]:
    with SlowServer(delay_s=0.5) as server:
        yield server


def test_arrivals_do_not_wait_for_responses(slow_server: SlowServer) -> None:
    gen = LoadGenerator(f"http://127.0.0.1:{slow_server.port}/", "slow", slo_ms=400.0, seed=3)
    report = gen.run([30.0, 30.0])
    # closed loop with one connection could send ~4; open loop sends ~60, each taking ~0.5 s
    assert report.sent > 40 and report.errors == 0 and slow_server.received == report.sent
    assert 480 < report.p50_ms < 700
    assert report.slo_violation_ratio == 1.0
    assert report.duration_s == 2.0


def test_background_run_stops_early_and_keeps_records(slow_server: SlowServer) -> None:
    gen = LoadGenerator(f"127.0.0.1:{slow_server.port}", "slow", slo_ms=1000.0, timeout_s=5.0)
    gen.start([20.0] * 30)
    threading.Event().wait(1.2)
    gen.stop()
    report = gen.join(10)
    assert not gen.running
    assert 10 < report.sent < 60 and report.errors == 0
    assert max(r.send_s for r in gen.records()) < 2.0


def test_a_stalled_client_records_its_own_delay(slow_server: SlowServer) -> None:
    def stall(second: int, _rate: float) -> None:
        if second == 1:  # the loop's thread blocked: every send due in the next 0.3 s leaves late
            time.sleep(0.3)

    gen = LoadGenerator(f"127.0.0.1:{slow_server.port}", "slow", slo_ms=1000.0, seed=5)
    gen.run([40.0, 40.0], on_second=stall)
    records = gen.records()
    early = [r.send_lag_ms for r in records if r.send_s < 1.0]
    stalled = [r.send_lag_ms for r in records if 1.0 <= r.send_s < 1.2]
    assert early and stalled
    assert sorted(early)[len(early) // 2] < 30.0
    assert min(stalled) > 90.0
    assert all(r.latency_ms >= r.send_lag_ms for r in records)


def test_request_timeouts_count_as_errors() -> None:
    with SlowServer(delay_s=2.0) as server:
        gen = LoadGenerator(f"127.0.0.1:{server.port}", "slow", slo_ms=100.0, timeout_s=0.3)
        report = gen.run([10.0])
    assert report.sent > 0 and report.errors == report.sent and report.error_kinds == {"timeout": report.sent}
    assert report.slo_violation_ratio == 1.0


def _successes(metrics_url: str) -> float:
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("nv_inference_request_success{") and f'model="{MODEL_NAME}"' in line
    )


@pytest.mark.slow
def test_every_request_reaches_real_triton_and_is_recorded(running_triton: object) -> None:
    before = _successes(running_triton.metrics_url)  # type: ignore[attr-defined]
    gen = LoadGenerator(running_triton.url, MODEL_NAME, slo_ms=500.0)  # type: ignore[attr-defined]
    report = gen.run([20.0, 40.0, 20.0])
    assert report.errors == 0 and 50 < report.sent < 110
    assert _successes(running_triton.metrics_url) - before == report.sent  # type: ignore[attr-defined]
    latencies = [r.latency_ms for r in gen.records()]
    assert report.p95_ms == pytest.approx(np.percentile(latencies, 95))
    assert 0 < report.p50_ms <= report.p95_ms <= report.p99_ms <= report.max_ms == pytest.approx(max(latencies))
    # how many were late is the host's business (a slow stretch here once held one request 674 ms): that they are
    # counted as recorded is the load generator's
    assert report.slo_violation_ratio == pytest.approx(float(np.mean(np.array(latencies) > 500.0)))
    second = gen.report(1.0, 2.0)
    assert 15 < second.sent < 70  # the 40 rps second


@pytest.mark.slow
def test_load_cli_replays_a_scaled_trace(running_triton: object, tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    trace.write_text("\n".join(["100", "300", "200"]) + "\n")
    result = CliRunner().invoke(
        app,
        [
            "load",
            "--url",
            running_triton.url,
            "--trace",
            str(trace),
            "--scale",
            "0.1",  # type: ignore[attr-defined]
            "--model",
            MODEL_NAME,
            "--slo-ms",
            "300",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["errors"] == 0 and 35 < data["sent"] < 90 and data["duration_s"] == 3.0
    assert data["p99_ms"] < 300 and data["slo_violation_ratio"] == 0.0


def test_load_cli_needs_a_trace_or_a_rate() -> None:
    result = CliRunner().invoke(app, ["load", "--url", "127.0.0.1:1"])
    assert result.exit_code == 2


@pytest.mark.parametrize(("model", "kind"), [("down", "server: 503"), ("garbage", "client: ")])
def test_router_errors_and_unparsable_answers_are_recorded_as_errors(model: str, kind: str) -> None:
    with SlowServer(delay_s=0.0) as server:
        gen = LoadGenerator(f"127.0.0.1:{server.port}", model, slo_ms=100.0, input_name="x", input_shape=(1, 4), datatype="FP32")
        report = gen.run([20.0])
    assert report.sent == server.received > 0
    assert report.errors == report.sent and report.slo_violation_ratio == 1.0
    assert all(k.startswith(kind) for k in report.error_kinds)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--rate", "nan"], "--rate"),
        (["--rate", "inf"], "--rate"),
        (["--rate", "1", "--duration", "1e12"], "--duration"),
        (["--rate", "1", "--timeout-s", "0"], "--timeout-s"),
        (["--rate", "1", "--slo-ms", "nan"], "--slo-ms"),
        (["--rate", "1", "--scale", "-1"], "--scale"),
        (["--rate", "1", "--spec", ""], "--spec"),
    ],
)
def test_load_cli_refuses_bad_values_naming_the_option(args: list[str], option: str) -> None:
    result = CliRunner().invoke(app, ["load", "--url", "127.0.0.1:9", *args])
    assert result.exit_code == 2 and option in result.output, result.output


def test_a_trace_scaled_beyond_any_client_is_refused() -> None:
    from infadapter.errors import InvalidInput

    with pytest.raises(InvalidInput, match="scale the trace down"):
        scaled_rates([1e6, 2e6], 1.0)
