"""Decision records from the planner's types (duck-typed: ``metrics/`` does not import ``planning``).

``record_from_plan(namespace, name, now_s, plan, previous, observed_rps=…, forecast_rps=…)`` turns the
``infadapter.planning.Plan`` of a tick into a :class:`~infadapter.metrics.decisionlog.DecisionRecord`,
inferring the reason (:func:`infer_reason`) when the policy gives none.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Protocol

from infadapter.metrics.decisionlog import DecisionReason, DecisionRecord, PlanStatus, VariantRecord


class _VariantPlanLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def cpu_cores(self) -> float: ...
    @property
    def replicas(self) -> int: ...
    @property
    def weight(self) -> float: ...
    @property
    def capacity_rps(self) -> float: ...
    @property
    def gpus(self) -> int: ...


class PlanLike(Protocol):
    """The part of ``infadapter.planning.Plan`` a record needs (see docs/INTERFACES.md)."""

    @property
    def variants(self) -> Iterable[_VariantPlanLike]: ...
    @property
    def status(self) -> str: ...
    @property
    def accuracy(self) -> float: ...
    @property
    def cost_cpu(self) -> float: ...
    @property
    def objective(self) -> float: ...
    @property
    def solve_ms(self) -> float: ...


def plan_variants(plan: PlanLike | None) -> dict[str, VariantRecord]:
    """``Plan.variants`` as the record's ``{name: VariantRecord}`` (empty for ``None``)."""
    if plan is None:
        return {}
    return {
        v.name: VariantRecord(
            cpu_cores=float(v.cpu_cores),
            replicas=int(v.replicas),
            weight=float(v.weight),
            capacity_rps=float(v.capacity_rps),
            gpus=int(v.gpus),
        )
        for v in plan.variants
    }


def infer_reason(
    plan: Mapping[str, VariantRecord],
    previous: Mapping[str, VariantRecord],
    *,
    status: str = "optimal",
    metrics_available: bool = True,
) -> DecisionReason:
    """Classify a decision when the policy did not name its reason.

    Order: no metrics > infeasible > a different set of variants > more/fewer total cores > hold
    (same variants and cores, possibly re-weighted).
    """
    if not metrics_available:
        return "metrics_unavailable"
    if status == "infeasible":
        return "infeasible"
    if set(plan) != set(previous):
        return "variant_change"
    cores = sum(v.total_cpu_cores for v in plan.values())
    was = sum(v.total_cpu_cores for v in previous.values())
    if cores > was + 1e-9:
        return "scale_up"
    if cores < was - 1e-9:
        return "scale_down"
    return "hold"


def record_from_plan(
    namespace: str,
    name: str,
    now_s: float,
    plan: PlanLike | None,
    previous: PlanLike | None,
    *,
    observed_rps: float,
    forecast_rps: float,
    reason: DecisionReason | None = None,
    metrics_available: bool = True,
    slo_violation_ratio: float | None = None,
    reconfiguration_s: float | None = None,
) -> DecisionRecord:
    """Build the record from the planner's ``Plan`` objects; ``reason`` is inferred when not given.

    ``plan=None`` means the tick kept what runs (``Decision.plan is None``): the record's plan is then
    ``previous`` and no solve is recorded (``solve_s=None``).
    """
    effective = plan if plan is not None else previous
    current = plan_variants(effective)
    before = plan_variants(previous)
    status: PlanStatus = "infeasible" if effective is not None and effective.status == "infeasible" else "optimal"
    if reason is None:
        reason = infer_reason(current, before, status=status, metrics_available=metrics_available)
    return DecisionRecord(
        namespace=namespace,
        name=name,
        now_s=now_s,
        reason=reason,
        observed_rps=observed_rps,
        forecast_rps=forecast_rps,
        plan=current,
        previous_plan=before,
        accuracy=float(effective.accuracy) if effective is not None else math.nan,
        cost_cpu=float(effective.cost_cpu) if effective is not None else math.nan,
        objective=float(effective.objective) if effective is not None else math.nan,
        solve_s=float(plan.solve_ms) / 1000.0 if plan is not None else None,
        status=status,
        slo_violation_ratio=slo_violation_ratio,
        reconfiguration_s=reconfiguration_s,
    )


class DecisionLike(Protocol):
    """The part of ``infadapter.policies.base.Decision`` a record needs."""

    @property
    def plan(self) -> PlanLike | None: ...
    @property
    def reason(self) -> DecisionReason: ...
    @property
    def forecast_rps(self) -> float: ...
    @property
    def observed_rps(self) -> float: ...


def record_from_decision(
    namespace: str,
    name: str,
    now_s: float,
    decision: DecisionLike,
    current: PlanLike | None,
    *,
    slo_violation_ratio: float | None = None,
    reconfiguration_s: float | None = None,
) -> DecisionRecord:
    """The record of one policy tick: ``decision`` (a ``Decision``) taken while ``current`` was serving."""
    return record_from_plan(
        namespace,
        name,
        now_s,
        decision.plan,
        current,
        observed_rps=decision.observed_rps,
        forecast_rps=decision.forecast_rps,
        reason=decision.reason,
        slo_violation_ratio=slo_violation_ratio,
        reconfiguration_s=reconfiguration_s,
    )
