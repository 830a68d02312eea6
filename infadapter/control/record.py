"""What a controller step records: the :class:`DecisionRecord` and the one reason classifier.

Every mode records the same thing for a decision: the plan it leaves in force, the one before, why
(:func:`classify`), the observed and forecast load. ``infadapter.metrics`` renders records (the INFO
line, JSON lines, Kubernetes events, the exporter's gauges); it does not build or classify them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from infadapter.errors import FieldError, InvalidInput
from infadapter.planning import Plan

DecisionReason = Literal["scale_up", "scale_down", "variant_change", "hold", "infeasible", "metrics_unavailable"]

#: every value :attr:`DecisionRecord.reason` may take (the exporter pre-creates one counter per reason)
DECISION_REASONS: tuple[DecisionReason, ...] = ("scale_up", "scale_down", "variant_change", "hold", "infeasible", "metrics_unavailable")

PlanStatus = Literal["optimal", "infeasible"]


def classify(new: Plan | None, previous: Plan | None, *, metrics_available: bool = True) -> DecisionReason:
    """Why moving from ``previous`` to ``new`` (``None``: keep what runs).

    Order: no metrics > keep > infeasible > a different set of variants > same configuration (at most
    re-weighted) > more or fewer cores (total over replicas), then more or less capacity.
    """
    if not metrics_available:
        return "metrics_unavailable"
    if new is None:
        return "hold"
    if new.status == "infeasible":
        return "infeasible"
    if previous is None:
        return "scale_up"
    if {v.name for v in new.variants} != {v.name for v in previous.variants}:
        return "variant_change"
    if new.same_config(previous):
        return "hold"
    cores, was = sum(v.total_cpu for v in new.variants), sum(v.total_cpu for v in previous.variants)
    if abs(cores - was) > 1e-9:
        return "scale_up" if cores > was else "scale_down"
    return "scale_up" if new.capacity_rps > previous.capacity_rps else "scale_down"


@dataclass(frozen=True)
class VariantRecord:
    """One variant of a plan: ``cpu_cores`` (and ``gpus``) per replica, ``weight`` = share of requests in [0, 1]."""

    cpu_cores: float
    replicas: int = 1
    weight: float = 0.0
    capacity_rps: float = 0.0
    gpus: int = 0

    @property
    def total_cpu_cores(self) -> float:
        return self.cpu_cores * self.replicas

    def to_dict(self) -> dict[str, float | int]:
        return {"cpu_cores": self.cpu_cores, "replicas": self.replicas, "weight": self.weight, "capacity_rps": self.capacity_rps, "gpus": self.gpus}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> VariantRecord:
        return cls(
            cpu_cores=float(raw["cpu_cores"]),
            replicas=int(raw.get("replicas", 1)),
            weight=float(raw.get("weight", 0.0)),
            capacity_rps=float(raw.get("capacity_rps", 0.0)),
            gpus=int(raw.get("gpus", 0)),
        )


def _frozen_plan(plan: Mapping[str, VariantRecord | Mapping[str, Any]]) -> Mapping[str, VariantRecord]:
    converted = {name: v if isinstance(v, VariantRecord) else VariantRecord.from_dict(v) for name, v in plan.items()}
    return MappingProxyType(converted)


@dataclass(frozen=True)
class DecisionRecord:
    """What one decision left in force, for one service (``namespace``/``name``).

    ``plan`` and ``previous_plan`` map variant name -> :class:`VariantRecord` (plain dicts with the
    same keys are accepted and converted). ``now_s`` is the mode's clock (Unix seconds in the operator,
    seconds since the start in the embedded mode, trace seconds in the simulator). Loads are requests
    per second; NaN where unknown (e.g. ``metrics_unavailable``). ``accuracy`` is the expected
    (weight-averaged declared) accuracy as a fraction, ``cost_cpu`` the planned cores (all replicas),
    ``cost_gpu`` its devices of every accelerator type, ``cost`` both at the spec's prices (money-like),
    ``solve_s`` the solver's wall time (None when nothing was solved, e.g. the running plan was kept).
    Measurements a mode adds (``slo_violation_ratio`` over the last interval at the router,
    ``reconfiguration_s``) are exported when given.
    """

    namespace: str
    name: str
    now_s: float
    reason: DecisionReason
    observed_rps: float
    forecast_rps: float
    plan: Mapping[str, VariantRecord] = field(default_factory=dict)
    previous_plan: Mapping[str, VariantRecord] = field(default_factory=dict)
    accuracy: float = math.nan
    cost_cpu: float = math.nan
    objective: float = math.nan
    solve_s: float | None = None
    status: PlanStatus = "optimal"
    cost_gpu: float = math.nan
    cost: float = math.nan
    slo_violation_ratio: float | None = None
    reconfiguration_s: float | None = None

    def __post_init__(self) -> None:
        errors: list[FieldError] = []
        if self.reason not in DECISION_REASONS:
            errors.append(FieldError("reason", f"unknown reason {self.reason!r}", f"one of {DECISION_REASONS}"))
        if self.status not in ("optimal", "infeasible"):
            errors.append(FieldError("status", f"unknown status {self.status!r}", "'optimal' or 'infeasible'"))
        if errors:
            raise InvalidInput(errors, source="decision record")
        object.__setattr__(self, "plan", _frozen_plan(self.plan))
        object.__setattr__(self, "previous_plan", _frozen_plan(self.previous_plan))

    @property
    def changed(self) -> bool:
        """True when the plan differs from the previous one (any variant, cores, replicas or weight)."""
        return dict(self.plan) != dict(self.previous_plan)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (NaN becomes ``None``); :meth:`from_dict` reads it back."""
        return {
            "namespace": self.namespace,
            "name": self.name,
            "now_s": self.now_s,
            "reason": self.reason,
            "status": self.status,
            "observed_rps": _json_number(self.observed_rps),
            "forecast_rps": _json_number(self.forecast_rps),
            "plan": {k: v.to_dict() for k, v in self.plan.items()},
            "previous_plan": {k: v.to_dict() for k, v in self.previous_plan.items()},
            "accuracy": _json_number(self.accuracy),
            "cost_cpu": _json_number(self.cost_cpu),
            "cost_gpu": _json_number(self.cost_gpu),
            "cost": _json_number(self.cost),
            "objective": _json_number(self.objective),
            "solve_s": None if self.solve_s is None else _json_number(self.solve_s),
            "slo_violation_ratio": None if self.slo_violation_ratio is None else _json_number(self.slo_violation_ratio),
            "reconfiguration_s": None if self.reconfiguration_s is None else _json_number(self.reconfiguration_s),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> DecisionRecord:
        def num(key: str) -> float:
            value = raw.get(key)
            return math.nan if value is None else float(value)

        def opt(key: str) -> float | None:
            value = raw.get(key)
            return None if value is None else float(value)

        return cls(
            namespace=str(raw["namespace"]),
            name=str(raw["name"]),
            now_s=float(raw["now_s"]),
            reason=raw["reason"],
            status=raw.get("status", "optimal"),
            observed_rps=num("observed_rps"),
            forecast_rps=num("forecast_rps"),
            plan=dict(raw.get("plan") or {}),
            previous_plan=dict(raw.get("previous_plan") or {}),
            accuracy=num("accuracy"),
            cost_cpu=num("cost_cpu"),
            cost_gpu=num("cost_gpu"),
            cost=num("cost"),
            objective=num("objective"),
            solve_s=opt("solve_s"),
            slo_violation_ratio=opt("slo_violation_ratio"),
            reconfiguration_s=opt("reconfiguration_s"),
        )


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else value


def plan_variants(plan: Plan | None) -> dict[str, VariantRecord]:
    """``Plan.variants`` as the record's ``{name: VariantRecord}`` (empty for ``None``)."""
    if plan is None:
        return {}
    return {v.name: VariantRecord(v.cpu_cores, v.replicas, v.weight, v.capacity_rps, v.gpus) for v in plan.variants}


def record_from_plan(
    namespace: str,
    name: str,
    now_s: float,
    plan: Plan | None,
    previous: Plan | None,
    *,
    observed_rps: float,
    forecast_rps: float,
    reason: DecisionReason | None = None,
    slo_violation_ratio: float | None = None,
    reconfiguration_s: float | None = None,
) -> DecisionRecord:
    """The record of deciding ``plan`` while ``previous`` was in force (``reason``: :func:`classify` when not given).

    ``plan=None`` means the running plan was kept: the record's plan is then ``previous`` and no solve
    is recorded (``solve_s=None``).
    """
    effective = plan if plan is not None else previous
    status: PlanStatus = "infeasible" if effective is not None and effective.status == "infeasible" else "optimal"
    return DecisionRecord(
        namespace=namespace,
        name=name,
        now_s=now_s,
        reason=reason if reason is not None else classify(plan, previous),
        observed_rps=observed_rps,
        forecast_rps=forecast_rps,
        plan=plan_variants(effective),
        previous_plan=plan_variants(previous),
        accuracy=effective.accuracy if effective is not None else math.nan,
        cost_cpu=effective.cost_cpu if effective is not None else math.nan,
        cost_gpu=float(effective.cost_gpu) if effective is not None else math.nan,
        cost=effective.cost if effective is not None else math.nan,
        objective=effective.objective if effective is not None else math.nan,
        solve_s=plan.solve_ms / 1000.0 if plan is not None else None,
        status=status,
        slo_violation_ratio=slo_violation_ratio,
        reconfiguration_s=reconfiguration_s,
    )
