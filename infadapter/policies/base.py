"""What every policy sees and returns: the tick as a pure function ``(observation, state) -> (decision, state)``.

The operator, the embedded run and the simulator all call a policy the same way: at every tick
(``interval_s``, the first one at ``first_tick_s``) they build an :class:`Observation` (time, the
per-second arrival history, the plan now serving, its capacity) and call ``decide``; between ticks
they may call the cheap ``between_ticks`` every second, and call ``decide`` at once when it says so
(burst re-plans). The state is a frozen dataclass with ``to_dict``/``from_dict`` so it can be
checkpointed in the resource's status: a restarted operator resumes with no churn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Literal, Protocol, Self, TypeVar

import numpy as np
import numpy.typing as npt

from infadapter.planning import Plan

FloatArray = npt.NDArray[np.float64]

Reason = Literal["scale_up", "scale_down", "variant_change", "hold", "infeasible", "metrics_unavailable"]
Resize = Literal["in_place", "recreate"]
REASONS: tuple[Reason, ...] = ("scale_up", "scale_down", "variant_change", "hold", "infeasible", "metrics_unavailable")


@dataclass(frozen=True)
class Observation:
    """What a policy knows at ``now_s``.

    ``history_rps``: arrivals per second, oldest first, the last element being the second that ends
    at ``now_s`` (NaN = unknown). ``current``: the plan now serving (None before the first one).
    ``provisioned_capacity_rps``: the capacity at the SLO of what serves now (profile figures).
    """

    now_s: float
    history_rps: FloatArray
    current: Plan | None
    provisioned_capacity_rps: float = 0.0


@dataclass(frozen=True)
class Decision:
    """The outcome of a tick. ``plan=None`` keeps what runs (``reason`` says why)."""

    plan: Plan | None
    reason: Reason
    forecast_rps: float = math.nan
    observed_rps: float = math.nan
    replan_now: bool = False
    resize: Resize = "recreate"
    note: str = ""


class StateDict:
    """Mixin: a frozen dataclass of JSON-safe fields (plans allowed) <-> dict."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, Plan):
                value = {"__plan__": value.to_dict()}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Self:
        names = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
        kwargs: dict[str, Any] = {}
        for key, raw_value in raw.items():
            if key not in names:
                continue
            value = raw_value
            if isinstance(raw_value, dict) and "__plan__" in raw_value:
                value = Plan.from_dict(raw_value["__plan__"])
            elif isinstance(raw_value, list):
                value = tuple(raw_value)
            kwargs[key] = value
        return cls(**kwargs)


S = TypeVar("S")


class Policy(Protocol[S]):
    """A named adaptation policy (see :func:`infadapter.policies.make_policy`)."""

    name: str
    interval_s: float
    first_tick_s: float

    def initial_state(self) -> S: ...

    def decide(self, obs: Observation, state: S) -> tuple[Decision, S]: ...

    def between_ticks(self, obs: Observation, state: S) -> bool: ...

    def state_from_dict(self, raw: dict[str, Any]) -> S: ...


def recent_observed(history_rps: FloatArray, seconds: int) -> FloatArray:
    """The observed (non-NaN) values among the last ``seconds`` seconds."""
    tail = history_rps[-seconds:] if seconds > 0 else history_rps[:0]
    observed: FloatArray = tail[~np.isnan(tail)]
    return observed


def classify(new: Plan, current: Plan | None) -> Reason:
    """scale_up / scale_down / variant_change / hold for moving from ``current`` to ``new``."""
    if new.status == "infeasible":
        return "infeasible"
    if current is None:
        return "scale_up"
    if new.same_config(current):
        return "hold"
    if {v.name for v in new.variants} != {v.name for v in current.variants}:
        return "variant_change"
    return "scale_up" if new.cost_cpu > current.cost_cpu or new.capacity_rps > current.capacity_rps else "scale_down"
