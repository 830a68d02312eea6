"""Limit a process tree's CPU: a cgroup v1 ``cpu`` quota (resizable live), or ``taskset`` as a fallback.

A cgroup's quota can be changed while the server runs (in-place vertical scaling); ``taskset``
pins to whole cores only and is a coarse fallback used with a warning when cgroups are not
writable. Processes started *after* their parent joined a cgroup inherit it, so a server put into
the cgroup before it forks its model stubs has all of them limited.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from infadapter.errors import ApplyFailed

log = logging.getLogger(__name__)

CGROUP_V1_CPU = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000
#: weight of the parent group against the root's tasks. A cgroup with the default 1024 competes
#: as ONE task: on a busy machine a 1.5-core quota then gets a fraction of a core. This weight
#: (16 tasks' worth) lets each server reach its quota; the quota still caps it.
PARENT_SHARES = 16 * 1024
#: weight of a group without quota for light, latency-critical processes beside the servers (the router, Prometheus,
#: the load generator): far above any server's (1024 per core of quota), so they run first when they need to. From
#: the root group, on two cores with the servers' quotas overcommitted (a start-up boost during a burst), Envoy's
#: ``/stats/prometheus`` took 10-14 ms median and 45-164 ms at worst, against 2.1 and 12.4 ms in such a group, and
#: every late scrape skews the rate the controller reads (54 then 193 rps for two seconds of ~100)
SERVICE_SHARES = PARENT_SHARES // 4


def cgroup_v1_writable(root: Path = CGROUP_V1_CPU) -> bool:
    """True when cgroup v1's cpu controller is mounted at ``root`` and we may create groups there."""
    return (root / "cpu.cfs_quota_us").is_file() and os.access(root, os.W_OK)


class CpuCgroup:
    """One cgroup v1 ``cpu`` group ``<root>/<parent>/<name>`` with a CFS quota in cores."""

    def __init__(self, name: str, parent: str = "infadapter", root: Path = CGROUP_V1_CPU) -> None:
        self.path = root / parent / name
        self._root = root
        self._period_us = PERIOD_US

    def create(self, cpu_cores: float | None, shares: int = SERVICE_SHARES) -> CpuCgroup:
        """Create the group (idempotent) with a quota of ``cpu_cores`` (its weight follows), or None: no quota,
        only the weight ``shares``."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            # every ancestor below the root competes with the root's tasks or with its siblings
            for ancestor in self.path.parents:
                if ancestor == self._root or self._root not in ancestor.parents:
                    break
                weight = ancestor / "cpu.shares"
                if int(weight.read_text()) < PARENT_SHARES:
                    weight.write_text(str(PARENT_SHARES))
            (self.path / "cpu.cfs_period_us").write_text(str(self._period_us))
        except OSError as exc:
            raise ApplyFailed(f"cannot create cgroup {self.path}: {exc}") from exc
        if cpu_cores is None:
            (self.path / "cpu.shares").write_text(str(shares))
        else:
            self.set_cores(cpu_cores)
        return self

    def set_cores(self, cpu_cores: float) -> None:
        """Change the quota (takes effect at once, also for running processes); weight follows the quota."""
        quota = max(1000, round(cpu_cores * self._period_us))
        try:
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))
            (self.path / "cpu.shares").write_text(str(max(2, round(1024 * cpu_cores))))
        except OSError as exc:
            raise ApplyFailed(f"cannot set the CPU quota of {self.path}: {exc}") from exc

    @property
    def cores(self) -> float:
        quota = int((self.path / "cpu.cfs_quota_us").read_text())
        return float("inf") if quota < 0 else quota / self._period_us

    @property
    def procs_file(self) -> Path:
        return self.path / "cgroup.procs"

    def add(self, pid: int) -> None:
        self.procs_file.write_text(str(pid))

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in self.procs_file.read_text().split()]
        except FileNotFoundError:
            return []

    def remove(self) -> None:
        """Delete the group; processes still in it are moved to the root group first."""
        if not self.path.exists():
            return
        root_procs = self.path.parent.parent / "cgroup.procs"
        for pid in self.pids():
            with contextlib.suppress(OSError):  # already gone
                root_procs.write_text(str(pid))
        # exiting processes keep the group busy for a moment after they left cgroup.procs
        for attempt in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if attempt == 49:
                    log.warning("could not remove cgroup %s: %s", self.path, exc)
                time.sleep(0.05)


def taskset_cpus(cpu_cores: float, first_cpu: int = 0) -> str:
    """The ``taskset -c`` list for ``cpu_cores`` (rounded up to whole cores, at most the machine's)."""
    total = os.cpu_count() or 1
    count = min(total, max(1, math.ceil(cpu_cores - 1e-9)))
    cpus = [(first_cpu + i) % total for i in range(count)]
    return ",".join(str(c) for c in cpus)


def taskset_prefix(cpu_cores: float, first_cpu: int = 0) -> list[str]:
    """Command prefix that pins a process to whole cores; warns that this is coarser than a quota."""
    exe = shutil.which("taskset")
    if exe is None:
        log.warning("neither a writable cgroup nor taskset: CPU of %.2f cores is NOT enforced", cpu_cores)
        return []
    if abs(cpu_cores - round(cpu_cores)) > 1e-9:
        log.warning("cgroups not writable: taskset pins %.2f cores to %d whole core(s)", cpu_cores, math.ceil(cpu_cores))
    return [exe, "-c", taskset_cpus(cpu_cores, first_cpu)]


def _current_cpu_cgroup(root: Path = CGROUP_V1_CPU) -> Path:
    """The cpu-controller cgroup directory this process is in now (v1)."""
    with open("/proc/self/cgroup", encoding="utf-8") as fh:
        for line in fh:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if "cpu" in controllers.split(","):
                return root / path.lstrip("/")
    return root


@contextlib.contextmanager
def weighted_self(name: str) -> Iterator[CpuCgroup | None]:
    """Run this process (all threads) in a group of weight :data:`SERVICE_SHARES` without quota, then move it back.

    Used by the profiler and the embedded mode so their load generator (and the embedded controller) is not
    starved by the servers or other work on a busy machine (latency measured at a starved client is the
    client's, not the server's). A no-op (yields None) where cgroups are not writable.
    """
    if not cgroup_v1_writable():
        yield None
        return
    home = _current_cpu_cgroup()
    group = CpuCgroup(name).create(None)
    pid = os.getpid()
    try:
        group.add(pid)
    except OSError as exc:
        log.warning("could not move this process into %s: %s", group.path, exc)
        group.remove()
        yield None
        return
    try:
        yield group
    finally:
        with contextlib.suppress(OSError):
            (home / "cgroup.procs").write_text(str(pid))
        group.remove()
