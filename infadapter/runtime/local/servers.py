"""The servers of the local runtime: one tritonserver per variant replica, what executing actions did, events,
and the clean-up after a run that was killed outright."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from infadapter.runtime.envoy_config import Endpoint
from infadapter.serving.cpulimit import CGROUP_V1_CPU, CpuCgroup
from infadapter.serving.triton import TritonProcess

log = logging.getLogger(__name__)

InstanceState = Literal["starting", "ready", "failed", "draining", "stopped"]


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
        return LocalChanges(self.duration_s + other.duration_s, self.started + other.started, self.resized + other.resized,
                            self.removed + other.removed)  # fmt: skip


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
