"""What ``benchmarks/fidelity.py`` measures of an embedded run beside its summary.

The servers' cold starts and the CPU one start takes (:func:`startup_cpu`), the CPU every other process took (:class:`OthersCpu`, fitted into a
:class:`~infadapter.sim.machine.Machine`), the plans the controller decided (:class:`Decided`, for the
``replay`` policy), the client's latency and send lag, and what the router and the observer saw
(:class:`RouterView`).
"""

from __future__ import annotations

import itertools
import math
import os
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from infadapter.control import ControlState, Step
from infadapter.embedded import EmbeddedRun
from infadapter.errors import MetricsUnavailable
from infadapter.metrics import Observer
from infadapter.planning import Plan, cpu_grid
from infadapter.policies import Resize
from infadapter.runtime.local.servers import STARTUP_BOOST_CORES, ServerFactory
from infadapter.serving.triton import TritonProcess
from infadapter.sim.machine import Machine
from infadapter.sim.run import BIN_S
from infadapter.spec import InferenceServiceSpec

T = TypeVar("T")
READY = re.compile(r"^(?P<variant>[^#]+)#\S+ after (?P<s>[0-9.]+) s$")


def cold_starts(run: EmbeddedRun) -> dict[str, list[float]]:
    """Seconds from a server's launch to its first ready answer, per variant (the runtime's ``ready`` events)."""
    out: dict[str, list[float]] = {}
    for event in run.events:
        match = READY.match(event.detail) if event.kind == "ready" else None
        if match:
            out.setdefault(match["variant"], []).append(round(float(match["s"]), 2))
    return out


def ready_seconds(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per variant, the median of the batch's measured starts (:func:`cold_starts`, from launch to the first
    answer): how long a simulated replica takes to serve (:attr:`~infadapter.sim.machine.Machine.ready_s`)."""
    starts: dict[str, list[float]] = {}
    for row in rows:
        for variant, seconds in (row.get("cold_starts_s") or {}).items():
            starts.setdefault(variant, []).extend(float(s) for s in seconds if s > 0)
    return {variant: round(statistics.median(seconds), 3) for variant, seconds in starts.items() if seconds}


class Sampler(Generic[T]):
    """Once a second while ``run``'s load runs, what :meth:`sample` reads of its runtime, with the Unix time."""

    def __init__(self, run: EmbeddedRun) -> None:
        self.run = run
        self.samples: list[tuple[float, T]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"fidelity-{type(self).__name__}", daemon=True)
        self._thread.start()

    def sample(self, runtime: Any) -> T:
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            rt = self.run.runtime
            if rt is None or self.run.load_started_wall_s is None:
                continue
            self.samples.append((time.time(), self.sample(rt)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class OthersCpu(Sampler[float]):
    """The CPU seconds every process but the servers took so far: this one (the load generator, the controller,
    the observer), Envoy and Prometheus — what :class:`~infadapter.sim.machine.Machine` models."""

    def sample(self, runtime: Any) -> float:
        pids = [runtime.envoy.pid, runtime.prometheus.process.pid if runtime.prometheus and runtime.prometheus.process else None]
        return time.process_time() + sum(process_cpu_s(p) for p in pids if p)

    def per_second(self, rates: npt.NDArray[np.float64]) -> tuple[list[int], list[float], list[float]]:
        """(second, load, cores taken) for every second of the load the samples cover."""
        start = self.run.load_started_wall_s or 0.0
        seconds, loads, cores = [], [], []
        for (t0, c0), (t1, c1) in itertools.pairwise(self.samples):
            second = int((t0 + t1) / 2 - start)
            if 0 <= second < rates.size and t1 > t0:
                seconds.append(second)
                loads.append(float(rates[second]))
                cores.append((c1 - c0) / (t1 - t0))
        return seconds, loads, cores


class Decided:
    """The plans a measured run's controller decided, as ``replay``'s schedule: (seconds since the load began,
    plan, resize), one entry each time its target changed after the load began."""

    def __init__(self, run: EmbeddedRun) -> None:
        self.run = run
        self.raw: list[tuple[float, Plan, Resize]] = []  # on the run's clock
        step = run.controller.step

        def recorded(state: ControlState, now_s: float, history: Any, actuator: Any) -> tuple[Step, ControlState]:
            out = step(state, now_s, history, actuator)
            target = out[1].target
            if target is not None and (not self.raw or self.raw[-1][1] is not target):
                self.raw.append((now_s, target, "in_place" if out[1].in_place else "recreate"))
            return out

        run.controller.step = recorded  # type: ignore[method-assign]

    def schedule(self) -> list[tuple[float, Plan, Resize]]:
        offset = self.run.load_offset_s
        return [(t - offset, plan, resize) for t, plan, resize in self.raw if t > offset]


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def startup_cpu(spec: InferenceServiceSpec, models: Mapping[str, Path], timeout_s: float = 120.0) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Per variant, the CPU seconds one start of its server takes on this machine, idle: its cgroup's processes'
    CPU from launch to its first ready answer, started as the embedded runtime starts one (its start-up boost,
    then the smallest size); and the start's shape: seconds until ready, and the share of its CPU taken in the
    last ``cpu / boost`` seconds before it (``final_share``: 1 where a start is what the simulator models,
    :meth:`~infadapter.sim.machine.Machine.starting`, its CPU at its whole boost just before it is ready). Measured here: 0.5-1.6 CPU s over starts of
    1.8-2.9 s, taken nearly all in that last stretch (about 0.1 s of CPU at launch, then next to none for a
    second)."""
    cpu: dict[str, float] = {}
    shape: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="fidelity-start-") as work:
        factory = ServerFactory(spec, models, Path(work), use_cgroup=True, startup_boost_cores=STARTUP_BOOST_CORES)
        for variant in spec.variant_names:
            if variant not in models:
                continue
            inst = factory.new_instance(variant, 0, min(cpu_grid(spec, variant), default=STARTUP_BOOST_CORES))
            assert inst.cgroup is not None
            boost = max(inst.cgroup.cores, 1e-9)  # its start-up boost's quota
            try:
                samples = _start_samples(inst.triton, inst.cgroup.path / "cgroup.procs", variant, timeout_s)
            finally:
                inst.triton.stop()
                inst.cgroup.remove()
            ready_s, used = samples[-1]
            before = [c for t, c in samples if t <= ready_s - used / boost]
            cpu[variant] = round(used, 3)
            final = used - (before[-1] if before else 0.0)
            shape[variant] = {"ready_s": round(ready_s, 2), "final_share": round(final / used, 3) if used > 0 else 0.0}
    return cpu, shape


def _start_samples(triton: TritonProcess, procs: Path, variant: str, timeout_s: float) -> list[tuple[float, float]]:
    """(seconds since launch, CPU seconds its cgroup's processes took) every 20 ms until the server is ready."""

    def used() -> float:
        return sum(process_cpu_s(int(pid)) for pid in procs.read_text(encoding="ascii").split())

    began = time.monotonic()
    triton.start(wait=False)
    samples = [(0.0, 0.0)]
    while not triton.is_ready():
        if time.monotonic() - began > timeout_s:
            raise TimeoutError(f"{variant}: its server was not ready within {timeout_s:g} s")
        time.sleep(0.02)
        samples.append((time.monotonic() - began, used()))
    samples.append((time.monotonic() - began, used()))
    return samples


def fit_machine(loads: list[float], cores: list[float]) -> Machine:
    """``cores taken = base + per_rps x load`` by least squares over the runs' seconds (both kept >= 0)."""
    x, y = np.asarray(loads), np.asarray(cores)
    if x.size < 2 or np.ptp(x) == 0:
        return Machine(float(len(os.sched_getaffinity(0))), float(y.mean()) if y.size else 0.0, 0.0)
    per_rps, base = np.polyfit(x, y, 1)
    if base < 0:
        base, per_rps = 0.0, float(np.dot(x, y) / np.dot(x, x))
    return Machine(float(len(os.sched_getaffinity(0))), round(max(0.0, float(base)), 4), round(max(0.0, float(per_rps)), 6))


def latency_quantiles(run: EmbeddedRun) -> dict[str, float]:
    ok = np.array([r.latency_ms for r in run.requests if r.ok])
    if ok.size == 0:
        return {}
    return {f"p{q}_ms": round(float(np.percentile(ok, q)), 1) for q in (50, 90, 99)}


def late_by_bin(run: EmbeddedRun, slo_ms: float, duration_s: int) -> list[float]:
    """The share of requests late or failed, per ``BIN_S`` seconds of the load (where the two sides differ)."""
    sent = np.array([r.send_s for r in run.requests])
    late = np.array([not r.ok or r.latency_ms > slo_ms for r in run.requests])
    bins = np.minimum(sent.astype(np.int64), duration_s - 1) // BIN_S
    count = np.bincount(bins, minlength=-(-duration_s // BIN_S))
    over = np.bincount(bins, weights=late.astype(np.float64), minlength=count.size)
    return [round(float(o / c), 3) if c else 0.0 for o, c in zip(over, count, strict=True)]


def client_lag(run: EmbeddedRun, slo_ms: float) -> dict[str, float]:
    """How late the load generator itself began its requests, and the late share without that delay."""
    lag = np.array([r.send_lag_ms for r in run.requests])
    if lag.size == 0:
        return {}
    late = np.array([not r.ok or r.latency_ms - r.send_lag_ms > slo_ms for r in run.requests])
    return {
        "send_lag_p50_ms": round(float(np.percentile(lag, 50)), 1),
        "send_lag_p99_ms": round(float(np.percentile(lag, 99)), 1),
        "send_lag_max_ms": round(float(lag.max()), 1),
        "late_without_send_lag": round(float(late.mean()), 5),
    }


class RouterView:
    """What Envoy saw of the same run, read from Prometheus before the runtime stops: the share of requests
    over the SLO at the router (downstream, by completion time), over the run and per ``BIN_S`` seconds —
    the client's figures less the client's own delays."""

    def __init__(self, slo_ms: float, duration_s: int) -> None:
        self.slo_ms, self.duration_s = slo_ms, duration_s
        self.figures: dict[str, Any] = {}
        self.observed: npt.NDArray[np.float64] | None = None
        #: per variant, each second's answers a second and mean wait in its servers' queues (ms), as Triton counted
        self.by_variant: dict[str, dict[str, list[float | None]]] = {}

    def __call__(self, run: EmbeddedRun, runtime: Any) -> None:
        start = run.load_started_wall_s
        if start is None:
            return
        observer = Observer(runtime.prometheus_url, timeout_s=5.0, retries=1)
        time.sleep(2.0)  # the last answers' scrape
        try:
            self._read(observer, run, start)
        except MetricsUnavailable as exc:
            self.figures = {"error": str(exc)}
        finally:
            observer.close()

    def _read(self, observer: Observer, run: EmbeddedRun, start: float) -> None:
        ns, name, now = run.namespace, run.name, time.time()
        whole = observer.slo_violation_ratio(ns, name, self.slo_ms, window_s=now - start + 1.0, at_s=now)
        bins = []
        for k in range(-(-self.duration_s // BIN_S)):
            end = start + (k + 1) * BIN_S
            bins.append(round(observer.slo_violation_ratio(ns, name, self.slo_ms, window_s=BIN_S, at_s=end), 3) if end <= now else math.nan)
        self.figures = {"router_violation_ratio": round(whole, 5), "router_late_by_10s": bins}
        self.by_variant = _served_by_variant(observer, ns, name, start, self.duration_s)
        # what the controller's observer read for second k of the load: the rate at its end
        self.observed = observer.arrival_history_rps(ns, name, start + 1.0, start + self.duration_s)


def _served_by_variant(observer: Observer, ns: str, name: str, start: float, duration_s: int) -> dict[str, dict[str, list[float | None]]]:
    """Per variant, the rate its servers answered at and their requests' mean queue wait (ms) for every second of
    the load (Triton's counters, scraped each second; None where none was scraped): the servers' side of a burst,
    which the client's latencies mix over variants."""
    where = f'namespace="{ns}",name="{name}"'
    queries = {
        "answered_rps": f"sum by (variant) (irate(nv_inference_request_success{{{where}}}[5s]))",
        "queue_ms": f"sum by (variant) (irate(nv_inference_queue_duration_us{{{where}}}[5s])) / 1000"
        f" / sum by (variant) (irate(nv_inference_request_success{{{where}}}[5s]))",
    }
    out: dict[str, dict[str, list[float | None]]] = {}
    for field, query in queries.items():
        for labels, times, values in observer.query_range(query, start + 1.0, start + duration_s):
            series = out.setdefault(labels.get("variant", "?"), {}).setdefault(field, [None] * duration_s)
            for t, v in zip(times, values, strict=True):
                k = round(t - start) - 1  # the rate at the end of second k
                if 0 <= k < duration_s and math.isfinite(v):
                    series[k] = round(float(v), 2)
    return out


def each_request(run: EmbeddedRun) -> dict[str, list[float]]:
    """Every request's measured latency and the client's own send lag (ms; the order of ``sent_s``): kept in a
    saved batch so that a later simulation can be compared second by second, not only per 10 s."""
    return {
        "latency_ms": [round(r.latency_ms, 1) if r.ok else -1.0 for r in run.requests],
        "send_lag_ms": [round(r.send_lag_ms, 1) for r in run.requests],
    }


def applied(run: EmbeddedRun) -> list[tuple[float, str]]:
    """When the runtime finished applying each action (seconds into the load) and what it did, as it logged."""
    start = run.load_started_wall_s
    if start is None:
        return []
    return [(round(e.at_s - start, 3), e.detail) for e in run.events if e.kind == "apply"]
