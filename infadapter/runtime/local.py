"""The local actuator of the embedded mode: a :class:`Plan` made real with processes on this machine.

* one ``tritonserver`` per (variant, replica), in its own cgroup v1 ``cpu`` group whose quota is the
  plan's cores; a size change is applied **in place** by rewriting the quota (the server, its model
  instances and its connections stay), with ``taskset`` as a warned fallback where cgroups are not
  writable (sizes then change by recreating the server, make-before-break);
* an Envoy router (:mod:`infadapter.runtime.envoy`) whose cluster weights follow the plan;
* a Prometheus scraping Envoy, every Triton and (when told) our exporter, targets added live.

Make-before-break: a new or recreated instance gets traffic only once ready; an instance leaves the
router before it is drained and stopped. A supervisor thread restarts whatever crashed (a Triton
instance, Envoy, Prometheus) and routes around a dead instance meanwhile. :meth:`LocalRuntime.stop`
(also run at exit) stops every child and removes every cgroup it created.

Every child is started from one long-lived launcher thread: the servers die with that thread
(``PR_SET_PDEATHSIG``), so even a killed ``infadapter run`` leaves no server behind.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from infadapter.errors import ApplyFailed, InfAdapterError
from infadapter.planning import Plan, cpu_grid
from infadapter.runtime.envoy import Endpoint, EnvoyProcess
from infadapter.runtime.prometheus import DEFAULT_JOBS, PrometheusProcess
from infadapter.serving.cpulimit import CGROUP_V1_CPU, CpuCgroup, cgroup_v1_writable, taskset_prefix
from infadapter.serving.repository import Serving, instances_for_cpu, write_repository
from infadapter.serving.triton import TritonProcess
from infadapter.spec import InferenceServiceSpec, ResizePolicy

log = logging.getLogger(__name__)

InstanceState = Literal["starting", "ready", "failed", "draining", "stopped"]


@dataclass
class Instance:
    """One tritonserver serving one variant replica."""

    variant: str
    slot: int
    generation: int
    cpu_cores: float
    triton: TritonProcess
    cgroup: CpuCgroup | None
    repo: Path
    state: InstanceState = "starting"
    routed: bool = False
    restarts: int = 0
    created_s: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> str:
        return f"{self.variant}#{self.slot}.{self.generation}"

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint("127.0.0.1", self.triton.http_port)


@dataclass(frozen=True)
class ApplyResult:
    duration_s: float
    started: tuple[str, ...] = ()
    resized: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.started or self.resized or self.removed)


@dataclass(frozen=True)
class RuntimeEvent:
    at_s: float  # time.time()
    kind: str  # crash, restarted, envoy_restarted, prometheus_restarted, apply, ...
    detail: str


def remove_stale_cgroups(root: Path = CGROUP_V1_CPU) -> list[str]:
    """Clean up after a run that was killed outright (SIGKILL: no cleanup ran).

    Its servers died with it (``PR_SET_PDEATHSIG``) but their python-backend stubs may survive, orphaned,
    in the run's groups (``run<pid>x…``). Every process in a group whose run is gone is such an orphan:
    killed, and the group removed.
    """
    removed = []
    for group in root.glob("infadapter/run*x*-*"):
        pid = group.name[3:].split("x", 1)[0]
        if not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue
        cgroup = CpuCgroup(group.name)
        for orphan in cgroup.pids():
            with contextlib.suppress(OSError):
                os.kill(orphan, signal.SIGKILL)
        deadline = time.monotonic() + 2.0
        while cgroup.pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        cgroup.remove()
        removed.append(group.name)
    if removed:
        log.warning("cleaned %d cgroups (and their orphaned processes) left by killed runs", len(removed))
    return removed


class LocalRuntime:
    """Triton instances + Envoy + Prometheus for one :class:`InferenceServiceSpec` (use as a context manager)."""

    def __init__(
        self,
        spec: InferenceServiceSpec,
        models: Mapping[str, Path],
        *,
        namespace: str = "default",
        name: str | None = None,
        work_dir: str | os.PathLike[str] | None = None,
        use_cgroup: bool | None = None,
        with_prometheus: bool = True,
        listen_port: int | None = None,
        drain_s: float = 1.0,
        health_interval_s: float = 0.1,
        probe_interval_s: float = 2.0,
        startup_boost_cores: float = 1.0,
        on_event: Callable[[RuntimeEvent], None] | None = None,
    ) -> None:
        missing = [v for v in spec.variant_names if v not in models]
        if missing:
            raise ApplyFailed(f"no model file for variants {missing}")
        self.spec = spec
        self.models = {k: Path(v) for k, v in models.items()}
        self.namespace = namespace
        self.name = name or spec.model_name
        self._own_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="infadapter-run-"))
        self.use_cgroup = cgroup_v1_writable() if use_cgroup is None else use_cgroup
        if not self.use_cgroup:
            log.warning("cgroup v1 cpu controller not writable: CPU limits fall back to taskset (whole cores, resized by recreating)")
        # groups sit directly under infadapter/ (whose weight lets a quota be reached on a busy machine)
        self.cgroup_prefix = f"run{os.getpid()}x{id(self) % 100000}"
        self.drain_s = drain_s
        self.health_interval_s = health_interval_s
        self.probe_interval_s = probe_interval_s
        self.startup_boost_cores = startup_boost_cores
        self.on_event = on_event
        self.envoy = EnvoyProcess(spec.variant_names, listen_port=listen_port, workdir=self.work_dir / "envoy", slo_ms=spec.slo.latency_ms)
        self.prometheus: PrometheusProcess | None = (
            PrometheusProcess(jobs=DEFAULT_JOBS, workdir=self.work_dir / "prometheus") if with_prometheus else None
        )
        self.instances: list[Instance] = []
        self.plan: Plan | None = None
        self.events: list[RuntimeEvent] = []
        self._generation = 0
        self._lock = threading.RLock()  # state + router updates (short)
        self._apply_lock = threading.Lock()  # one apply at a time
        self._launcher = ThreadPoolExecutor(1, thread_name_prefix="infadapter-launcher")
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._restarting: set[str] = set()
        self._retirements: list[threading.Thread] = []
        self._created: list[TritonProcess] = []
        self._started = False
        self._stopped = False
        self._atexit = atexit.register(self.stop)

    # ------------------------------------------------------------------ addresses
    @property
    def url(self) -> str:
        """``host:port`` of the router (what clients send to)."""
        return self.envoy.url

    @property
    def prometheus_url(self) -> str:
        if self.prometheus is None:
            raise InfAdapterError("this runtime runs no Prometheus")
        return self.prometheus.url

    @property
    def labels(self) -> dict[str, str]:
        return {"namespace": self.namespace, "name": self.name}

    def cgroups(self) -> list[Path]:
        """The cgroup directories of this runtime that exist now."""
        return sorted(CGROUP_V1_CPU.glob(f"infadapter/{self.cgroup_prefix}-*"))

    def _event(self, kind: str, detail: str) -> None:
        event = RuntimeEvent(time.time(), kind, detail)
        self.events.append(event)
        log.info("runtime: %s %s", kind, detail)
        if self.on_event is not None:
            with contextlib.suppress(Exception):  # a display callback must not break the runtime
                self.on_event(event)

    def _launch(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` (which starts a child) on the long-lived launcher thread."""
        return self._launcher.submit(fn).result()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LocalRuntime:
        if self._started:
            return self
        self._started = True
        if self.use_cgroup:
            remove_stale_cgroups()
        self._launch(self.envoy.start)
        if self.prometheus is not None:
            self.prometheus.set_targets("envoy", "router", [self.envoy.metrics_target], self.labels)
            self._launch(self.prometheus.start)
        self._supervisor = threading.Thread(target=self._supervise, name="infadapter-supervisor", daemon=True)
        self._supervisor.start()
        return self

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop every child (servers first, then the router and Prometheus) and remove every cgroup.

        SIGINT/SIGTERM are held back meanwhile (a second Ctrl-C must not interrupt the cleanup).
        """
        if self._stopped:
            return
        self._stopped = True
        in_main = threading.current_thread() is threading.main_thread()
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM}) if in_main else None
        try:
            self._stop_all()
        finally:
            if held is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
        atexit.unregister(self.stop)

    def _stop_all(self) -> None:
        self._stop.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=10)
        self.wait_retired()
        with self._lock:
            instances, self.instances = list(self.instances), []
        threads = [threading.Thread(target=self._stop_instance, args=(i,), daemon=True) for i in instances]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        self.envoy.close()
        if self.prometheus is not None:
            self.prometheus.stop()
        self._launcher.shutdown(wait=True, cancel_futures=True)
        for triton in self._created:  # a server whose start was under way when the stop came
            if triton.is_alive():
                triton.stop(timeout_s=5.0)
        for leftover in self.cgroups():  # e.g. of an instance whose restart was interrupted
            CpuCgroup(leftover.name).remove()
        if self._own_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    # ------------------------------------------------------------------ instances
    def _new_instance(self, variant: str, slot: int, cpu_cores: float) -> Instance:
        self._generation += 1
        gen = self._generation
        repo = self.work_dir / "repos" / f"{variant}-{slot}-g{gen}"
        serving = Serving(instance_count=self._instance_count(variant), intra_op_threads=1)
        write_repository(repo, self.spec.model_name, self.models[variant], serving)
        cgroup = None
        if self.use_cgroup:
            # start-up boost: loading is CPU-bound and the server serves nothing yet; the plan's quota once ready
            boost = max(cpu_cores, min(self.startup_boost_cores, float(os.cpu_count() or 1)))
            cgroup = CpuCgroup(f"{self.cgroup_prefix}-{variant}-{slot}-g{gen}").create(boost)
        triton = self._triton(repo, cgroup, cpu_cores, f"triton-{variant}-{slot}-g{gen}")
        return Instance(variant, slot, gen, cpu_cores, triton, cgroup, repo)

    def _triton(self, repo: Path, cgroup: CpuCgroup | None, cpu_cores: float, name: str) -> TritonProcess:
        triton = TritonProcess(
            repo, cgroup=cgroup.path if cgroup else None, cpu_prefix=() if cgroup else taskset_prefix(cpu_cores),
            allow_grpc=False, log_path=self.work_dir / f"{name}.log", name=name,
        )  # fmt: skip
        self._created.append(triton)
        return triton

    def _start_instances(self, fresh: list[Instance], timeout_s: float = 120.0) -> list[Instance]:
        """Start servers (not routed) and wait until each is ready; return those that failed."""
        with self._lock:
            self.instances.extend(fresh)
        for inst in fresh:
            self._launch(functools.partial(inst.triton.start, wait=False))
        failed = []
        deadline = time.monotonic() + timeout_s
        for inst in fresh:
            try:
                inst.triton.wait_ready(max(1.0, deadline - time.monotonic()))
                if inst.cgroup is not None:
                    inst.cgroup.set_cores(inst.cpu_cores)
                inst.state = "ready"
            except ApplyFailed as exc:
                log.error("instance %s did not start: %s", inst.key, exc)
                inst.state = "failed"
                failed.append(inst)
        return failed

    def _stop_instance(self, inst: Instance) -> None:
        inst.state = "stopped"
        inst.routed = False
        inst.triton.stop()
        if inst.cgroup is not None:
            inst.cgroup.remove()

    def _resize(self, inst: Instance, cpu_cores: float) -> None:
        """In place: only the cgroup quota changes; the server and its model instances keep running."""
        assert inst.cgroup is not None
        inst.cgroup.set_cores(cpu_cores)
        inst.cpu_cores = cpu_cores

    def _instance_count(self, variant: str) -> int:
        """Model instances per server, fixed for its life: enough threads for the largest size it may get.

        A quota change then needs no model reload (a reload under a small quota takes seconds and
        stalls requests), so an in-place resize never restarts or reloads anything.
        """
        largest = max(cpu_grid(self.spec, variant), default=1.0)
        return instances_for_cpu(min(largest, float(os.cpu_count() or 1))).instance_count

    # ------------------------------------------------------------------ routing
    def _route(self) -> None:
        """Push the routed instances and the plan's weights (renormalised over variants that can serve)."""
        with self._lock:
            endpoints: dict[str, list[Endpoint]] = {v: [] for v in self.spec.variant_names}
            for inst in self.instances:
                if inst.routed and inst.state == "ready":
                    endpoints[inst.variant].append(inst.endpoint)
            planned = self.plan.weights() if self.plan is not None else {}
            weights = {v: w for v, w in planned.items() if endpoints.get(v)}
            if sum(weights.values()) <= 0:  # nothing planned can serve: spread over whatever can
                weights = {v: 1.0 for v, eps in endpoints.items() if eps}
            # new endpoints before weights that use them; weights away before endpoints leave
            self.envoy.set_endpoints({v: endpoints[v] + self._leaving(v) for v in endpoints})
            self.envoy.set_weights(weights)
            self.envoy.set_endpoints(endpoints)
            self._update_targets()

    def _leaving(self, variant: str) -> list[Endpoint]:
        current = self.envoy.endpoints.get(variant, [])
        alive = {i.endpoint for i in self.instances if i.state in ("ready", "draining")}
        return [e for e in current if e in alive]

    def _update_targets(self) -> None:
        if self.prometheus is None:
            return
        for variant in self.spec.variant_names:
            targets = [f"127.0.0.1:{i.triton.metrics_port}" for i in self.instances if i.variant == variant and i.state in ("ready", "draining")]
            if targets:
                self.prometheus.set_targets("triton", variant, targets, {**self.labels, "variant": variant})
            else:
                self.prometheus.remove_targets("triton", variant)

    def set_exporter_target(self, address: str) -> None:
        """Have Prometheus scrape our exporter (``host:port``) with the service's labels."""
        if self.prometheus is not None:
            self.prometheus.set_targets("infadapter", "exporter", [address], self.labels)

    # ------------------------------------------------------------------ apply
    def apply(self, plan: Plan, *, in_place: bool | None = None) -> ApplyResult:
        """Make ``plan`` real: resize in place, start new instances (routed when ready), re-weight, drain, remove."""
        if self._stopped:
            raise ApplyFailed("the runtime is stopped")
        in_place = (self.spec.adaptation.resize_policy == ResizePolicy.IN_PLACE_OR_RECREATE) if in_place is None else in_place
        in_place = in_place and self.use_cgroup
        started_at = time.monotonic()
        with self._apply_lock:
            desired = {v.name: v for v in plan.variants if v.replicas > 0 and v.cpu_cores > 0}
            unknown = set(desired) - set(self.spec.variant_names)
            if unknown:
                raise ApplyFailed(f"plan names variants not in the spec: {sorted(unknown)}")
            resized: list[str] = []
            fresh: list[Instance] = []
            retiring: list[Instance] = []
            with self._lock:
                live = [i for i in self.instances if i.state in ("ready", "starting", "failed")]
            for inst in live:
                want = desired.get(inst.variant)
                if want is None or inst.slot >= want.replicas:
                    retiring.append(inst)
                elif inst.state == "failed":  # being restarted: give it the new size, the restart routes it
                    if inst.cgroup is not None:
                        inst.cgroup.set_cores(want.cpu_cores)
                    inst.cpu_cores = want.cpu_cores
                elif abs(inst.cpu_cores - want.cpu_cores) > 1e-9:
                    if in_place and inst.state == "ready":
                        self._resize(inst, want.cpu_cores)
                        resized.append(inst.key)
                    else:
                        retiring.append(inst)
                        fresh.append(self._new_instance(inst.variant, inst.slot, want.cpu_cores))
            kept = {(i.variant, i.slot) for i in live if i not in retiring}
            for name, want in desired.items():
                for slot in range(want.replicas):
                    if (name, slot) not in kept and not any(f.variant == name and f.slot == slot for f in fresh):
                        fresh.append(self._new_instance(name, slot, want.cpu_cores))
            failed = self._start_instances(fresh) if fresh else []
            with self._lock:
                self.plan = plan
                for inst in fresh:
                    inst.routed = inst.state == "ready"
                for inst in retiring:
                    inst.routed = False
                    inst.state = "draining"
                self._route()
            with self._lock:
                self.instances = [i for i in self.instances if i not in failed]
            for inst in failed:
                self._stop_instance(inst)
            if retiring:
                retire = threading.Thread(target=self._retire, args=(retiring,), name="infadapter-retire", daemon=True)
                self._retirements.append(retire)
                retire.start()
        result = ApplyResult(
            time.monotonic() - started_at, tuple(i.key for i in fresh if i not in failed), tuple(resized),
            tuple(i.key for i in retiring), tuple(i.key for i in failed),
        )  # fmt: skip
        if result.changed:
            self._event("apply", f"{plan.describe()} in {result.duration_s:.2f}s (+{len(result.started)} ~{len(resized)} -{len(result.removed)})")
        if failed:
            raise ApplyFailed(f"instances did not start: {', '.join(result.failed)}")
        return result

    def _retire(self, retiring: list[Instance]) -> None:
        """Drain (no longer routed: in-flight requests finish), then stop in parallel and forget them."""
        self._stop.wait(self.drain_s)
        threads = [threading.Thread(target=self._stop_instance, args=(i,), daemon=True) for i in retiring]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        with self._lock:
            self.instances = [i for i in self.instances if i not in retiring]
            self._update_targets()

    def wait_retired(self, timeout_s: float = 30.0) -> None:
        """Block until instances being drained are stopped (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        for thread in list(self._retirements):
            thread.join(max(0.0, deadline - time.monotonic()))
        self._retirements = [t for t in self._retirements if t.is_alive()]

    # ------------------------------------------------------------------ observation helpers
    def allocated_cores(self) -> float:
        """Cores held now, counting instances that are starting or draining (the cost definition)."""
        with self._lock:
            return sum(i.cpu_cores for i in self.instances if i.state in ("starting", "ready", "draining", "failed"))

    def ready_instances(self) -> list[Instance]:
        with self._lock:
            return [i for i in self.instances if i.state == "ready"]

    def child_pids(self) -> list[int]:
        """Pids of every child process now running (servers, router, Prometheus)."""
        pids = [i.triton.pid for i in self.instances if i.triton.is_alive()]
        if self.envoy.is_alive():
            pids.append(self.envoy.pid)
        if self.prometheus is not None and self.prometheus.running and self.prometheus.process is not None:
            pids.append(self.prometheus.process.pid)
        return [p for p in pids if p is not None]

    # ------------------------------------------------------------------ supervision
    def _supervise(self) -> None:
        last_probe = time.monotonic()
        misses: dict[str, int] = {}
        while not self._stop.wait(self.health_interval_s):
            try:
                self._check_children()
                if time.monotonic() - last_probe >= self.probe_interval_s:
                    last_probe = time.monotonic()
                    self._probe(misses)
            except InfAdapterError as exc:  # keep supervising; the next round retries
                log.warning("supervisor: %s", exc)

    def _check_children(self) -> None:
        if self._stop.is_set():
            return
        if not self.envoy.is_alive():
            self._event("crash", f"envoy exited ({self.envoy.stop()})")
            self._launch(self.envoy.restart)
            with self._lock:
                self.envoy.set_endpoints(self.envoy.endpoints)
            self._event("envoy_restarted", f"weights {self.envoy.runtime_weights()}")
        if self.prometheus is not None and not self.prometheus.running:
            self._event("crash", "prometheus exited")
            self.prometheus.stop(keep_data=True)
            self._launch(self.prometheus.start)
            self._event("prometheus_restarted", self.prometheus.url)
        with self._lock:
            dead = [i for i in self.instances if i.state == "ready" and not i.triton.is_alive() and i.key not in self._restarting]
        for inst in dead:
            self._crashed(inst, f"exited with code {inst.triton.returncode()}")

    def _probe(self, misses: dict[str, int]) -> None:
        """A hung server (alive, not ready for 3 probes) is treated as crashed."""
        for inst in self.ready_instances():
            if inst.key in self._restarting:
                continue
            if inst.triton.is_ready():
                misses.pop(inst.key, None)
                continue
            misses[inst.key] = misses.get(inst.key, 0) + 1
            if misses[inst.key] >= 3:
                misses.pop(inst.key, None)
                self._crashed(inst, "not ready for 3 probes")

    def _crashed(self, inst: Instance, why: str) -> None:
        self._event("crash", f"{inst.key} {why}")
        with self._lock:
            self._restarting.add(inst.key)
            inst.routed = False
            inst.state = "failed"
            try:
                self._route()  # traffic moves to the healthy instances at once
            except ApplyFailed as exc:  # the router is down too: its restart restores the endpoints
                log.warning("could not route around %s: %s", inst.key, exc)
        threading.Thread(target=self._restart_instance, args=(inst,), name=f"restart-{inst.key}", daemon=True).start()

    def _restart_instance(self, inst: Instance) -> None:
        try:
            inst.triton.stop(timeout_s=2.0)  # its model stubs share its process group
            inst.triton = self._triton(inst.repo, inst.cgroup, inst.cpu_cores, inst.triton.name)
            self._launch(functools.partial(inst.triton.start, wait=False))
            inst.triton.wait_ready(120.0)
            if inst.cgroup is not None:
                inst.cgroup.set_cores(inst.cpu_cores)
        except (ApplyFailed, RuntimeError, OSError, subprocess.SubprocessError) as exc:
            log.error("restart of %s failed: %s", inst.key, exc)
            with self._lock:
                self._restarting.discard(inst.key)
            return
        with self._lock:
            self._restarting.discard(inst.key)
            if inst.state != "failed" or self._stop.is_set():
                inst.triton.stop()
                return
            inst.restarts += 1
            inst.state = "ready"
            inst.routed = True
            try:
                self._route()
            except ApplyFailed as exc:  # the next routing change (or the router's restart) includes it
                log.warning("could not route the restarted %s: %s", inst.key, exc)
        self._event("restarted", f"{inst.key} on port {inst.triton.http_port}")
