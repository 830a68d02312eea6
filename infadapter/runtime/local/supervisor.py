"""The local runtime's supervisor: whatever crashed is restarted, and routed around meanwhile.

Every 0.1 s it checks the children of a :class:`~infadapter.runtime.local.LocalRuntime`: Envoy restarts on
the same port with its weights and endpoints, Prometheus on the same address with its data, a Triton
server on new ports (routed around at once, routed again when ready). A server alive but not ready for 3
probes (2 s apart) is treated as crashed.
"""

from __future__ import annotations

import functools
import logging
import subprocess
import threading
import time
from typing import TYPE_CHECKING

from infadapter.errors import ApplyFailed, InfAdapterError

if TYPE_CHECKING:
    from infadapter.runtime.local.actuator import LocalRuntime
    from infadapter.runtime.local.servers import TritonInstance

log = logging.getLogger(__name__)


class Supervisor:
    """Restarts the crashed children of one runtime (see the module docstring); :meth:`run` is its thread."""

    def __init__(self, runtime: LocalRuntime) -> None:
        self.rt = runtime
        self._restarting: set[str] = set()

    def run(self) -> None:
        last_probe = time.monotonic()
        misses: dict[str, int] = {}
        while not self.rt._stop.wait(self.rt.health_interval_s):
            try:
                self._check_children()
                if time.monotonic() - last_probe >= self.rt.probe_interval_s:
                    last_probe = time.monotonic()
                    self._probe(misses)
            except InfAdapterError as exc:  # keep supervising; the next round retries
                log.warning("supervisor: %s", exc)

    def _check_children(self) -> None:
        if self.rt._stop.is_set():
            return
        if not self.rt.envoy.is_alive():
            self.rt._event("crash", f"envoy exited ({self.rt.envoy.stop()})")
            self.rt.launch_service(self.rt.envoy.restart)
            with self.rt._lock:
                self.rt.envoy.set_endpoints(self.rt.envoy.endpoints)
            self.rt._event("envoy_restarted", f"weights {self.rt.envoy.runtime_weights()}")
        if self.rt.prometheus is not None and not self.rt.prometheus.running:
            self.rt._event("crash", "prometheus exited")
            self.rt.prometheus.stop(keep_data=True)
            self.rt.launch_service(self.rt.prometheus.start)
            self.rt._event("prometheus_restarted", self.rt.prometheus.url)
        with self.rt._lock:
            dead = [i for i in self.rt.instances if i.state == "ready" and not i.triton.is_alive() and i.key not in self._restarting]
        for inst in dead:
            self._crashed(inst, f"exited with code {inst.triton.returncode()}")

    def _probe(self, misses: dict[str, int]) -> None:
        """A hung server (alive, not ready for 3 probes) is treated as crashed."""
        for inst in self.rt.ready_instances():
            if inst.key in self._restarting:
                continue
            if inst.triton.is_ready():
                misses.pop(inst.key, None)
                continue
            misses[inst.key] = misses.get(inst.key, 0) + 1
            if misses[inst.key] >= 3:
                misses.pop(inst.key, None)
                self._crashed(inst, "not ready for 3 probes")

    def _crashed(self, inst: TritonInstance, why: str) -> None:
        self.rt._event("crash", f"{inst.key} {why}")
        with self.rt._lock:
            self._restarting.add(inst.key)
            inst.routed = False
            inst.state = "failed"
            try:
                self.rt._route()  # traffic moves to the healthy instances at once
            except ApplyFailed as exc:  # the router is down too: its restart restores the endpoints
                log.warning("could not route around %s: %s", inst.key, exc)
        threading.Thread(target=self._restart_instance, args=(inst,), name=f"restart-{inst.key}", daemon=True).start()

    def _restart_instance(self, inst: TritonInstance) -> None:
        try:
            inst.triton.stop(timeout_s=2.0)  # its model stubs share its process group
            inst.triton = self.rt.servers.process(inst.repo, inst.cgroup, inst.cpu_cores, inst.triton.name, inst.variant)
            self.rt._launch(functools.partial(inst.triton.start, wait=False))
            inst.triton.wait_ready(120.0)
            if inst.cgroup is not None:
                inst.cgroup.set_cores(inst.cpu_cores)
        except (ApplyFailed, RuntimeError, OSError, subprocess.SubprocessError) as exc:
            log.error("restart of %s failed: %s", inst.key, exc)
            with self.rt._lock:
                self._restarting.discard(inst.key)
            return
        with self.rt._lock:
            self._restarting.discard(inst.key)
            if inst.state != "failed" or self.rt._stop.is_set():
                inst.triton.stop()
                return
            inst.restarts += 1
            inst.state = "ready"
            inst.routed = True
            try:
                self.rt._route()
            except ApplyFailed as exc:  # the next routing change (or the router's restart) includes it
                log.warning("could not route the restarted %s: %s", inst.key, exc)
        self.rt._event("restarted", f"{inst.key} on port {inst.triton.http_port}")
