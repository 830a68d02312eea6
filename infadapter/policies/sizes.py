"""The sizes a baseline may give one variant: the spec's bounds, grown up to maxCpu, then out by replicas.

A baseline is only fair when it plays by the same rules as ``ours``: per replica between the spec's
``minCpu`` and ``maxCpu`` on its ``cpuStep`` (the variant's overrides first), at most ``maxReplicas``
replicas, and the CPU budget in total. Baselines that think in one number of cores (the paper's brute
force, MS+, VPA) climb a **ladder**: one replica of ``minCpu``, ``minCpu + step``, … ``maxCpu``, then
2, 3, … replicas of ``maxCpu`` — they grow vertically while the spec lets them and then scale out, as a
VPA paired with a horizontal autoscaler would. Without these bounds the paper's policies ran one
replica of up to the whole budget (30 cores past a ``maxCpu`` of 8), which a user's profile measured
only up to 8 cores credits with no extra capacity, so they looked several times worse than they are.

On the paper's own spec (``examples/resnet.yaml``: 2..20 cores, one replica, 20-core budget) the ladder
is exactly the paper's range 2..20.
"""

from __future__ import annotations

from dataclasses import dataclass

from infadapter.planning import cpu_grid
from infadapter.spec import InferenceServiceSpec


@dataclass(frozen=True)
class Rung:
    """``replicas`` replicas of ``cpu_cores`` each."""

    cpu_cores: float
    replicas: int = 1

    @property
    def total_cores(self) -> float:
        return self.cpu_cores * self.replicas

    def describe(self) -> str:
        return f"{self.cpu_cores:g}" + (f"x{self.replicas}" if self.replicas != 1 else "")


def ladder(spec: InferenceServiceSpec, variant: str) -> tuple[Rung, ...]:
    """The sizes of ``variant`` in increasing total cores (empty when the budget fits none)."""
    v = spec.variant(variant)
    sizes = cpu_grid(spec, variant)
    if not sizes:
        return ()
    first = max(1, v.resources.min_replicas)
    most = max(first, v.resources.max_replicas or spec.resources.max_replicas)
    rungs = [Rung(c, first) for c in sizes if c * first <= spec.budget.cpu + 1e-9]
    top = sizes[-1]
    rungs += [Rung(top, r) for r in range(first + 1, most + 1) if top * r <= spec.budget.cpu + 1e-9]
    return tuple(rungs)


def rung_for(rungs: tuple[Rung, ...], cores: float) -> Rung:
    """The smallest rung with at least ``cores`` in total (the largest when none has that many)."""
    return next((r for r in rungs if r.total_cores >= cores - 1e-9), rungs[-1])
