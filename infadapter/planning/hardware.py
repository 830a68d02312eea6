"""Which hardware a variant should run on: each kind alone (and each batch size), sized exactly for the load, priced.

A variant may run on CPU, on the default GPU (``budget.gpu``) and on every named accelerator type
it may use (the spec's ``accelerators``). For each kind the exact solver sizes the variant alone for
the whole load within the budget; the recommendation is the cheapest kind that serves it all (at
the spec's prices), or, when none does, the kind that serves the most.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from infadapter.planning.problem import CapacityFn, service_problem, spec_problem
from infadapter.profiles import Profile
from infadapter.solver import solve
from infadapter.spec import InferenceServiceSpec


@dataclass(frozen=True)
class HardwareChoice:
    """One kind of hardware for one variant: what serving the load on it alone takes."""

    hardware: str  # "cpu", "gpu" (the default type) or a named accelerator type
    deployment: str  # the deployment that would run it
    serves_all: bool
    served_rps: float
    cost: float  # money-like, at the spec's prices
    cpu_cores: float
    gpus: int
    replicas: int
    batch: int = 0  # the largest batch its servers form (0: none)

    def to_dict(self) -> dict[str, object]:
        return {
            "hardware": self.hardware,
            "deployment": self.deployment,
            "serves_all": self.serves_all,
            "served_rps": round(self.served_rps, 6),
            "cost": round(self.cost, 9),
            "cpu_per_replica": self.cpu_cores,
            "gpus_per_replica": self.gpus,
            "replicas": self.replicas,
            "batch": self.batch,
        }


def hardware_choices(spec: InferenceServiceSpec, profile: Profile, variant: str, load_rps: float, capacity: CapacityFn | None = None) -> list[HardwareChoice]:
    """Every kind of hardware ``variant`` has options on, cheapest first among those that serve all."""
    out: list[HardwareChoice] = []
    for name, placed in spec.placements.items():
        if placed.variant.name != variant:
            continue
        service = service_problem(spec, profile, load_rps, None, capacity=capacity, variants=[name])
        options = service.variants[0].options
        for kind in sorted({o.hardware for o in options}):
            only = tuple(o for o in options if o.hardware == kind)
            alone = replace(service, variants=(replace(service.variants[0], options=only, required=True),))
            solution = solve(spec_problem(spec, alone))
            if not solution.services or not solution.services[0].assignments:
                continue
            s = solution.services[0]
            option = s.assignments[0].option
            served = solution.status == "optimal"
            out.append(HardwareChoice(kind, name, served, s.served_rps, s.cost, option.cpu_cores, option.gpus, option.replicas, placed.batch))
    return sorted(out, key=lambda c: (not c.serves_all, c.cost if c.serves_all else -c.served_rps, c.hardware, c.batch))


def recommend(spec: InferenceServiceSpec, profile: Profile, load_rps: float, capacity: CapacityFn | None = None) -> dict[str, list[HardwareChoice]]:
    """Per variant of the spec, its hardware choices, the recommended (first) one first."""
    return {v.name: hardware_choices(spec, profile, v.name, load_rps, capacity) for v in spec.variants}
