"""A two-variant service, a scripted policy and a scripted actuator state, for driving the controller by hand."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from infadapter.control import ActuatorState, VariantState
from infadapter.planning import Plan, VariantPlan
from infadapter.policies import Decision, Observation
from infadapter.profiles import Profile, ProfilePoint
from infadapter.spec import InferenceServiceSpec, parse_spec

SPEC: InferenceServiceSpec = parse_spec(
    {
        "modelName": "m",
        "variants": [
            {"name": "fast", "accuracy": 0.70, "loadTimeSeconds": 6.0},
            {"name": "slow", "accuracy": 0.78, "loadTimeSeconds": 8.0},
        ],
        "slo": {"latencyMs": 750},
        "budget": {"cpu": 8},
        "resources": {"minCpu": 1, "maxCpu": 8, "cpuStep": 1},
        "adaptation": {"intervalSeconds": 10},
    }
)
PROFILE = Profile(
    750.0,
    {
        "fast": tuple(ProfilePoint(float(c), 20.0 * c) for c in range(1, 9)),
        "slow": tuple(ProfilePoint(float(c), 5.0 * c) for c in range(1, 9)),
    },
)


def plan(*items: tuple[str, float, float], load_rps: float = 0.0) -> Plan:
    """``plan(("fast", cores, weight), ...)``: one replica each, capacity from :data:`PROFILE`."""
    variants = tuple(VariantPlan(n, c, weight=w, capacity_rps=PROFILE.capacity_rps(n, c), accuracy=SPEC.variant(n).accuracy) for n, c, w in items)
    return Plan(variants, load_rps=load_rps, cost_cpu=sum(c for _, c, _ in items))


def running(*items: tuple[str, float, bool], weights: dict[str, float] | None = None, in_place: bool = True) -> ActuatorState:
    """``running(("fast", cores, ready), ...)``: one replica each, the router's split ``weights`` (default: equal)."""
    variants = tuple(VariantState(n, c, 1, (c,) if ready else ()) for n, c, ready in items)
    split = weights if weights is not None else {n: 1.0 / len(items) for n, _, _ in items}
    return ActuatorState(variants, split, in_place)


def steady(rps: float, seconds: int = 120) -> np.ndarray:
    return np.full(seconds, rps)


@dataclass
class Scripted:
    """A policy that returns ``plans[k]`` at its k-th decision (None: keep) and records what it saw."""

    plans: list[Plan | None] = field(default_factory=list)
    interval_s: float = 10.0
    first_tick_s: float = 0.0
    burst_at_s: tuple[float, ...] = ()
    replan_once: bool = False
    resize: str = "in_place"
    name: str = "scripted"
    seen: list[Observation] = field(default_factory=list)

    def initial_state(self) -> int:
        return 0

    def state_from_dict(self, raw: dict[str, int]) -> int:
        return int(raw["k"])

    def between_ticks(self, obs: Observation, state: int) -> bool:
        return any(math.isclose(obs.now_s, t) for t in self.burst_at_s)

    def decide(self, obs: Observation, state: int) -> tuple[Decision, int]:
        self.seen.append(obs)
        chosen = self.plans[state] if state < len(self.plans) else None
        replan = self.replan_once and state == 0
        return Decision(chosen, forecast_rps=obs.now_s, replan_now=replan, resize=self.resize), state + 1  # type: ignore[arg-type]

    @property
    def decided_at(self) -> list[float]:
        return [o.now_s for o in self.seen]
