"""``replay``: the plans another run decided, each at the second it was decided.

For a fidelity check that separates the server model from the control loop: a measured run's decisions
(``(seconds since its load began, plan, how it resized)``) are replayed through the simulator's controller
and actuator, so the simulated servers run the plans the real ones ran, with the mode's actuation delays.
A plan is applied at the first step at or after its time (between ticks too); nothing else is decided.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from infadapter.planning import Plan
from infadapter.policies.base import Decision, Observation, Resize, StateDict

#: one replayed decision: when (seconds from the start), the plan, how running variants were resized
Scheduled = tuple[float, Plan, Resize]


@dataclass(frozen=True)
class ReplayState(StateDict):
    """How many of the scheduled plans have been applied."""

    applied: int = 0

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ReplayState:
        return cls(int(raw.get("applied", 0)))


class ReplayPolicy:
    """``replay``: ``schedule``'s plans at their times (see the module docstring)."""

    def __init__(self, schedule: Sequence[Scheduled], *, interval_s: float = 1.0) -> None:
        times = [t for t, _, _ in schedule]
        if any(not math.isfinite(t) for t in times) or times != sorted(times):
            raise ValueError("schedule: the times must be finite and in order")
        self.name = "replay"
        self.schedule = tuple(schedule)
        self.interval_s = float(interval_s)
        self.first_tick_s = 0.0

    def initial_state(self) -> ReplayState:
        return ReplayState()

    def state_from_dict(self, raw: dict[str, Any]) -> ReplayState:
        return ReplayState.from_dict(raw)

    def _due(self, now_s: float, state: ReplayState) -> int:
        """How many scheduled plans are due at ``now_s`` (all of them applied once the state reaches it)."""
        due = state.applied
        while due < len(self.schedule) and self.schedule[due][0] <= now_s + 1e-9:
            due += 1
        return due

    def between_ticks(self, obs: Observation, state: ReplayState) -> bool:
        return self._due(obs.now_s, state) > state.applied

    def decide(self, obs: Observation, state: ReplayState) -> tuple[Decision, ReplayState]:
        """The newest plan due (None when none has come due since the last decision)."""
        due = self._due(obs.now_s, state)
        if due == state.applied:
            return Decision(None), state
        _, plan, resize = self.schedule[due - 1]
        return Decision(plan, plan.load_rps, resize=resize), ReplayState(due)
