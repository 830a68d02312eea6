"""The status an InferenceService shows (pure): conditions, the plan in force, loads, accuracy, cost, checkpoint.

Built from what one step of the operator saw and did (:class:`Seen`); :func:`status_changes` then keeps only
what differs from the status already written, so a steady service causes no writes.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infadapter.operator.shadow import Comparison
from infadapter.operator.status import Condition, merge_conditions, rounded
from infadapter.planning import Plan
from infadapter.runtime.kube.actuator import ApplyResult
from infadapter.runtime.kube.objects import ANNOTATION_PAUSED

WHY_NOT_ACTING = {
    "Recommend": "Recommend mode: the plan is only reported",
    "Off": "Off mode: nothing is observed or changed",
    "Paused": f"paused by the {ANNOTATION_PAUSED} annotation",
}


@dataclass(frozen=True)
class Seen:
    """What a step knows for the status."""

    mode: str  # Auto | Recommend | Off | Paused
    generation: int
    plan: Plan | None = None  # the plan in force (Auto) or recommended
    decided: bool = False  # a new configuration was decided at this step
    reason: str = "hold"
    observed_rps: float = math.nan
    forecast_rps: float = math.nan
    metrics_error: str | None = None
    error: str | None = None  # the last apply error
    transitioning: bool = False  # the cluster is converging to the plan
    serving: frozenset[str] = frozenset()  # variants with a ready pod that the router sends traffic to
    waiting: tuple[str, ...] = ()  # planned variants not fully ready
    applied: ApplyResult | None = None
    checkpoint: Mapping[str, Any] | None = None
    route_problem: str | None = None  # GatewayAPI: why the Gateway does not route to the service yet
    shadow: Comparison | None = None  # spec.shadow: the current configuration beside the recommendation
    load_source: str = "router arrival rate"  # what the load is read from (the MetricsAvailable message)
    budget: Mapping[str, Any] | None = None  # spec.budget.pool: the share of the pool planned with, and why
    blocked: tuple[str, str] | None = None  # (reason, message): no share of the pool now, nothing is planned


def iso(now_s: float) -> str:
    return datetime.datetime.fromtimestamp(now_s, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def resize_condition(applied: ApplyResult | None) -> Condition:
    """In-place resize as the kubelets report it: done, waited on (Deferred, InProgress), or replaced by a rollout."""
    if applied is None:
        return Condition("InPlaceResize", True, "Done", "every pod runs at its planned size")
    fallback = [m for m in applied.messages if "rolling out" in m or "refused" in m]
    if fallback:
        return Condition("InPlaceResize", False, "RolledOut", "; ".join(fallback)[:1000])
    waiting = {pod: state for pod, state in sorted(applied.resizes.items()) if state != "Resized"}
    if waiting:
        reason = "Infeasible" if "Infeasible" in waiting.values() else ("Deferred" if "Deferred" in waiting.values() else "InProgress")
        return Condition("InPlaceResize", False, reason, ", ".join(f"{pod}: {state}" for pod, state in waiting.items())[:1000])
    if applied.resized_pods:
        return Condition("InPlaceResize", False, "InProgress", f"resize requested for {', '.join(applied.resized_pods)}"[:1000])
    return Condition("InPlaceResize", True, "Done", "every pod runs at its planned size")


def _conditions(seen: Seen) -> list[Condition]:
    metrics = seen.metrics_error
    out = [
        Condition(
            "MetricsAvailable",
            metrics is None,
            "Observed" if metrics is None else "PrometheusUnavailable",
            f"{seen.load_source} read from Prometheus" if metrics is None else f"holding the last plan: {metrics}",
        )
    ]
    if seen.plan is not None:
        feasible = seen.plan.status not in ("infeasible",)
        message = (
            "the plan serves the predicted load within the budget"
            if feasible
            else f"best effort: serves {seen.plan.served_rps:.1f} of {seen.plan.load_rps:.1f} rps within the budget"
        )
        out.append(Condition("PlanFeasible", feasible, "Optimal" if feasible else "Infeasible", message))
    out.append(Condition("Degraded", True, "ApplyFailed", seen.error) if seen.error else Condition("Degraded", False, "AsExpected", ""))
    if seen.blocked is not None:
        reason, message = seen.blocked
        degraded = Condition("Degraded", reason != "WaitingForPool", reason, message)
        return [*out[:-1], degraded, Condition("Progressing", False, reason, message), Condition("Ready", False, reason, message)]
    if seen.mode != "Auto":
        why = WHY_NOT_ACTING[seen.mode]
        return [*out, Condition("Progressing", False, seen.mode, why), Condition("Ready", None, seen.mode, why)]
    if seen.plan is None:
        return [*out, Condition("Ready", False, "ApplyFailed" if seen.error else "Pending", seen.error or "nothing applied yet")]
    if seen.waiting:
        message = f"waiting for {', '.join(seen.waiting)} to be ready"
    else:
        message = "rolling out" if seen.transitioning else "all variants ready, weights applied"
    out.append(Condition("Progressing", seen.transitioning, "Reconfiguring" if seen.transitioning else "Converged", message))
    out.append(resize_condition(seen.applied))
    out.append(_ready(seen))
    return out


def _ready(seen: Seen) -> Condition:
    """Ready: a variant serves and, through a Gateway, the Gateway routes to it (even while a switch is under way)."""
    if seen.error:
        return Condition("Ready", False, "NoReadyVariant" if not seen.serving else "ApplyFailed", seen.error)
    if not seen.serving:
        return Condition("Ready", False, "NoReadyVariant", "no variant has a ready replica yet")
    if seen.route_problem is not None:
        return Condition("Ready", False, "RouteNotAccepted", seen.route_problem)
    return Condition("Ready", True, "Serving", f"serving through {', '.join(sorted(seen.serving))}")


def desired_status(previous: Mapping[str, Any], seen: Seen, now_s: float) -> dict[str, Any]:
    """The whole status this step wants (compare with :func:`~infadapter.operator.status.status_changes`)."""
    status: dict[str, Any] = {
        "observedGeneration": seen.generation,
        "conditions": merge_conditions(previous.get("conditions") or [], _conditions(seen), iso(now_s), seen.generation),
    }
    plan = seen.plan
    if plan is not None:
        status.update(
            plan=plan.to_dict() | {"solve_ms": round(plan.solve_ms, 1)},
            summary=plan.describe(),
            variantCount=len(plan.variants),
            expectedAccuracy=rounded(plan.accuracy, 4),
            costCpu=rounded(plan.cost_cpu, 3),
            costGpu=int(plan.cost_gpu),
            cost=rounded(plan.cost, 4),
            objective=rounded(plan.objective, 4),
            solveMs=rounded(plan.solve_ms, 1),
        )
    if not math.isnan(seen.observed_rps):
        status["observedLoadRps"] = rounded(seen.observed_rps, 1)
    if not math.isnan(seen.forecast_rps):
        status["predictedLoadRps"] = rounded(seen.forecast_rps, 1)
    if seen.decided:
        status["decidedAt"] = iso(now_s)
        status["reason"] = seen.reason
    if seen.checkpoint is not None:
        status["checkpoint"] = json_safe(seen.checkpoint)
    if seen.budget is not None:
        status["budget"] = dict(seen.budget)
    if seen.shadow is not None and (seen.decided or _shadow_moved(previous.get("shadow"), seen.shadow.status())):
        status["shadow"] = seen.shadow.status()
    return status


def _shadow_moved(before: Any, now: Mapping[str, Any]) -> bool:
    """Whether the shadow comparison says something new (the predicted load alone moves at every step: no write)."""
    if not isinstance(before, Mapping):
        return True
    return any(before.get(key) != now.get(key) for key in ("recommended", "current", "currentServesPredictedLoad", "problem"))


def json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 6)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
