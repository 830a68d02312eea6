"""The pluggable decision step: ``infadapter.policies.make_policy(name, spec, profile)``.

While the policies package is not importable (or does not know the name), a small built-in policy
keeps the operator working: plan for the peak of the last ``horizon`` seconds, scale down only after
``scaleDownStabilizationSeconds`` of lower load. It follows the same protocol, with a JSON state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from infadapter.planning import Plan, plan_for_load
from infadapter.profiles import Profile
from infadapter.spec import InferenceServiceSpec


class DecisionLike(Protocol):
    plan: Plan | None
    reason: str
    forecast_rps: float
    observed_rps: float


class PolicyLike(Protocol):
    name: str

    def initial_state(self) -> Any: ...

    def decide(self, obs: Any, state: Any) -> tuple[Any, Any]: ...

    def state_from_dict(self, raw: dict[str, Any]) -> Any: ...


@dataclass(frozen=True)
class Observation:
    now_s: float
    history_rps: npt.NDArray[np.float64]
    current: Plan | None
    provisioned_capacity_rps: float = 0.0


@dataclass(frozen=True)
class Decision:
    plan: Plan | None
    reason: str
    forecast_rps: float = math.nan
    observed_rps: float = math.nan
    replan_now: bool = False


@dataclass(frozen=True)
class PeakState:
    low_since_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"low_since_s": self.low_since_s}


class PeakPolicy:
    """Built-in fallback: the recent peak, exact plan, scale-down stabilisation."""

    name = "peak"

    def __init__(self, spec: InferenceServiceSpec, profile: Profile) -> None:
        self.spec = spec
        self.profile = profile

    def initial_state(self) -> PeakState:
        return PeakState()

    def state_from_dict(self, raw: dict[str, Any]) -> PeakState:
        value = raw.get("low_since_s")
        return PeakState(float(value) if isinstance(value, int | float) else None)

    def decide(self, obs: Any, state: PeakState) -> tuple[Decision, PeakState]:
        history = np.asarray(obs.history_rps, dtype=float)
        tail = history[-max(1, self.spec.forecast.horizon_s) :]
        known = tail[~np.isnan(tail)]
        observed = float(known[-1]) if known.size else math.nan
        forecast = float(known.max()) if known.size else 0.0
        plan = plan_for_load(self.spec, self.profile, forecast, obs.current)
        current: Plan | None = obs.current
        if current is not None and plan.same_config(current):
            return Decision(None, "hold", forecast, observed), PeakState()
        if current is not None and plan.cost_cpu < current.cost_cpu and current.capacity_rps >= forecast:
            since = state.low_since_s if state.low_since_s is not None else obs.now_s
            if obs.now_s - since < self.spec.adaptation.scale_down_stabilisation_s:
                return Decision(None, "hold", forecast, observed), PeakState(since)
            return Decision(plan, "scale_down", forecast, observed), PeakState()
        reason = "infeasible" if plan.status == "infeasible" else "scale_up"
        return Decision(plan, reason, forecast, observed), PeakState()


def make(name: str, spec: InferenceServiceSpec, profile: Profile) -> tuple[PolicyLike, type[Any]]:
    """(policy, Observation class) for ``name``; the built-in one when the policies package cannot."""
    try:
        from infadapter.policies import make_policy
        from infadapter.policies.base import Observation as PolicyObservation
    except ImportError:
        return PeakPolicy(spec, profile), Observation
    try:
        policy: PolicyLike = make_policy(name, spec, profile)
    except (KeyError, ValueError):
        return PeakPolicy(spec, profile), Observation
    return policy, PolicyObservation
