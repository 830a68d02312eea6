"""The servers of the local runtime: one tritonserver per variant replica (made by :class:`ServerFactory`),
what executing actions did, events, and the clean-up after a run that was killed outright."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from infadapter.control import ActuatorState, VariantState, VariantTarget
from infadapter.planning import cpu_grid
from infadapter.runtime.envoy_config import Endpoint
from infadapter.serving.cpulimit import CGROUP_V1_CPU, CpuCgroup, taskset_prefix
from infadapter.serving.repository import Serving, serving_for, write_repository
from infadapter.serving.triton import TritonProcess
from infadapter.spec import InferenceServiceSpec

log = logging.getLogger(__name__)

InstanceState = Literal["starting", "ready", "failed", "draining", "stopped"]


#: the cores a starting server's cgroup allows while it loads its model (its plan's quota once ready, if more):
#: loading is CPU-bound and serves nothing yet (the fidelity benchmark gives the simulator the same figure)
STARTUP_BOOST_CORES = 1.0


@dataclass
class TritonInstance:
    """One tritonserver serving one variant replica (``replaced``: it serves until its replacement is ready)."""

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
    replaced: bool = False
    created_s: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> str:
        return f"{self.variant}#{self.slot}.{self.generation}"

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint("127.0.0.1", self.triton.http_port)

    def resize(self, cpu_cores: float) -> None:
        """In place: only the cgroup quota changes; the server and its model instances keep running.

        A server still starting keeps its start-up boost: it gets the new quota once ready."""
        assert self.cgroup is not None
        if self.state != "starting":
            self.cgroup.set_cores(cpu_cores)
        self.cpu_cores = cpu_cores


def converge(target: VariantTarget, live: list[TritonInstance], resized: list[str]) -> list[TritonInstance]:
    """The servers of ``target``'s variant that stay (ready first), resized in place where allowed (their keys
    appended to ``resized``); the others at another size are marked replaced: they serve until their
    replacements are ready."""
    kept = []
    for inst in sorted(live, key=lambda i: (i.state != "ready", i.slot)):
        if abs(inst.cpu_cores - target.cpu_cores) <= 1e-9:
            kept.append(inst)
        elif target.in_place and inst.cgroup is not None:
            inst.resize(target.cpu_cores)
            resized.append(inst.key)
            kept.append(inst)
        else:
            inst.replaced = True
    return kept


def actuator_state(instances: list[TritonInstance], targets: Mapping[str, VariantTarget], weights: Mapping[str, float], *, in_place: bool) -> ActuatorState:
    """What runs: per variant the wanted size and replicas and the cores of each ready server; ``weights``: the
    split Envoy applies."""
    variants = []
    names = set(targets) | {i.variant for i in instances if i.state in ("starting", "ready", "failed")}
    for name in sorted(names):
        target = targets.get(name)
        mine = [i for i in instances if i.variant == name]
        ready = tuple(i.cpu_cores for i in mine if i.state == "ready" and i.routed)
        if target is None and not ready:
            continue
        wanted = sum(1 for i in mine if i.state in ("starting", "ready", "failed") and not i.replaced)
        cores = target.cpu_cores if target is not None else ready[0]
        variants.append(VariantState(name, cores, wanted if target is not None else 0, ready, target.gpus if target is not None else 0))
    return ActuatorState(tuple(variants), dict(weights), in_place=in_place)


def run_cgroup_prefix(tag: object) -> str:
    """The name prefix of a cgroup this process makes (``run<pid>x<tag>``): :func:`remove_stale_cgroups` reads the
    pid back from it, so a group of a run killed outright is found and removed by the next runtime's start."""
    return f"run{os.getpid()}x{tag}"


class ServerFactory:
    """Makes the servers of one runtime: a repository, a cgroup (with a start-up boost) and a tritonserver each.

    It remembers every process it made, so a stop can reach a server whose start was under way.
    """

    def __init__(self, spec: InferenceServiceSpec, models: Mapping[str, Path], work_dir: Path, *, use_cgroup: bool, startup_boost_cores: float) -> None:
        self.spec = spec
        self.models = models
        self.work_dir = work_dir
        self.use_cgroup = use_cgroup
        self.startup_boost_cores = startup_boost_cores
        # groups sit directly under infadapter/ (whose weight lets a quota be reached on a busy machine); the
        # pid in the name lets a later run find the groups of a killed one (remove_stale_cgroups)
        self.cgroup_prefix = run_cgroup_prefix(id(self) % 100000)
        self.created: list[TritonProcess] = []
        self._generation = 0
        self._services: CpuCgroup | None = None

    def new_instance(self, variant: str, slot: int, cpu_cores: float) -> TritonInstance:
        self._generation += 1
        gen = self._generation
        repo = self.work_dir / "repos" / f"{variant}-{slot}-g{gen}"
        write_repository(repo, self.spec.model_name, self.models[variant], self.serving(variant))
        cgroup = None
        if self.use_cgroup:
            # start-up boost: loading is CPU-bound and the server serves nothing yet; the plan's quota once ready
            boost = max(cpu_cores, min(self.startup_boost_cores, float(os.cpu_count() or 1)))
            cgroup = CpuCgroup(f"{self.cgroup_prefix}-{variant}-{slot}-g{gen}").create(boost)
        triton = self.process(repo, cgroup, cpu_cores, f"triton-{variant}-{slot}-g{gen}", variant)
        return TritonInstance(variant, slot, gen, cpu_cores, triton, cgroup, repo)

    def process(self, repo: Path, cgroup: CpuCgroup | None, cpu_cores: float, name: str, variant: str) -> TritonProcess:
        """A (not yet started) tritonserver over ``repo``: in ``cgroup``, else pinned to whole cores with taskset."""
        triton = TritonProcess(
            repo,
            cgroup=cgroup.path if cgroup else None,
            cpu_prefix=() if cgroup else taskset_prefix(cpu_cores),
            allow_grpc=False,
            log_path=self.work_dir / f"{name}.log",
            name=name,
            env=self.serving(variant).env(),
        )
        self.created.append(triton)
        return triton

    def adopt_services(self, pids: Iterable[int | None]) -> None:
        """Move the router and Prometheus (``pids``) into the runtime's services group, made on first use (cgroups
        only). They are light and latency-critical: where the servers' quotas overcommit the machine (a start-up
        boost in a burst), a starved scrape skews the load the controller reads (:data:`SERVICE_SHARES`)."""
        if not self.use_cgroup:
            return
        if self._services is None:
            self._services = CpuCgroup(f"{self.cgroup_prefix}-services").create(None)  # weight SERVICE_SHARES
        inside = set(self._services.pids())
        for pid in pids:
            if pid is not None and pid not in inside:
                with contextlib.suppress(OSError):  # exited meanwhile: the supervisor restarts it
                    self._services.add(pid)

    def serving(self, variant: str) -> Serving:
        """Model instances and threads per server, fixed for its life: those of the largest size it may get.

        A quota change then needs no model reload (a reload under a small quota takes seconds and
        stalls requests), so an in-place resize never restarts or reloads anything; the profiler
        measures every size with the same rule (:func:`serving_for`).
        """
        return serving_for(max(cpu_grid(self.spec, variant), default=1.0), float(os.cpu_count() or 1))

    def cgroups(self) -> list[Path]:
        """The cgroup directories of this runtime that exist now (its servers' and its services')."""
        return sorted(CGROUP_V1_CPU.glob(f"infadapter/{self.cgroup_prefix}-*"))

    def stop_leftovers(self) -> None:
        """Stop a server whose start was under way when the runtime stopped; remove every group left (e.g. of
        an instance whose restart was interrupted)."""
        for triton in self.created:
            if triton.is_alive():
                triton.stop(timeout_s=5.0)
        for leftover in self.cgroups():
            CpuCgroup(leftover.name).remove()
        self._services = None


@dataclass(frozen=True)
class LocalChanges:
    """What executing actions did: servers started, resized in place, taken off the router (keys ``variant#slot.gen``)."""

    duration_s: float
    started: tuple[str, ...] = ()
    resized: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.started or self.resized or self.removed)

    def __add__(self, other: LocalChanges) -> LocalChanges:
        return LocalChanges(self.duration_s + other.duration_s, self.started + other.started, self.resized + other.resized, self.removed + other.removed)


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
