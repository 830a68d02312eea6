"""The local actuator of the embedded mode: the controller's actions made real with processes on this machine.

* one ``tritonserver`` per (variant, replica), in its own cgroup v1 ``cpu`` group whose quota is the
  replica's cores; a size change is applied **in place** by rewriting the quota (the server, its model
  instances and its connections stay), with ``taskset`` as a warned fallback where cgroups are not
  writable (sizes then change by replacing the server);
* an Envoy router (:mod:`infadapter.runtime.local.envoy`) whose cluster weights are the action's split, over
  the variants that have a ready server;
* a Prometheus scraping Envoy, every Triton and (when told) our exporter, targets added live.

As an actuator (:mod:`infadapter.control`) it reports :meth:`LocalRuntime.state` and executes
:meth:`LocalRuntime.execute` without blocking: new servers start in the background and are routed once
ready; a replaced server (another size, not in place) serves until enough replacements are ready; a
server that leaves is taken off the router, drained, then stopped. *When* a variant may leave is the
controller's make-before-break rule, not this module's. :meth:`LocalRuntime.apply` converges to a plan
by that same rule (tests, benchmarks). A supervisor thread restarts whatever crashed (a Triton
instance, Envoy, Prometheus) and routes around a dead instance meanwhile. :meth:`LocalRuntime.stop`
(also run at exit) stops every child and removes every cgroup it created.

Every child is started from one long-lived launcher thread: the servers die with that thread
(``PR_SET_PDEATHSIG``), so even a killed ``infadapter run`` leaves no server behind.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from infadapter.control import MODE_LATENCIES, Action, ActuatorState, VariantTarget
from infadapter.errors import ApplyFailed, InfAdapterError
from infadapter.planning import Plan
from infadapter.profiles import Profile
from infadapter.runtime.envoy_config import Endpoint
from infadapter.runtime.local.envoy import EnvoyProcess
from infadapter.runtime.local.prometheus import DEFAULT_JOBS, PrometheusProcess
from infadapter.runtime.local.reconfigure import apply_plan
from infadapter.runtime.local.servers import (
    STARTUP_BOOST_CORES,
    LocalChanges,
    RuntimeEvent,
    ServerFactory,
    TritonInstance,
    actuator_state,
    converge,
    remove_stale_cgroups,
)
from infadapter.runtime.local.supervisor import Supervisor
from infadapter.serving.cpulimit import cgroup_v1_writable
from infadapter.spec import InferenceServiceSpec

log = logging.getLogger(__name__)

#: what this actuator tells the controller (:data:`~infadapter.control.MODE_LATENCIES`, ``embedded``)
LATENCIES = MODE_LATENCIES["embedded"]


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
        startup_boost_cores: float = STARTUP_BOOST_CORES,
        on_event: Callable[[RuntimeEvent], None] | None = None,
        access_log: bool = False,
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
        self.drain_s = drain_s
        self.health_interval_s = health_interval_s
        self.probe_interval_s = probe_interval_s
        self.on_event = on_event
        self.servers = ServerFactory(spec, self.models, self.work_dir, use_cgroup=self.use_cgroup, startup_boost_cores=startup_boost_cores)
        self.envoy = EnvoyProcess(
            spec.variant_names, listen_port=listen_port, workdir=self.work_dir / "envoy", slo_ms=spec.slo.latency_ms, access_log=access_log
        )
        self.prometheus: PrometheusProcess | None = PrometheusProcess(jobs=DEFAULT_JOBS, workdir=self.work_dir / "prometheus") if with_prometheus else None
        self.instances: list[TritonInstance] = []
        self.events: list[RuntimeEvent] = []
        self._targets: dict[str, VariantTarget] = {}
        self._wanted: dict[str, float] = {}  # the split asked for
        self._weights: dict[str, float] = {}  # the split Envoy accepted (over variants that can serve)
        self.failed_starts: list[str] = []  # the servers that did not start, oldest first
        self._lock = threading.RLock()  # state + router updates (short)
        self._execute_lock = threading.Lock()  # one action at a time
        self._launcher = ThreadPoolExecutor(1, thread_name_prefix="infadapter-launcher")
        self._stop = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._retirements: list[threading.Thread] = []
        self._starts: list[threading.Thread] = []
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

    def launch_service(self, start: Callable[[], Any]) -> None:
        """Start (or restart) the router or Prometheus with ``start``; both run in the services' group
        (:meth:`ServerFactory.adopt_services`)."""
        self._launch(start)
        prometheus = self.prometheus.process if self.prometheus is not None else None
        self.servers.adopt_services([self.envoy.pid, prometheus.pid if prometheus is not None else None])

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LocalRuntime:
        if self._started:
            return self
        self._started = True
        if self.use_cgroup:
            remove_stale_cgroups()
        self.launch_service(self.envoy.start)
        if self.prometheus is not None:
            self.prometheus.set_targets("envoy", "router", [self.envoy.metrics_target], self.labels)
            self.launch_service(self.prometheus.start)
        self._supervisor = threading.Thread(target=Supervisor(self).run, name="infadapter-supervisor", daemon=True)
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
        for thread in list(self._starts):
            thread.join(timeout=10)
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
        self.servers.stop_leftovers()
        if self._own_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    # ------------------------------------------------------------------ instances
    def _start(self, inst: TritonInstance, timeout_s: float = 120.0) -> None:
        """Start ``inst`` and, in the background, route it once ready (or forget it if it fails)."""
        self._launch(functools.partial(inst.triton.start, wait=False))
        thread = threading.Thread(target=self._await_ready, args=(inst, timeout_s), name=f"start-{inst.key}", daemon=True)
        self._starts = [t for t in self._starts if t.is_alive()] + [thread]
        thread.start()

    def _await_ready(self, inst: TritonInstance, timeout_s: float) -> None:
        try:
            inst.triton.wait_ready(timeout_s)
            if inst.cgroup is not None:
                inst.cgroup.set_cores(inst.cpu_cores)
        except ApplyFailed as exc:
            if inst.state != "starting":  # retired or stopped while it started
                return
            log.error("instance %s did not start: %s", inst.key, exc)
            with self._lock:
                inst.state = "failed"
                self.instances = [i for i in self.instances if i is not inst]
                self.failed_starts.append(inst.key)
            self._stop_instance(inst)
            self._event("start_failed", f"{inst.key}: {exc}")
            return
        with self._lock:
            if inst.state != "starting":
                return
            inst.state, inst.routed = "ready", True
            self._route()
        # the measured cold start (launch to first ready answer): what the simulator's start-up is checked against
        self._event("ready", f"{inst.key} after {time.monotonic() - inst.created_s:.2f} s")
        self._retire_replaced(inst.variant)

    def _stop_instance(self, inst: TritonInstance) -> None:
        inst.state = "stopped"
        inst.routed = False
        inst.triton.stop()
        if inst.cgroup is not None:
            inst.cgroup.remove()

    # ------------------------------------------------------------------ routing
    def _route(self) -> None:
        """Push the routed instances and the wanted split (renormalised over variants that can serve)."""
        with self._lock:
            endpoints: dict[str, list[Endpoint]] = {v: [] for v in self.spec.variant_names}
            for inst in self.instances:
                if inst.routed and inst.state == "ready":
                    endpoints[inst.variant].append(inst.endpoint)
            weights = {v: w for v, w in self._wanted.items() if endpoints.get(v) and w > 0}
            if sum(weights.values()) <= 0:  # nothing wanted can serve: spread over whatever can
                weights = dict.fromkeys((v for v, eps in endpoints.items() if eps), 1.0)
            # new endpoints before weights that use them; weights away before endpoints leave
            self.envoy.set_endpoints({v: endpoints[v] + self._leaving(v) for v in endpoints})
            self.envoy.set_weights(weights)
            total = sum(weights.values())
            self._weights = {v: w / total for v, w in weights.items()} if total > 0 else {}
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

    # ------------------------------------------------------------------ the actuator
    def execute(self, action: Action) -> LocalChanges:
        """Make ``action`` real without blocking: resize in place, start servers (routed once ready), split, drain."""
        if self._stopped:
            raise ApplyFailed("the runtime is stopped")
        unknown = {t.name for t in action.variants} - set(self.spec.variant_names)
        if unknown:
            raise ApplyFailed(f"the action names variants not in the spec: {sorted(unknown)}")
        started_at = time.monotonic()
        with self._execute_lock:
            with self._lock:
                live = [i for i in self.instances if i.state in ("starting", "ready", "failed") and not i.replaced]
            resized: list[str] = []
            fresh: list[TritonInstance] = []
            retiring = [i for i in live if action.variant(i.variant) is None]
            for target in action.variants:
                kept = converge(target, [i for i in live if i.variant == target.name], resized)
                retiring += kept[target.replicas :]
                slots = (s for s in itertools.count() if s not in {i.slot for i in kept[: target.replicas]})
                fresh += [self.servers.new_instance(target.name, next(slots), target.cpu_cores) for _ in range(target.replicas - len(kept))]
            with self._lock:
                self._targets = {t.name: t for t in action.variants}
                self._wanted = dict(action.weights)
                for inst in retiring:
                    inst.routed, inst.state = False, "draining"
                self.instances.extend(fresh)
                self._route()
            for inst in fresh:
                self._start(inst)
            self._drain(retiring)
        changes = LocalChanges(time.monotonic() - started_at, tuple(i.key for i in fresh), tuple(resized), tuple(i.key for i in retiring))
        if changes.changed:
            self._event("apply", f"+{len(changes.started)} ~{len(resized)} -{len(changes.removed)} in {changes.duration_s:.2f}s")
        return changes

    def _retire_replaced(self, variant: str) -> None:
        """Once the variant has its replicas ready at the wanted size, its replaced servers go."""
        with self._lock:
            target = self._targets.get(variant)
            mine = [i for i in self.instances if i.variant == variant]
            ready = [i for i in mine if i.state == "ready" and not i.replaced]
            if target is None or len(ready) < target.replicas:
                return
            old = [i for i in mine if i.replaced and i.state in ("starting", "ready", "failed")]
            for inst in old:
                inst.routed, inst.state = False, "draining"
            if old:
                self._route()
        self._drain(old)

    def _drain(self, retiring: list[TritonInstance]) -> None:
        if retiring:
            retire = threading.Thread(target=self._retire, args=(retiring,), name="infadapter-retire", daemon=True)
            self._retirements.append(retire)
            retire.start()

    def apply(self, plan: Plan, *, in_place: bool | None = None, profile: Profile | None = None, timeout_s: float = 120.0) -> LocalChanges:
        """Converge to ``plan`` and block until it serves (tests, benchmarks): :func:`~infadapter.runtime.local.reconfigure.apply_plan`."""
        return apply_plan(self, plan, in_place=in_place, profile=profile, timeout_s=timeout_s)

    def _retire(self, retiring: list[TritonInstance]) -> None:
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

    def state(self) -> ActuatorState:
        """What runs: per variant the wanted size and replicas and the cores of each ready server; the split Envoy applies."""
        with self._lock:
            return actuator_state(self.instances, self._targets, self._weights, in_place=self.use_cgroup)

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

    def ready_instances(self) -> list[TritonInstance]:
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
