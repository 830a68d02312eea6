"""The embedded mode: the controller (:mod:`infadapter.control`) wired to this machine's clock, Prometheus and processes.

One :class:`EmbeddedRun` serves a spec on this machine (:class:`~infadapter.runtime.local.LocalRuntime`),
replays per-second rates open-loop through the router (:class:`~infadapter.loadgen.LoadGenerator`) and
steps the controller every second of a monotonic clock with the arrival history Prometheus measured at
the router (an empty history when Prometheus cannot answer: the controller then holds the plan and
records ``metrics_unavailable``), settling it in between when it expects a change. The controller's
cold start decides what runs first; the load starts once that serves. Every decision is one
:class:`~infadapter.control.DecisionRecord`: exported (``infadapter_*`` metrics), logged, and shown live.
The figures of the summary are measured at the client (requests, errors, violations, p99) and at the
runtime (allocated cores, including instances starting or draining; the accuracy of the variants that
actually served, from Triton's counters).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from infadapter.control import Controller, ControlState, DecisionRecord, Step, policy_options
from infadapter.embedded.view import CoreSample, LiveState, RunSummary, client_window
from infadapter.errors import ApplyFailed, MetricsUnavailable
from infadapter.loadgen import LoadGenerator, RequestRecord
from infadapter.metrics import DecisionLog, InfAdapterMetrics, Observer
from infadapter.planning import Plan
from infadapter.policies import make_policy
from infadapter.profiles import Profile
from infadapter.runtime.local.actuator import LATENCIES, LocalRuntime
from infadapter.runtime.local.servers import RuntimeEvent, run_cgroup_prefix
from infadapter.serving.cpulimit import weighted_self
from infadapter.spec import InferenceServiceSpec

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
#: the cold start must serve within this before the load starts
COLD_START_TIMEOUT_S = 180.0
#: the least time between two settles of the controller between its steps
SETTLE_GAP_S = 0.05


def next_call(now_s: float, wake_s: float, last_settle_s: float) -> tuple[Literal["settle", "step"], float]:
    """The loop's next controller call and when: a settle at the wake the controller asked for if it comes before
    the next whole second, else the step at that second. A wake already past is due now (an apply on a busy
    machine can outlast a staged switch's 0.1-s poll: waiting for the next second made each stage of a capped
    switch take a second), but settles stay :data:`SETTLE_GAP_S` apart, so a wake that stays due cannot spin."""
    next_second = math.floor(now_s) + 1.0
    due = max(wake_s, last_settle_s + SETTLE_GAP_S)
    return ("settle", max(now_s, due)) if due < next_second else ("step", next_second)


class EmbeddedRun:
    """One run of the controller against real local servers (see the module docstring)."""

    def __init__(
        self,
        spec: InferenceServiceSpec,
        profile: Profile,
        models: Mapping[str, Path],
        rates_rps: Sequence[float] | FloatArray,
        *,
        policy: str = "ours",
        namespace: str = "default",
        name: str | None = None,
        console: Any = None,
        live: bool = True,
        decision_log: DecisionLog | None = None,
        before_stop: Callable[[LocalRuntime], None] | None = None,
        runtime_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.spec = spec
        self.profile = profile
        self.models = dict(models)
        self.rates = np.asarray(rates_rps, dtype=float)
        self.policy_name = policy
        self.namespace = namespace
        self.name = name or spec.model_name
        self.controller = Controller(
            spec, profile, make_policy(policy, spec, profile, **policy_options(policy, LATENCIES)), latencies=LATENCIES, namespace=namespace, name=self.name
        )
        self.console = console
        self.live = live
        self.decision_log = decision_log or DecisionLog()
        self.before_stop = before_stop
        self.runtime_options = dict(runtime_options or {})
        self.records: list[DecisionRecord] = []
        self.samples: list[CoreSample] = []
        self.requests: list[RequestRecord] = []
        self.events: list[RuntimeEvent] = []
        self.reconfigurations = 0
        self.plan: Plan | None = None
        self.forecast_rps = math.nan
        self.view = LiveState(self.policy_name, float(self.rates.size))
        self.served_by_variant: dict[str, float] = {}
        self._t0 = 0.0
        self._wall0 = 0.0
        self._load_s = 0.0
        self._reconfiguring_since: float | None = None
        self._gen: LoadGenerator | None = None
        self._runtime: LocalRuntime | None = None
        self._done = threading.Event()

    @property
    def runtime(self) -> LocalRuntime | None:
        """The servers, router and Prometheus while the run holds them (for measurements beside the run)."""
        return self._runtime

    @property
    def load_started_wall_s(self) -> float | None:
        """When the load began (Unix time); None before."""
        return self._gen.started_wall_s if self._gen is not None else None

    @property
    def load_offset_s(self) -> float:
        """The run's clock (:attr:`elapsed_s`) when the load began: a decision at ``t`` came ``t - load_offset_s``
        seconds into the load (0 before the load began)."""
        return self._load_s

    @property
    def metrics_unavailable_ticks(self) -> int:
        return sum(1 for r in self.records if r.reason == "metrics_unavailable")

    # ------------------------------------------------------------------ the run
    def run(self) -> RunSummary:
        """Serve, load and control until the rates are replayed (or the run is stopped); the summary."""
        # the load generator and the controller are light and latency-critical, like the router: a client starved by
        # busy servers measures its own delay, and a late step reads and acts late
        with weighted_self(f"{run_cgroup_prefix('embedded')}-client"):
            return self._serve()

    def _serve(self) -> RunSummary:
        exporter = InfAdapterMetrics()
        runtime = LocalRuntime(self.spec, self.models, namespace=self.namespace, name=self.name, on_event=self._on_event, **self.runtime_options)
        self._runtime = runtime
        observer: Observer | None = None
        sampler = threading.Thread(target=self._sample_loop, name="infadapter-sampler", daemon=True)
        try:
            runtime.start()
            runtime.set_exporter_target(f"127.0.0.1:{exporter.serve()}")
            exporter.describe_service(
                self.namespace,
                self.name,
                slo_latency_s=self.spec.slo.latency_ms / 1000.0,
                slo_target_ratio=self.spec.slo.percentile / 100.0,
                variant_accuracy={v.name: v.accuracy for v in self.spec.units},
            )
            self._t0, self._wall0 = time.monotonic(), time.time()
            state = self._cold_start(runtime, exporter)
            runtime.prometheus.wait_for_targets("envoy", timeout_s=30.0) if runtime.prometheus else None
            observer = Observer(runtime.prometheus_url, timeout_s=3.0, retries=1)  # a hung Prometheus costs one step at most
            gen = LoadGenerator(runtime.url, self.spec.model_name, slo_ms=self.spec.slo.latency_ms, timeout_s=max(10.0, 10 * self.spec.slo.latency_ms / 1000.0))
            self._gen = gen
            gen.start(self.rates)
            while gen.started_wall_s is None and gen.running:
                time.sleep(0.01)
            self._load_s = (gen.started_wall_s or time.time()) - self._wall0
            sampler.start()
            with self._display():
                self._loop(state, gen, runtime, observer, exporter)
            gen.join()
            self.requests = gen.records()
            self.served_by_variant = self._served(observer)
            if self.before_stop is not None:
                self.before_stop(runtime)
        finally:
            self._done.set()
            if self._gen is not None:
                self._gen.stop()
            if observer is not None:
                observer.close()
            runtime.stop()
            exporter.close()
        return self.summary()

    def _cold_start(self, runtime: LocalRuntime, exporter: InfAdapterMetrics) -> ControlState:
        """The controller's first step (nothing runs, no load yet), settled until its plan serves."""
        step, state = self.controller.step(self.controller.initial_state(), self.elapsed_s, np.empty(0), runtime.state())
        self._act(step, state, runtime, exporter)
        deadline = time.monotonic() + COLD_START_TIMEOUT_S
        while state.since_s is not None:
            if time.monotonic() > deadline:
                raise ApplyFailed(f"the first plan {self.plan.describe() if self.plan else ''} did not serve in {COLD_START_TIMEOUT_S:g} s")
            time.sleep(0.1)
            step, state = self.controller.settle(state, self.elapsed_s, runtime.state())
            self._act(step, state, runtime, exporter)
        return state

    def _loop(self, state: ControlState, gen: LoadGenerator, runtime: LocalRuntime, observer: Observer, exporter: InfAdapterMetrics) -> None:
        """Step the controller at every whole second of the run; settle it at the instants it expects a change."""
        wake, last = math.inf, -math.inf
        while gen.running:
            now = self.elapsed_s
            kind, at = next_call(now, wake, last)
            time.sleep(max(0.0, at - now))
            if kind == "settle":
                last = self.elapsed_s
                step, state = self.controller.settle(state, last, runtime.state())
            else:
                history = self._observe(observer)
                step, state = self.controller.step(state, self.elapsed_s, history, runtime.state())
            self._act(step, state, runtime, exporter)
            wake = step.wake_s

    def _observe(self, observer: Observer) -> FloatArray:
        """The router's per-second arrivals since the run began (the forecast window at most); empty when Prometheus fails."""
        wall_now = time.time()
        start = max(self._wall0, wall_now - float(self.spec.forecast.window_s))
        try:
            return observer.arrival_history_rps(self.namespace, self.name, start, wall_now)
        except MetricsUnavailable as exc:
            log.warning("observe: %s", exc)
            return np.empty(0)

    def _act(self, step: Step, state: ControlState, runtime: LocalRuntime, exporter: InfAdapterMetrics) -> None:
        """Execute the step's action, count and time reconfigurations, record its decision."""
        now = self.elapsed_s
        if step.action is not None:
            try:
                runtime.execute(step.action)
            except ApplyFailed as exc:  # the controller sees what runs at its next step and asks again
                self._say(f"apply failed, keeping what runs: {exc}")
                log.error("apply failed: %s", exc)
        if step.reconfigured and self.plan is not None:  # the first plan is the start, not a reconfiguration
            self.reconfigurations += 1
            self._reconfiguring_since = now
        if self._reconfiguring_since is not None and state.since_s is None:
            exporter.observe_reconfiguration(self.namespace, self.name, now - self._reconfiguring_since)
            self._reconfiguring_since = None
        self.plan = state.target
        if step.record is not None:
            self._record(step.record, exporter)

    def _record(self, record: DecisionRecord, exporter: InfAdapterMetrics) -> None:
        now = self.elapsed_s
        if not math.isnan(record.forecast_rps):
            self.forecast_rps = record.forecast_rps
        requests = self._gen.records() if self._gen is not None else []
        if requests:
            interval = float(self.spec.adaptation.interval_s)
            record = replace(record, slo_violation_ratio=self._window(requests, now - interval, now)[2])
        self.records.append(record)
        exporter.observe(record)
        line = self.decision_log.log(record)
        if record.reason == "metrics_unavailable":
            line = f"metrics unavailable: holding {self.plan.describe() if self.plan else 'nothing'}"
            log.warning(line)
        self._say(f"t={now:5.0f}s {line}")

    # ------------------------------------------------------------------ sampling, display
    @property
    def elapsed_s(self) -> float:
        """The run's clock: seconds since it began (the load begins ``_load_s`` later, once the first plan serves)."""
        return time.monotonic() - self._t0 if self._t0 else 0.0

    def _window(self, records: Sequence[RequestRecord], start_s: float, end_s: float) -> tuple[int, float, float]:
        """:func:`client_window` over ``[start_s, end_s)`` of the run's clock (requests count from the load's start)."""
        return client_window(records, start_s - self._load_s, end_s - self._load_s, self.spec.slo.latency_ms)

    def _on_event(self, event: RuntimeEvent) -> None:
        self.events.append(event)
        if event.kind not in ("apply", "ready"):  # routine: the decision lines say what changed
            self._say(f"t={self.elapsed_s:5.0f}s runtime: {event.kind} {event.detail}")

    def _say(self, line: str) -> None:
        self.view.say(line)
        if self.console is not None and not self.live:
            self.console.print(line, highlight=False, markup=False)

    def _sample_loop(self) -> None:
        while not self._done.wait(max(0.0, math.floor(self.elapsed_s) + 1.0 - self.elapsed_s)):
            t = self.elapsed_s
            runtime, gen = self._runtime, self._gen
            if runtime is None or gen is None:
                continue
            self.samples.append(CoreSample(t, runtime.allocated_cores(), self.plan, self.forecast_rps))
            records = gen.records()
            sent, _, _ = self._window(records, t - 2.0, t - 1.0)
            _, p99, _ = self._window(records, t - 11.0, t - 1.0)
            total, _, ratio = self._window(records, self._load_s, t)
            v = self.view
            v.t_s, v.load_rps, v.forecast_rps, v.cores, v.p99_ms = t, float(sent), self.forecast_rps, self.samples[-1].cores, p99
            v.plan = self.plan.describe() if self.plan else "-"
            v.sent, v.violations_ratio, v.errors, v.reconfigurations = total, ratio, sum(1 for r in records if not r.ok), self.reconfigurations

    @contextlib.contextmanager
    def _display(self) -> Any:
        if not self.live or self.console is None:
            yield
            return
        from rich.live import Live

        with Live(self.view, console=self.console, refresh_per_second=2, transient=False):
            yield

    # ------------------------------------------------------------------ results
    def _served(self, observer: Observer | None) -> dict[str, float]:
        """Requests each variant's servers answered during the run (Triton counters, restarts included)."""
        if observer is None:
            return {}
        window = max(1, math.ceil(time.time() - self._wall0) + 5)
        query = f'sum by (variant) (increase(nv_inference_request_success{{namespace="{self.namespace}",name="{self.name}"}}[{window}s]))'
        answered = sum(1 for r in self.requests if r.ok)
        deadline = time.monotonic() + 4.0  # the last scrape may still be due
        served: dict[str, float] = {}
        while time.monotonic() < deadline:
            try:
                served = observer.by_label(query, "variant")
            except MetricsUnavailable:
                return {}
            if sum(served.values()) >= 0.95 * answered:
                break
            time.sleep(1.0)
        return served

    def summary(self) -> RunSummary:
        records = self.requests
        slo = self.spec.slo.latency_ms
        sent, p99, ratio = client_window(records, 0.0, math.inf, slo)
        cores = [s.cores for s in self.samples]
        accuracy = {v.name: v.accuracy for v in self.spec.units}
        served = {k: v for k, v in self.served_by_variant.items() if k in accuracy and v > 0}
        source = "served"
        if served:
            avg_accuracy = sum(accuracy[k] * n for k, n in served.items()) / sum(served.values())
        else:  # Prometheus gone: the plans' expected accuracy, weighted by the load of each second
            source = "expected"
            weights = [(s.plan.accuracy if s.plan else math.nan) for s in self.samples]
            avg_accuracy = float(np.nanmean(weights)) if weights else math.nan
        return RunSummary(
            requests=sent,
            errors=sum(1 for r in records if not r.ok),
            slo_violation_ratio=ratio,
            avg_cpu=float(np.mean(cores)) if cores else math.nan,
            avg_accuracy=avg_accuracy,
            p99_latency_ms=p99,
            reconfigurations=self.reconfigurations,
            policy=self.policy_name,
            duration_s=float(self.rates.size),
            metrics_unavailable_ticks=self.metrics_unavailable_ticks,
            restarts=sum(1 for e in self.events if e.kind.endswith("restarted")),
            accuracy_source=source,
        )

    def write_report(self, directory: str | Path, summary: RunSummary, notes: str = "") -> Path:
        from infadapter.metrics.report import PolicySeries, write_report

        slo = self.spec.slo.latency_ms
        t = np.array([s.t_s for s in self.samples]) if self.samples else np.zeros(1)
        seconds = np.floor(t)
        send = np.array([r.send_s + self._load_s for r in self.requests])
        load = np.array([np.count_nonzero((send >= s - 1) & (send < s)) for s in seconds], dtype=float)
        windows = [self._window(self.requests, s - 5.0, s) for s in seconds]
        plans = [s.plan for s in self.samples] or [None]
        names = self.spec.variant_names

        def per_variant(attr: str) -> dict[str, FloatArray]:
            out = {}
            for n in names:
                values = []
                for p in plans:
                    v = p.variant(n) if p is not None else None
                    values.append(0.0 if v is None else (v.total_cpu if attr == "cpu_cores" else v.weight))
                out[n] = np.array(values)
            return out

        series = PolicySeries(
            t_s=t,
            load_rps=load,
            forecast_rps=np.array([s.forecast_rps for s in self.samples] or [math.nan]),
            capacity_rps=np.array([p.capacity_rps if p else math.nan for p in plans]),
            cpu_cores=np.array([s.cores for s in self.samples] or [math.nan]),
            accuracy=np.array([p.accuracy if p else math.nan for p in plans]),
            p99_ms=np.array([w[1] for w in windows] or [math.nan]),
            violation_ratio=np.array([w[2] for w in windows] or [0.0]),
            variant_cores=per_variant("cpu_cores"),
            variant_weights=per_variant("weight"),
        )
        row = {"policy": summary.policy, **summary.to_json(), "accuracy_source": summary.accuracy_source, "restarts": summary.restarts}
        return write_report(
            directory, {summary.policy: series}, [row], title=f"infadapter run · {self.spec.model_name}", slo_ms=slo, decisions=self.records, notes=notes
        )
