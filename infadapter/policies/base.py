"""What every policy sees and returns: the tick as a pure function ``(observation, state) -> (decision, state)``.

Only the controller (:mod:`infadapter.control`) calls a policy, the same way in every mode: at every
tick (``interval_s``, the first one ``first_tick_s`` after the start) it builds an :class:`Observation`
(seconds since the start, the per-second arrival history, the plan in force, the capacity ready now)
and calls ``decide``; at every step between ticks it calls the cheap ``between_ticks`` and calls
``decide`` when it says so (burst re-plans), or at the next step when a decision asks for it
(``replan_now``). The controller, not the policy, says why a plan changed (its one classifier) and
when metrics are missing. The state is a frozen dataclass with ``to_dict``/``from_dict`` so it can be
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

Resize = Literal["in_place", "recreate"]


@dataclass(frozen=True)
class Observation:
    """What a policy knows at ``now_s`` (seconds since the controller started).

    ``history_rps``: arrivals per second, oldest first, the last element being the second that ends
    at ``now_s`` (NaN = unknown). ``current``: the plan now serving (None before the first one).
    ``provisioned_capacity_rps``: the capacity at the SLO of the replicas ready now (profile figures).
    """

    now_s: float
    history_rps: FloatArray
    current: Plan | None
    provisioned_capacity_rps: float = 0.0


@dataclass(frozen=True)
class Decision:
    """The outcome of a tick: ``plan`` (None keeps what runs), the load it planned for and the newest
    observed; ``replan_now`` asks for another decision at the next step; ``resize`` says how size
    changes of running variants are made."""

    plan: Plan | None
    forecast_rps: float = math.nan
    observed_rps: float = math.nan
    replan_now: bool = False
    resize: Resize = "recreate"
    note: str = ""

    @property
    def reason(self) -> str:
        """Transitional, for ``infadapter.operator.tick`` until it runs the controller (which classifies
        every decision, :func:`infadapter.control.classify`): "hold" or "scale_up"; remove with that wiring."""
        return "hold" if self.plan is None else "scale_up"


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
