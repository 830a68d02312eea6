"""The measured side of ``benchmarks/fidelity.py`` kept on disk: its runs simulated again without running them.

A batch of embedded runs takes minutes of an otherwise idle machine; what the simulator needs from each is
small: the requests it sent, what its observer read, the plan it started on and the plans it decided, and the
machine fitted over the batch (the other processes' CPU, the host's measured speed swings) and the profile the
batch was measured with. ``--save-runs``
writes these, ``--from-runs`` reads them back instead of measuring, so that a change to the simulator is
compared with the very same measured runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from infadapter.planning import Plan
from infadapter.profiles import Profile, profile_from_dict
from infadapter.sim.machine import Machine

#: the row fields that are the simulator's input, not measures
INPUTS = ("sent_s", "observed_rps", "start", "decided")
#: the row fields kept for a later look, second by second (each request's measured latency, the runtime's
#: applied actions, the CPU the other processes took each second, each variant's answers and queue wait as Triton
#: counted them, each server's CPU and throttling, each request as the router saw it, the host's speed each second and the probe's samples it was read from),
#: and left out of the benchmark's output
DETAIL = ("measured_each", "applied", "others_cores", "served_by_variant", "servers_cpu", "routed", "host_by_second", "host_samples")
FORMAT = 1


def save_runs(path: Path, rows: list[dict[str, Any]], machine: Machine, profile: Profile, probed: dict[str, float]) -> None:
    """Write the batch's rows (measures and the simulator's inputs), its machine, its profile and what the speed
    probe read while the profile was measured (``benchmarks/speedprobe.py``; empty: not known) as JSON."""
    out = {
        "format": FORMAT,
        "profile": profile.to_dict(),
        "profile_probe": probed,
        "machine": {
            "cores": machine.cores,
            "base_cpu": machine.base_cpu,
            "cpu_per_rps": machine.cpu_per_rps,
            "jitter": list(machine.jitter),
            "startup_cpu_s": dict(machine.startup_cpu_s),
        },
        "rows": [_encoded(row) for row in rows],
    }
    path.write_text(json.dumps(out, allow_nan=False), encoding="utf-8")


def load_runs(path: Path) -> tuple[list[dict[str, Any]], Machine, Profile, dict[str, float]]:
    """The rows, machine, profile and profile's probe :func:`save_runs` wrote (the profile scales the trace as it
    did for the runs; a batch saved before the probe has none); ``ValueError`` naming the problem when the file
    is not such a batch."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a saved batch ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ValueError(f"{path}: not a saved batch of this format ({FORMAT})")
    m = raw["machine"]
    started = {str(k): float(v) for k, v in (m.get("startup_cpu_s") or {}).items()}  # (a batch saved before it: none)
    machine = Machine(float(m["cores"]), float(m["base_cpu"]), float(m["cpu_per_rps"]), tuple(float(x) for x in m["jitter"]), startup_cpu_s=started)
    probed = {str(k): float(v) for k, v in (raw.get("profile_probe") or {}).items()}
    return [_decoded(row) for row in raw["rows"]], machine, profile_from_dict(raw["profile"], str(path)), probed


def _encoded(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    observed = row.get("observed_rps")
    out["observed_rps"] = None if observed is None else [None if math.isnan(x) else float(x) for x in observed.tolist()]
    out["start"] = None if row.get("start") is None else row["start"].to_dict()
    out["decided"] = [[t, plan.to_dict(), resize] for t, plan, resize in row["decided"]]
    return out


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    observed = row.get("observed_rps")
    out["observed_rps"] = None if observed is None else np.array([math.nan if x is None else x for x in observed], dtype=np.float64)
    out["start"] = None if row.get("start") is None else Plan.from_dict(row["start"])
    out["decided"] = [(float(t), Plan.from_dict(plan), resize) for t, plan, resize in row["decided"]]
    return out


def rebased(rows: list[dict[str, Any]], probed: dict[str, float], other: dict[str, float]) -> None:
    """Each row's host speeds (``host_speed``, ``host_by_second``: relative to the probe ``probed`` read beside its
    profile) made relative to ``other``'s instead, in place; unchanged where either probe is unknown."""
    if not probed.get("cpu_ms") or not other.get("cpu_ms"):
        return
    ratio = other["cpu_ms"] / probed["cpu_ms"]
    for row in rows:
        if row.get("host_speed"):
            row["host_speed"] = round(row["host_speed"] * ratio, 4)
        if row.get("host_by_second"):
            row["host_by_second"] = [None if v is None else round(v * ratio, 4) for v in row["host_by_second"]]
