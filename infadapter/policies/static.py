"""``static:<variant>@<cores>``: one fixed plan, never changed."""

from __future__ import annotations

import math

from infadapter.planning import Plan, static_plan
from infadapter.policies.base import Decision, Observation
from infadapter.policies.ours import NoReactiveLayer, OursState
from infadapter.policies.sizes import Rung, ladder, rung_for
from infadapter.profiles import Profile
from infadapter.spec import InferenceServiceSpec


class StaticPolicy(NoReactiveLayer):
    """``static:<variant>@<cores>``: one fixed plan, never changed.

    The cores are a total within the spec's bounds: the smallest size of the variant's ladder
    (:mod:`infadapter.policies.sizes`) that has them, e.g. ``@20`` under ``maxCpu: 8`` is 3 replicas of 8
    (noted). A variant measured only on GPUs runs on its smallest measured GPU count at the cores given.
    """

    def __init__(self, spec: InferenceServiceSpec, profile: Profile, variant: str, cores: float) -> None:
        self.name = f"static:{variant}@{cores:g}"
        self.notes: list[str] = []
        rungs = ladder(spec, variant)
        size = rung_for(rungs, cores) if rungs and profile.runs_on_cpu(variant) else Rung(cores)
        if abs(size.total_cores - cores) > 1e-9 or size.replicas != 1:
            self.notes.append(f"{cores:g} cores within the spec's bounds: {size.describe()} cores")
        self.plan = static_plan(spec, profile, {variant: size.cpu_cores}, replicas={variant: size.replicas})
        self.interval_s = float(spec.adaptation.interval_s)
        self.first_tick_s = math.inf

    def initial_plan(self) -> Plan:
        return self.plan

    def decide(self, obs: Observation, state: OursState) -> tuple[Decision, OursState]:
        return Decision(None), state
