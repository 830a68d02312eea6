"""What ``benchmarks/fidelity.py`` records of each server of an embedded run, for a later look (``--save-runs``).

* :class:`ServersCpu`: once a second, every server's cgroup: the CPU its processes took, the time the kernel
  held it throttled at its quota, and the quota itself. A server answering below its profile's ceiling shows
  here whether it lacked CPU (throttled, or busy below its quota while the machine was full) or was slow with it.
  The runtime's services group (``<prefix>-services``: Envoy and Prometheus, no quota) is sampled the same way.
* :func:`routed`: from Envoy's access log, each request's arrival at the router, the variant the weighted split
  chose, the server that answered (another variant's when a retry spilled over) and the time it spent in
  Envoy and in the server. The client's figures mix the variants; these say which server made a request late.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from fidelity_measure import Sampler, process_cpu_s

from infadapter.embedded import EmbeddedRun


def cgroup_sample(group: Path) -> tuple[float, float, float]:
    """(CPU seconds of the group's processes, seconds throttled so far, quota in cores; -1: none)."""
    try:
        pids = [int(p) for p in (group / "cgroup.procs").read_text(encoding="ascii").split()]
        stat = dict(line.split() for line in (group / "cpu.stat").read_text(encoding="ascii").splitlines() if line.strip())
        quota = int((group / "cpu.cfs_quota_us").read_text(encoding="ascii"))
        period = int((group / "cpu.cfs_period_us").read_text(encoding="ascii"))
    except (OSError, ValueError):
        return 0.0, 0.0, -1.0
    cores = quota / period if quota > 0 and period > 0 else -1.0
    return sum(process_cpu_s(p) for p in pids), int(stat.get("throttled_time", 0)) / 1e9, cores


class ServersCpu(Sampler[dict[str, tuple[float, float, float]]]):
    """Every cgroup of the runtime (the servers' and the services', see the module docstring): per group, its
    processes' CPU seconds so far, the seconds it was throttled so far and its quota in cores."""

    def sample(self, runtime: Any) -> dict[str, tuple[float, float, float]]:
        return {g.name: cgroup_sample(g) for g in runtime.servers.cgroups()}

    def per_second(self, duration_s: int) -> dict[str, list[list[float]]]:
        """Per group (a server's: ``<prefix>-<variant>-<slot>-g<generation>``; the services', ``<prefix>-services``,
        quota -1), ``[second, cores used, seconds throttled in it (summed over the CPUs, as the kernel counts it),
        quota in cores]`` for every second of the load both samples cover."""
        start = self.run.load_started_wall_s or 0.0
        out: dict[str, list[list[float]]] = {}
        for (t0, a), (t1, b) in itertools.pairwise(self.samples):
            second = int((t0 + t1) / 2 - start)
            if not (0 <= second < duration_s and t1 > t0):
                continue
            for name in a.keys() & b.keys():
                (c0, th0, _), (c1, th1, quota) = a[name], b[name]
                out.setdefault(name, []).append([second, round((c1 - c0) / (t1 - t0), 3), round((th1 - th0) / (t1 - t0), 3), quota])
        return out


def routed(run: EmbeddedRun, runtime: Any) -> dict[str, list[Any]]:
    """Each request Envoy logged (oldest first): ``start_s`` (seconds since the load began), the ``chosen`` variant,
    the ``server`` that answered (the Triton process's name, ``triton-<variant>-<slot>-g<generation>``; None when
    none did), ``duration_ms`` in Envoy and ``upstream_ms`` in the server. Empty without an access log."""
    start = run.load_started_wall_s
    if start is None or not getattr(runtime.envoy, "access_log", False):
        return {}
    names = {t.url: t.name for t in runtime.servers.created}
    fields: dict[str, list[Any]] = {"start_s": [], "chosen": [], "server": [], "duration_ms": [], "upstream_ms": []}
    for r in sorted(runtime.envoy.access_records(), key=lambda r: r.get("start_s") or 0.0):
        if r.get("start_s") is None:
            continue
        fields["start_s"].append(round(float(r["start_s"]) - start, 4))
        fields["chosen"].append(r.get("cluster"))
        fields["server"].append(names.get(str(r.get("host")), r.get("host")))
        fields["duration_ms"].append(r.get("duration_ms"))
        fields["upstream_ms"].append(r.get("upstream_ms"))
    return fields
