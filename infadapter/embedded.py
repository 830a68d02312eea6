"""The embedded mode's loop: observe (Prometheus) -> decide (policy) -> act (local runtime) -> report.

One :class:`EmbeddedRun` serves a spec on this machine (:class:`~infadapter.runtime.local.LocalRuntime`),
replays per-second rates open-loop through the router (:class:`~infadapter.loadgen.LoadGenerator`) and,
at the spec's interval (and between ticks when the policy's burst detector fires), asks the policy for a
plan from the arrival history Prometheus measured at the router. When Prometheus cannot answer, the
last plan is held and the decision says so (``metrics_unavailable``). Every tick is one
:class:`~infadapter.metrics.DecisionRecord`: exported (``infadapter_*`` metrics), logged, and shown live.
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from infadapter.control import DecisionReason
from infadapter.errors import ApplyFailed, MetricsUnavailable
from infadapter.loadgen import LoadGenerator, RequestRecord
from infadapter.metrics import DecisionLog, DecisionRecord, InfAdapterMetrics, Observer, record_from_plan
from infadapter.planning import Plan, plan_for_load
from infadapter.policies import Decision, Observation, make_policy
from infadapter.profiles import Profile
from infadapter.runtime.local import LocalRuntime, RuntimeEvent
from infadapter.spec import InferenceServiceSpec

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class RunSummary:
    """What ``infadapter run --json`` prints (the first seven fields) plus context."""

    requests: int
    errors: int
    slo_violation_ratio: float
    avg_cpu: float
    avg_accuracy: float
    p99_latency_ms: float
    reconfigurations: int
    policy: str = "ours"
    duration_s: float = 0.0
    metrics_unavailable_ticks: int = 0
    restarts: int = 0
    accuracy_source: str = "served"

    def to_json(self) -> dict[str, Any]:
        keys = ("requests", "errors", "slo_violation_ratio", "avg_cpu", "avg_accuracy", "p99_latency_ms", "reconfigurations")
        out = {k: v for k, v in asdict(self).items() if k in keys}
        return {k: (None if isinstance(v, float) and math.isnan(v) else (round(v, 6) if isinstance(v, float) else v)) for k, v in out.items()}


@dataclass
class Sample:
    t_s: float
    cores: float
    plan: Plan | None
    forecast_rps: float


@dataclass
class LiveState:
    """What the live view shows; written by the loop, read by the display."""

    policy: str
    total_s: float
    t_s: float = 0.0
    load_rps: float = math.nan
    forecast_rps: float = math.nan
    plan: str = "-"
    cores: float = 0.0
    p99_ms: float = math.nan
    violations_ratio: float = 0.0
    errors: int = 0
    sent: int = 0
    reconfigurations: int = 0
    lines: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.lines = [*self.lines[-5:], line]

    def __rich__(self) -> Any:
        from rich.table import Table

        table = Table(title=f"infadapter run · {self.policy} · {self.t_s:.0f}/{self.total_s:.0f} s", title_justify="left", expand=False)
        for column in ("load", "forecast", "plan", "cores", "p99 (10 s)", "violations", "errors", "reconf."):
            table.add_column(column)
        table.add_row(f"{self.load_rps:.0f} rps", f"{self.forecast_rps:.0f} rps", self.plan, f"{self.cores:.2f}",
                      f"{self.p99_ms:.0f} ms", f"{self.violations_ratio:.1%} of {self.sent}", str(self.errors), str(self.reconfigurations))  # fmt: skip
        from rich.console import Group
        from rich.text import Text

        return Group(table, *(Text(line, overflow="ellipsis", no_wrap=True) for line in self.lines))


def client_window(records: Sequence[RequestRecord], start_s: float, end_s: float, slo_ms: float) -> tuple[int, float, float]:
    """(requests, p99 ms, violation ratio) of the requests sent in ``[start_s, end_s)``."""
    chosen = [r for r in records if start_s <= r.send_s < end_s]
    if not chosen:
        return 0, math.nan, 0.0
    ok = np.array([r.latency_ms for r in chosen if r.ok])
    bad = (len(chosen) - ok.size) + int(np.count_nonzero(ok > slo_ms))
    return len(chosen), float(np.percentile(ok, 99)) if ok.size else math.nan, bad / len(chosen)


class EmbeddedRun:
    """One run of the loop against real local servers (see the module docstring)."""

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
        self.interval_s = float(spec.adaptation.interval_s)
        options: dict[str, Any] = {"interval_s": self.interval_s} if policy == "ours" else {}
        self.policy: Any = make_policy(policy, spec, profile, **options)
        self.namespace = namespace
        self.name = name or spec.model_name
        self.console = console
        self.live = live
        self.decision_log = decision_log or DecisionLog()
        self.before_stop = before_stop
        self.runtime_options = dict(runtime_options or {})
        self.records: list[DecisionRecord] = []
        self.samples: list[Sample] = []
        self.requests: list[RequestRecord] = []
        self.events: list[RuntimeEvent] = []
        self.reconfigurations = 0
        self.metrics_unavailable_ticks = 0
        self.plan: Plan | None = None
        self.forecast_rps = math.nan
        self.view = LiveState(self.policy_name, float(self.rates.size))
        self.served_by_variant: dict[str, float] = {}
        self._t0 = 0.0
        self._wall0 = 0.0
        self._gen: LoadGenerator | None = None
        self._runtime: LocalRuntime | None = None
        self._done = threading.Event()

    # ------------------------------------------------------------------ the run
    def initial_plan(self) -> Plan:
        """Static policies start on their plan; others on an exact plan for the first interval's peak (warm start)."""
        if hasattr(self.policy, "initial_plan"):
            plan: Plan = self.policy.initial_plan()
            return plan
        first = self.rates[: max(1, int(self.interval_s))]
        return plan_for_load(self.spec, self.profile, float(np.nanmax(first)) if first.size else 0.0)

    def run(self) -> RunSummary:
        exporter = InfAdapterMetrics()
        runtime = LocalRuntime(self.spec, self.models, namespace=self.namespace, name=self.name, on_event=self._on_event,
                               **self.runtime_options)  # fmt: skip
        self._runtime = runtime
        observer: Observer | None = None
        sampler = threading.Thread(target=self._sample_loop, name="infadapter-sampler", daemon=True)
        try:
            runtime.start()
            runtime.set_exporter_target(f"127.0.0.1:{exporter.serve()}")
            exporter.describe_service(self.namespace, self.name, slo_latency_s=self.spec.slo.latency_ms / 1000.0,
                                      slo_target_ratio=self.spec.slo.percentile / 100.0,
                                      variant_accuracy={v.name: v.accuracy for v in self.spec.variants})  # fmt: skip
            plan = self.initial_plan()
            self._say(f"starting {plan.describe()}")
            runtime.apply(plan)
            self._record(Decision(plan, float(plan.load_rps)), None, exporter, 0.0, "scale_up")
            self.plan = plan
            runtime.prometheus.wait_for_targets("envoy", timeout_s=30.0) if runtime.prometheus else None
            observer = Observer(runtime.prometheus_url, timeout_s=3.0, retries=1)  # a hung Prometheus costs one tick at most
            gen = LoadGenerator(runtime.url, self.spec.model_name, slo_ms=self.spec.slo.latency_ms,
                                timeout_s=max(10.0, 10 * self.spec.slo.latency_ms / 1000.0))  # fmt: skip
            self._gen = gen
            gen.start(self.rates)
            while gen.started_wall_s is None and gen.running:
                time.sleep(0.01)
            self._t0, self._wall0 = time.monotonic(), gen.started_wall_s or time.time()
            sampler.start()
            with self._display():
                self._loop(gen, runtime, observer, exporter)
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

    def _loop(self, gen: LoadGenerator, runtime: LocalRuntime, observer: Observer, exporter: InfAdapterMetrics) -> None:
        state = self.policy.initial_state()
        next_tick = float(getattr(self.policy, "first_tick_s", 0.0)) or self.interval_s
        last_tick = 0.0
        while gen.running:
            now = self.elapsed_s
            time.sleep(max(0.0, math.floor(now) + 1.0 - now))
            obs = self._observe(observer)
            now = self.elapsed_s  # after the query: a hung Prometheus must not postpone the tick
            due = now >= next_tick
            if not due and obs is not None and self.plan is not None:
                with contextlib.suppress(ValueError, ArithmeticError):
                    due = bool(self.policy.between_ticks(obs, state)) and now - last_tick >= 1.0
            if not due:
                continue
            last_tick, next_tick = now, now + self.interval_s
            if obs is None:
                self.metrics_unavailable_ticks += 1
                decision = Decision(None, note="Prometheus unreachable: holding the last plan")
            else:
                decision, state = self.policy.decide(obs, state)
            self._act(decision, runtime, exporter, "metrics_unavailable" if obs is None else None)

    def _observe(self, observer: Observer) -> Observation | None:
        wall_now = time.time()
        start = max(self._wall0, wall_now - float(self.spec.forecast.window_s))
        try:
            history = observer.arrival_history_rps(self.namespace, self.name, start, wall_now)
        except MetricsUnavailable as exc:
            log.warning("observe: %s", exc)
            return None
        capacity = self.plan.capacity_rps if self.plan is not None else 0.0
        return Observation(self.elapsed_s, history, self.plan, capacity)

    def _act(self, decision: Decision, runtime: LocalRuntime, exporter: InfAdapterMetrics, reason: DecisionReason | None) -> None:
        previous = self.plan
        if not math.isnan(decision.forecast_rps):
            self.forecast_rps = decision.forecast_rps
        reconfiguration_s = None
        if decision.plan is not None and (not decision.plan.same_config(previous) or decision.plan.weights() != (previous.weights() if previous else {})):
            try:
                result = runtime.apply(decision.plan, in_place=decision.resize == "in_place")
                self.plan = decision.plan
                if result.changed:  # instances started, resized or removed (a new split alone is a re-weight)
                    reconfiguration_s = result.duration_s
                    self.reconfigurations += 1
                    exporter.observe_reconfiguration(self.namespace, self.name, result.duration_s)
            except ApplyFailed as exc:
                self._say(f"apply failed, keeping what runs: {exc}")
                log.error("apply failed: %s", exc)
        self._record(decision, previous, exporter, reconfiguration_s, reason)

    def _record(self, decision: Decision, previous: Plan | None, exporter: InfAdapterMetrics, reconfiguration_s: float | None,
                reason: DecisionReason | None) -> None:  # fmt: skip
        now = self.elapsed_s
        records = self._gen.records() if self._gen is not None else []
        _, _, violations = client_window(records, now - self.interval_s, now, self.spec.slo.latency_ms)
        plan = decision.plan if decision.plan is not None else self.plan
        record = record_from_plan(self.namespace, self.name, time.time(), plan, previous if decision.plan is not None else plan,
                                  observed_rps=decision.observed_rps, forecast_rps=decision.forecast_rps, reason=reason,
                                  slo_violation_ratio=violations if records else None, reconfiguration_s=reconfiguration_s)  # fmt: skip
        self.records.append(record)
        exporter.observe(record)
        line = self.decision_log.log(record)
        if reason == "metrics_unavailable":
            line = f"metrics unavailable: holding {self.plan.describe() if self.plan else 'nothing'} ({decision.note or 'no recent history'})"
            log.warning(line)
        self._say(f"t={now:5.0f}s {line}")

    # ------------------------------------------------------------------ sampling, display
    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self._t0 if self._t0 else 0.0

    def _on_event(self, event: RuntimeEvent) -> None:
        self.events.append(event)
        if event.kind != "apply":
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
            self.samples.append(Sample(t, runtime.allocated_cores(), self.plan, self.forecast_rps))
            records = gen.records()
            sent, _, _ = client_window(records, t - 2.0, t - 1.0, self.spec.slo.latency_ms)
            _, p99, _ = client_window(records, t - 11.0, t - 1.0, self.spec.slo.latency_ms)
            total, _, ratio = client_window(records, 0.0, t, self.spec.slo.latency_ms)
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
        accuracy = {v.name: v.accuracy for v in self.spec.variants}
        served = {k: v for k, v in self.served_by_variant.items() if k in accuracy and v > 0}
        source = "served"
        if served:
            avg_accuracy = sum(accuracy[k] * n for k, n in served.items()) / sum(served.values())
        else:  # Prometheus gone: the plans' expected accuracy, weighted by the load of each second
            source = "expected"
            weights = [(s.plan.accuracy if s.plan else math.nan) for s in self.samples]
            avg_accuracy = float(np.nanmean(weights)) if weights else math.nan
        return RunSummary(
            requests=sent, errors=sum(1 for r in records if not r.ok), slo_violation_ratio=ratio,
            avg_cpu=float(np.mean(cores)) if cores else math.nan, avg_accuracy=avg_accuracy, p99_latency_ms=p99,
            reconfigurations=self.reconfigurations, policy=self.policy_name, duration_s=float(self.rates.size),
            metrics_unavailable_ticks=self.metrics_unavailable_ticks,
            restarts=sum(1 for e in self.events if e.kind.endswith("restarted")), accuracy_source=source,
        )  # fmt: skip

    def write_report(self, directory: str | Path, summary: RunSummary, notes: str = "") -> Path:
        from infadapter.metrics.report import PolicySeries, write_report

        slo = self.spec.slo.latency_ms
        t = np.array([s.t_s for s in self.samples]) if self.samples else np.zeros(1)
        seconds = np.floor(t)
        send = np.array([r.send_s for r in self.requests])
        load = np.array([np.count_nonzero((send >= s - 1) & (send < s)) for s in seconds], dtype=float)
        windows = [client_window(self.requests, s - 5.0, s, slo) for s in seconds]
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
            t_s=t, load_rps=load, forecast_rps=np.array([s.forecast_rps for s in self.samples] or [math.nan]),
            capacity_rps=np.array([p.capacity_rps if p else math.nan for p in plans]),
            cpu_cores=np.array([s.cores for s in self.samples] or [math.nan]),
            accuracy=np.array([p.accuracy if p else math.nan for p in plans]), p99_ms=np.array([w[1] for w in windows] or [math.nan]),
            violation_ratio=np.array([w[2] for w in windows] or [0.0]),
            variant_cores=per_variant("cpu_cores"), variant_weights=per_variant("weight"),
        )  # fmt: skip
        row = {"policy": summary.policy, **summary.to_json(), "accuracy_source": summary.accuracy_source, "restarts": summary.restarts}
        return write_report(directory, {summary.policy: series}, [row], title=f"infadapter run · {self.spec.model_name}",
                            slo_ms=slo, decisions=self.records, notes=notes)  # fmt: skip
