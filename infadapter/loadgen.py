"""Open-loop load generator for Triton's HTTP inference API (direct or through the router).

Arrivals follow a Poisson process whose rate is constant within each second of a per-second
trace; a request is sent at its arrival time whether or not earlier ones have answered (open loop,
no coordinated omission: latency is measured from the *scheduled* send time). Every request is
recorded (send time, latency, ok) so reports can be computed for any window::

    gen = LoadGenerator("127.0.0.1:8000", "resnet", slo_ms=200)
    report = gen.run([20, 25, 30])            # blocking, one rate per second
    gen.start(rates); ...; gen.report(10, 20) # in the background; a window of the run

The SLO violation ratio is the project's: (requests over the SLO + failed requests) / all sent.
Percentiles are over the successful requests.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from infadapter.errors import FieldError, InvalidInput, MetricsUnavailable

DEFAULT_TIMEOUT_S = 10.0
#: more than one client process can send; beyond it a typo (a trace not scaled down) is likelier
MAX_RATE_RPS = 100_000.0


@dataclass(frozen=True)
class RequestRecord:
    send_s: float  # scheduled send time, seconds since the run started
    latency_ms: float  # end-to-end, from the scheduled send time (also set for failures)
    ok: bool
    error: str = ""
    #: how late the client itself began the request after its scheduled time (its event loop busy or
    #: starved of CPU): part of ``latency_ms`` that no server caused
    send_lag_ms: float = 0.0


@dataclass(frozen=True)
class LoadReport:
    sent: int
    ok: int
    errors: int
    duration_s: float
    achieved_rps: float  # sent / duration
    goodput_rps: float  # answered within the SLO / duration
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    slo_ms: float
    slo_violations: int  # over the SLO + failed
    slo_violation_ratio: float
    error_kinds: dict[str, int] = field(default_factory=dict)
    #: answered (late or not) before the window ended / duration: the servers' throughput, which above
    #: their saturation stays below ``achieved_rps`` (the rest is answered after the window)
    completed_rps: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}

    def percentile_ms(self, percentile: float) -> float:
        return {50.0: self.p50_ms, 95.0: self.p95_ms, 99.0: self.p99_ms}[float(percentile)]


def summarize(
    records: Sequence[RequestRecord],
    slo_ms: float,
    start_s: float | None = None,
    end_s: float | None = None,
    duration_s: float | None = None,
) -> LoadReport:
    """Report over the requests sent in ``[start_s, end_s)`` (all by default)."""
    chosen = [r for r in records if (start_s is None or r.send_s >= start_s) and (end_s is None or r.send_s < end_s)]
    if duration_s is None:
        if start_s is not None and end_s is not None:
            duration_s = end_s - start_s
        elif chosen:
            duration_s = max(1.0, math.ceil(max(r.send_s for r in chosen)) - (start_s or 0.0))
        else:
            duration_s = 0.0
    ok = np.array([r.latency_ms for r in chosen if r.ok], dtype=np.float64)
    errors = len(chosen) - len(ok)
    over = int(np.count_nonzero(ok > slo_ms))
    end_s = (start_s or 0.0) + duration_s
    completed = sum(1 for r in chosen if r.ok and r.send_s + r.latency_ms / 1000.0 < end_s)
    violations = over + errors

    def pct(q: float) -> float:
        return float(np.percentile(ok, q)) if len(ok) else float("nan")

    return LoadReport(
        sent=len(chosen),
        ok=len(ok),
        errors=errors,
        duration_s=float(duration_s),
        achieved_rps=len(chosen) / duration_s if duration_s > 0 else 0.0,
        goodput_rps=(len(ok) - over) / duration_s if duration_s > 0 else 0.0,
        p50_ms=pct(50),
        p95_ms=pct(95),
        p99_ms=pct(99),
        mean_ms=float(ok.mean()) if len(ok) else float("nan"),
        max_ms=float(ok.max()) if len(ok) else float("nan"),
        slo_ms=slo_ms,
        slo_violations=violations,
        slo_violation_ratio=violations / len(chosen) if chosen else 0.0,
        error_kinds=dict(Counter(r.error for r in chosen if not r.ok)),
        completed_rps=completed / duration_s if duration_s > 0 else 0.0,
    )


def arrivals_in_second(rate_rps: float, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Sorted arrival offsets in [0, 1) of a Poisson process of ``rate_rps`` (NaN or <= 0: none)."""
    if not rate_rps > 0:  # also NaN (a masked gap in the trace)
        return np.empty(0)
    return np.sort(rng.random(rng.poisson(rate_rps)))


def normalise_url(url: str) -> str:
    """``host:port`` as tritonclient wants it (accepts ``http://host:port/``)."""
    for scheme in ("http://", "https://"):
        if url.startswith(scheme):
            url = url[len(scheme) :]
    return url.rstrip("/")


class LoadGenerator:
    """Replays per-second rates open-loop against ``url`` (Triton HTTP, or the router in front of it).

    ``input_shape``/``input_name``/``datatype`` default to what the server's model metadata says
    (dynamic axes as 1). One run at a time; ``records()``/``report()`` may be called while it runs.
    """

    def __init__(
        self,
        url: str,
        model_name: str,
        *,
        slo_ms: float = 1000.0,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        seed: int = 0,
        conn_limit: int = 512,
        input_name: str | None = None,
        input_shape: Sequence[int] | None = None,
        datatype: str | None = None,
    ) -> None:
        self.url = normalise_url(url)
        self.model_name = model_name
        self.slo_ms = slo_ms
        self.timeout_s = timeout_s
        self.seed = seed
        self.conn_limit = conn_limit
        self._input_name = input_name
        self._input_shape = tuple(input_shape) if input_shape is not None else None
        self._datatype = datatype
        self._records: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._scheduled_s = 0.0
        self.started_monotonic: float | None = None
        self.started_wall_s: float | None = None  # time.time() at t=0 of the run (align with Prometheus)

    # ------------------------------------------------------------------ results
    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def report(self, start_s: float | None = None, end_s: float | None = None) -> LoadReport:
        duration = None if (start_s is not None and end_s is not None) else self._scheduled_s - (start_s or 0.0)
        return summarize(self.records(), self.slo_ms, start_s, end_s, duration)

    @property
    def elapsed_s(self) -> float:
        return 0.0 if self.started_monotonic is None else time.monotonic() - self.started_monotonic

    # ------------------------------------------------------------------ running
    def run(self, rates_rps: Sequence[float] | npt.NDArray[np.float64], on_second: Callable[[int, float], None] | None = None) -> LoadReport:
        """Send ``rates_rps[i]`` requests/s (Poisson) during second ``i``; wait for the answers; report."""
        self._reset()
        asyncio.run(self._run([float(r) for r in rates_rps], on_second))
        return self.report()

    def run_constant(self, rate_rps: float, duration_s: float) -> LoadReport:
        seconds = max(1, math.ceil(duration_s))
        return self.run([rate_rps] * seconds)

    def start(self, rates_rps: Sequence[float] | npt.NDArray[np.float64], on_second: Callable[[int, float], None] | None = None) -> None:
        """Run in a background thread; ``stop()`` ends it early, ``join()`` waits for it."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the load generator is already running")
        self._reset()
        rates = [float(r) for r in rates_rps]

        def target() -> None:
            try:
                asyncio.run(self._run(rates, on_second))
            except BaseException as exc:  # re-raised by join()
                self._error = exc

        self._thread = threading.Thread(target=target, name="infadapter-load", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sending; requests in flight still complete (or time out)."""
        self._stop.set()

    def join(self, timeout_s: float | None = None) -> LoadReport:
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return self.report()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _reset(self) -> None:
        self._stop.clear()
        self._error = None
        with self._lock:
            self._records = []
        self._scheduled_s = 0.0

    async def _inputs(self, client: Any) -> list[Any]:
        from tritonclient import http
        from tritonclient.utils import InferenceServerException

        name, shape, dtype = self._input_name, self._input_shape, self._datatype
        if name is None or shape is None or dtype is None:
            try:
                meta = await client.get_model_metadata(self.model_name)
            except (TimeoutError, InferenceServerException, OSError) as exc:
                raise MetricsUnavailable(f"cannot read metadata of model {self.model_name!r} at {self.url}: {exc}") from exc
            first = meta["inputs"][0]
            name = name or first["name"]
            dtype = dtype or first["datatype"]
            shape = shape or tuple(max(1, int(d)) for d in first["shape"])
        np_type = {"FP32": np.float32, "FP16": np.float16, "INT64": np.int64, "INT32": np.int32, "UINT8": np.uint8}[dtype]
        data = np.random.default_rng(self.seed).random(shape).astype(np_type)
        tensor = http.InferInput(name, list(shape), dtype)
        tensor.set_data_from_numpy(data, binary_data=True)
        return [tensor]

    async def _run(self, rates: list[float], on_second: Callable[[int, float], None] | None) -> None:
        from tritonclient.http import aio

        client = aio.InferenceServerClient(self.url, conn_limit=self.conn_limit, conn_timeout=self.timeout_s)
        tasks: set[asyncio.Task[None]] = set()
        try:
            inputs = await self._inputs(client)
            loop = asyncio.get_running_loop()
            rng = np.random.default_rng(self.seed)
            t0 = loop.time()
            self.started_monotonic = time.monotonic()
            self.started_wall_s = time.time()
            for second, rate in enumerate(rates):
                if self._stop.is_set():
                    break
                self._scheduled_s = second + 1.0
                if on_second is not None:
                    on_second(second, rate)
                for offset in arrivals_in_second(rate, rng):
                    at_s = second + float(offset)
                    delay = t0 + at_s - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    if self._stop.is_set():
                        break
                    task = asyncio.create_task(self._one(client, inputs, t0, at_s))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                end = t0 + second + 1.0 - loop.time()
                if end > 0 and not self._stop.is_set():
                    await asyncio.sleep(end)
            if self._stop.is_set():
                self._scheduled_s = min(self._scheduled_s, loop.time() - t0)
            if tasks:
                await asyncio.wait(set(tasks), timeout=self.timeout_s + 2.0)
        finally:
            for task in tasks:
                task.cancel()
            await client.close()

    async def _one(self, client: Any, inputs: list[Any], t0: float, at_s: float) -> None:
        import aiohttp
        from tritonclient.utils import InferenceServerException

        loop = asyncio.get_running_loop()
        send_lag_ms = max(0.0, (loop.time() - t0 - at_s) * 1000.0)
        error = ""
        try:
            await asyncio.wait_for(client.infer(self.model_name, inputs), self.timeout_s)
        except TimeoutError:
            error = "timeout"
        except InferenceServerException as exc:
            error = f"server: {exc.status() or exc.message()}"[:80]
        except (aiohttp.ClientError, OSError) as exc:
            error = f"connection: {type(exc).__name__}"
        except Exception as exc:  # an unparsable answer is a failed request, recorded like the others
            error = f"client: {type(exc).__name__}"
        latency_ms = (loop.time() - t0 - at_s) * 1000.0
        record = RequestRecord(at_s, latency_ms, not error, error, send_lag_ms)
        with self._lock:
            self._records.append(record)


def scaled_rates(series_rps: npt.ArrayLike, scale: float) -> npt.NDArray[np.float64]:
    """A trace's per-second rates times ``scale`` (NaN gaps become 0: nothing is sent)."""
    if not (scale > 0 and math.isfinite(scale)):
        raise InvalidInput([FieldError("scale", f"must be a finite number > 0, got {scale}", "use e.g. 0.01 to shrink a trace")], "load")
    rates = np.nan_to_num(np.asarray(series_rps, dtype=np.float64) * scale, nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(rates.max()) if rates.size else 0.0
    if peak > MAX_RATE_RPS:
        raise InvalidInput(
            [FieldError("scale", f"the scaled trace peaks at {peak:.3g} rps, more than {MAX_RATE_RPS:.0f}", "scale the trace down, e.g. --scale 0.01")], "load"
        )
    return rates
