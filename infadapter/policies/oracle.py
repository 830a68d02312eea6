"""``oracle`` knows the trace: at every tick it plans exactly for the true peak of the next
``interval_s + lead_s`` seconds (in place, the same price of loading, no stabilisation) — a perfect-forecast
reference at the same tick rate (not a strict lower bound: it cannot re-weight within a tick).
"""

from __future__ import annotations

import math

import numpy as np

from infadapter.policies.base import Decision, FloatArray, Observation, Resize
from infadapter.policies.exact import PlanCache, loading_cost, objective_of, resize_mode, serves
from infadapter.policies.ours import NoReactiveLayer, OursState
from infadapter.profiles import Profile
from infadapter.spec import InferenceServiceSpec


class OraclePolicy(NoReactiveLayer):
    """``oracle``: exact plans for the true peak of the next window (see the module docstring)."""

    def __init__(
        self,
        spec: InferenceServiceSpec,
        profile: Profile,
        *,
        future_rps: FloatArray | None = None,
        interval_s: float = 10.0,
        lead_s: float = 2.0,
        first_tick_s: float = 0.0,
        resize_tolerance: float = 0.0005,
        startup_s: float = 4.0,
        amortise_s: float = 60.0,
    ) -> None:
        if future_rps is None:
            raise ValueError("the oracle needs the trace it will be run on (future_rps)")
        self.name = "oracle"
        self.future_rps = np.asarray(future_rps, dtype=np.float64)
        self.interval_s = float(interval_s)
        self.first_tick_s = float(first_tick_s)
        self.lead_s = float(lead_s)
        self.resize_tolerance = float(resize_tolerance)
        self.startup_s = float(startup_s)
        self.amortise_s = float(amortise_s)
        self.spec = spec
        self.profile = profile
        self.resize: Resize = resize_mode(spec)
        self.plans = PlanCache(spec, profile)
        self.notes: list[str] = []

    def decide(self, obs: Observation, state: OursState) -> tuple[Decision, OursState]:
        begin = max(0, int(obs.now_s))
        window = self.future_rps[begin : begin + int(self.interval_s + self.lead_s)]
        window = window[~np.isnan(window)]
        load = float(window.max()) if window.size else 0.0
        plan = self.plans.plan(load, obs.current)
        observed = float(obs.history_rps[-1]) if obs.history_rps.size else math.nan
        current = obs.current
        if (
            current is not None
            and serves(current, load)
            and plan.status == "optimal"
            and (
                objective_of(self.spec, self.profile, current, load)
                >= plan.objective - self.resize_tolerance - loading_cost(plan, current, self.spec, self.startup_s, self.amortise_s)
            )
        ):
            return Decision(None, load, observed, resize=self.resize), OursState((), load)
        if plan.same_config(obs.current):
            return Decision(None, load, observed, resize=self.resize), OursState((), load)
        return Decision(plan, load, observed, resize=self.resize), OursState((), load)
