"""The plan: what one decision gives each variant (cores, GPUs, replicas, traffic weight).

:class:`Plan` is the solver's decision in the terms the actuators need; ``to_dict``/``from_dict`` keep it
in status and checkpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from infadapter.errors import FieldError, InvalidInput
from infadapter.solver import STATUSES, ResourceOption, Status


@dataclass(frozen=True)
class VariantPlan:
    """What one variant gets: ``replicas`` x (``cpu_cores`` + ``gpus``), ``weight`` of the traffic."""

    name: str
    cpu_cores: float
    replicas: int = 1
    gpus: int = 0
    weight: float = 0.0
    capacity_rps: float = 0.0
    accuracy: float = 0.0
    accelerator: str = ""  # the named accelerator type of its GPUs ("" for the default GPU)

    @property
    def total_cpu(self) -> float:
        return self.cpu_cores * self.replicas

    @property
    def hardware(self) -> str:
        """What it runs on: "cpu", "gpu" (the default type) or the named accelerator type."""
        return self.option().hardware

    def option(self) -> ResourceOption:
        return ResourceOption(self.cpu_cores, self.replicas, self.gpus, self.capacity_rps, self.accelerator)

    def describe(self) -> str:
        size = f"{self.cpu_cores:g}c" + (f"+{self.gpus}g" if self.gpus else "") + (f"x{self.replicas}" if self.replicas != 1 else "")
        return f"{self.name}:{size}/{self.weight:.2f}"


@dataclass(frozen=True)
class Plan:
    """A configuration of the service: the solver's decision in the terms the actuators need."""

    variants: tuple[VariantPlan, ...]
    status: Status = "optimal"
    load_rps: float = 0.0
    served_rps: float = 0.0
    objective: float = 0.0
    accuracy: float = 0.0
    cost_cpu: float = 0.0
    cost_gpu: int = 0  # devices of every accelerator type
    solve_ms: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)
    backend: str = ""  # the method that solved it: "dp", "highs" or "cbc" ("" when no solver ran)
    cost: float = 0.0  # money-like: its cores and devices at the spec's prices

    @property
    def capacity_rps(self) -> float:
        return sum(v.capacity_rps for v in self.variants)

    def weights(self) -> dict[str, float]:
        return {v.name: v.weight for v in self.variants}

    def variant(self, name: str) -> VariantPlan | None:
        return next((v for v in self.variants if v.name == name), None)

    def describe(self) -> str:
        return " ".join(v.describe() for v in self.variants) or "(nothing)"

    def same_config(self, other: Plan | None) -> bool:
        """Same variants, sizes and replicas (weights may differ)."""
        if other is None:
            return False
        mine = {(v.name, round(v.cpu_cores, 6), v.gpus, v.replicas) for v in self.variants}
        theirs = {(v.name, round(v.cpu_cores, 6), v.gpus, v.replicas) for v in other.variants}
        return mine == theirs

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "variants": [
                {
                    "name": v.name,
                    "cpu": v.cpu_cores,
                    "gpus": v.gpus,
                    "replicas": v.replicas,
                    "weight": v.weight,
                    "capacity_rps": v.capacity_rps,
                    "accuracy": v.accuracy,
                    **({"accelerator": v.accelerator} if v.accelerator else {}),
                }
                for v in self.variants
            ],
            "load_rps": self.load_rps,
            "served_rps": self.served_rps,
            "objective": self.objective,
            "accuracy": self.accuracy,
            "cost_cpu": self.cost_cpu,
            "cost_gpu": self.cost_gpu,
            "cost": self.cost,
            "solve_ms": self.solve_ms,
            "backend": self.backend,
        }

    @staticmethod
    def from_dict(raw: Mapping[str, Any]) -> Plan:
        """Rebuild a plan from :meth:`to_dict` output (status checkpoints); raises InvalidInput."""
        try:
            variants = tuple(
                VariantPlan(
                    name=str(v["name"]),
                    cpu_cores=float(v["cpu"]),
                    replicas=int(v.get("replicas", 1)),
                    gpus=int(v.get("gpus", 0)),
                    weight=float(v.get("weight", 0.0)),
                    capacity_rps=float(v.get("capacity_rps", 0.0)),
                    accuracy=float(v.get("accuracy", 0.0)),
                    accelerator=str(v.get("accelerator", "")),
                )
                for v in raw.get("variants", [])
            )
            status: Status = next((s for s in STATUSES if s == raw.get("status")), "optimal")
            return Plan(
                variants=variants,
                status=status,
                load_rps=float(raw.get("load_rps", 0.0)),
                served_rps=float(raw.get("served_rps", 0.0)),
                objective=float(raw.get("objective", 0.0)),
                accuracy=float(raw.get("accuracy", 0.0)),
                cost_cpu=float(raw.get("cost_cpu", sum(v.total_cpu for v in variants))),
                cost_gpu=int(raw.get("cost_gpu", 0)),
                cost=float(raw.get("cost", 0.0)),
                solve_ms=float(raw.get("solve_ms", 0.0)),
                backend=str(raw.get("backend", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput([FieldError("plan", f"malformed plan record: {exc}", "drop the stored plan")], "plan") from None
