"""The controller step: one pure function from (time, observations, what runs) to (what to apply, what to record).

``Controller.step(state, now_s, history_rps, actuator) -> (Step, state)`` owns, for every mode:

* **the schedule**: the policy's first tick (``first_tick_s`` after the first step) and its
  ``interval_s``; between ticks its cheap ``between_ticks`` check at every step; ``decide`` again at
  the next step when a decision asks for it (``replan_now``). The policy's clock is seconds since the
  first step, whatever the mode's clock is (Unix time, a monotonic clock, trace seconds).
* **transitions**: while the actuator converges to a new configuration (make-before-break,
  :func:`~infadapter.control.actuation.actuation`) no decision is taken — for at most
  ``settle_timeout_s``, after which the policy decides again on what is ready.
* **the budget as a cap**: what the actuator is asked to hold never exceeds ``budget · (1 + surge_ratio)``
  (the spec's ``budget.surge``, default :data:`~infadapter.control.budget.DEFAULT_SURGE_RATIO`);
  a make-before-break that would is staged (:func:`~infadapter.control.budget.within_cap`).
* **the cold start**, one rule: what the actuator reports running is adopted as the current plan;
  when nothing runs, the policy's own ``initial_plan()`` if it has one (static, VPA), else its decision
  on the observed history with nothing running, else (no observed load: a new service) the exact plan
  for zero load — the cheapest variant at its smallest size. It never reads the future.
* **holding**: when no second of the last ``stale_s`` was observed (Prometheus gone, NaN = unknown)
  the policy is not consulted; ticks record ``metrics_unavailable`` and what runs stays.
* **acting only on change**: :attr:`Step.action` is None unless the desired sizes or split differ from
  what was last sent (or from what the actuator says it converges to, e.g. after a restart).
* **what to record**: one :class:`~infadapter.control.record.DecisionRecord` per decision, classified
  by :func:`~infadapter.control.record.classify`.

Pure: no clock, no I/O; the actuator's latencies (:class:`~infadapter.control.actuation.Latencies`)
are parameters, and :attr:`Step.wake_s` says when the controller expects the next change (a cold
start done, a split confirmed): a mode may then call ``Controller.settle``, which moves the transition
along without deciding, rather than wait for its next step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from infadapter.control.actuation import (
    Action,
    ActuatorState,
    actuation,
    converged,
    covered,
    plan_of_state,
    provisioned_capacity_rps,
    same_weights,
)
from infadapter.control.budget import DEFAULT_SURGE_RATIO, Cap, within_cap
from infadapter.control.record import DecisionRecord, classify, record_from_plan
from infadapter.latencies import Latencies
from infadapter.planning import Plan, plan_for_load
from infadapter.policies.base import Decision, FloatArray, Observation, Policy
from infadapter.profiles import Profile
from infadapter.spec import InferenceServiceSpec, ResizePolicy

#: times within this are the same instant
EPS_S = 1e-6
#: a staged switch looks again at least this long after its resize (with an instant resize, as in the embedded mode,
#: a wake EPS_S later spun the loop a million times a second while a stage waited for a cold start)
STAGE_POLL_S = 0.1


def _held(target: Plan, action: Action) -> bool:
    """``action`` keeps capacity ``target`` does not want: a leaving variant, a larger size or more replicas."""
    for t in action.variants:
        v = target.variant(t.name)
        if v is None or t.cpu_cores > v.cpu_cores + EPS_S or t.replicas > v.replicas:
            return True
    return False


def policy_options(policy_name: str, latencies: Latencies) -> dict[str, Any]:
    """What a named policy is told of the actuator: ``ours`` and ``oracle`` price a cold start with its start-up time."""
    return {"startup_s": latencies.startup_s} if policy_name in ("ours", "oracle") else {}


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)


@runtime_checkable
class Checkpointable(Protocol):
    """A policy state that can be written to a checkpoint."""

    def to_dict(self) -> dict[str, Any]: ...


@runtime_checkable
class StartsOnAPlan(Protocol):
    """A policy that names the plan it starts on (static plans, VPA)."""

    def initial_plan(self) -> Plan: ...


@dataclass(frozen=True)
class ControlState:
    """The controller's memory between steps (times relative to the first step, ``started_s``).

    ``target``: the plan in force (what the actuator converges to; the policy's ``current``);
    ``since_s``: when the transition to it began (None once converged); ``expected_s``: when the
    latencies say it serves; ``sent``: the last action handed to the actuator.
    """

    policy: Any = None
    started_s: float | None = None
    next_tick_s: float = 0.0
    replan: bool = False
    target: Plan | None = None
    in_place: bool = True
    since_s: float | None = None
    expected_s: float = 0.0
    sent: Action | None = None


@dataclass(frozen=True)
class Step:
    """What one step returns: ``action`` to apply (None: nothing changes), ``record`` of the decision
    taken (None: none was due), ``reconfigured`` (a new configuration became the target) and
    ``wake_s`` (the mode's clock at which the next change is expected; ``inf``: none pending)."""

    action: Action | None
    record: DecisionRecord | None
    reconfigured: bool = False
    wake_s: float = math.inf


class Controller:
    """One service's controller: the spec, its profile, a policy, the actuator's latencies."""

    def __init__(
        self,
        spec: InferenceServiceSpec,
        profile: Profile,
        policy: Policy[Any],
        *,
        latencies: Latencies | None = None,
        namespace: str = "default",
        name: str | None = None,
        stale_s: float = 30.0,
        settle_timeout_s: float = 120.0,
        surge_ratio: float | None = None,
        cap: Cap | None = None,
    ) -> None:
        self.spec = spec
        self.profile = profile
        self.policy = policy
        self.latencies = latencies or Latencies()
        self.namespace = namespace
        self.name = name or spec.model_name
        self.stale_s = float(stale_s)
        self.settle_timeout_s = float(settle_timeout_s)
        # the spec's budget.surge (docs/INTERFACES.md), the default where a spec predates it
        spec_surge = getattr(spec.budget, "surge", None)
        surge = surge_ratio if surge_ratio is not None else float(spec_surge if spec_surge is not None else DEFAULT_SURGE_RATIO)
        # a pool member's cap comes from its pool (infadapter.operator.pool: room to give cores back)
        self.cap = cap if cap is not None else Cap.of(spec, surge)

    def initial_state(self) -> ControlState:
        return ControlState(policy=self.policy.initial_state(), next_tick_s=float(self.policy.first_tick_s))

    def state_to_dict(self, state: ControlState) -> dict[str, Any]:
        """A JSON-safe checkpoint (infinite times as None); the last action is not kept: after a restart the
        actuator's report says what runs."""
        policy = state.policy.to_dict() if isinstance(state.policy, Checkpointable) else None

        def time_s(value: float | None) -> float | None:
            return value if value is not None and math.isfinite(value) else None

        return {
            "policy": policy,
            "started_s": time_s(state.started_s),
            "next_tick_s": time_s(state.next_tick_s),
            "replan": state.replan,
            "target": state.target.to_dict() if state.target is not None else None,
            "in_place": state.in_place,
            "since_s": time_s(state.since_s),
            "expected_s": time_s(state.expected_s),
        }

    def state_from_dict(self, raw: Mapping[str, Any]) -> ControlState:
        """The state :meth:`state_to_dict` wrote (InvalidInput for a malformed plan)."""
        fresh = self.initial_state()
        policy = self.policy.state_from_dict(raw["policy"]) if isinstance(raw.get("policy"), dict) else fresh.policy
        target = raw.get("target")
        next_tick, expected = _seconds(raw.get("next_tick_s")), _seconds(raw.get("expected_s"))
        return ControlState(
            policy=policy,
            started_s=_seconds(raw.get("started_s")),
            next_tick_s=math.inf if next_tick is None else next_tick,
            replan=bool(raw.get("replan", False)),
            target=Plan.from_dict(target) if isinstance(target, Mapping) else None,
            in_place=bool(raw.get("in_place", True)),
            since_s=_seconds(raw.get("since_s")),
            expected_s=expected or 0.0,
        )

    # ------------------------------------------------------------------ the step
    def step(self, state: ControlState, now_s: float, history_rps: FloatArray, actuator: ActuatorState) -> tuple[Step, ControlState]:
        """One step at ``now_s`` (the mode's clock): see the module docstring."""
        if state.started_s is None:
            state = replace(state, started_s=now_s)
        at_s = now_s - (state.started_s or 0.0)
        available = self.metrics_available(history_rps)
        record: DecisionRecord | None = None
        reconfigured = False
        if state.target is None:
            state, record = self._cold_start(state, now_s, at_s, history_rps, actuator, available)
            reconfigured = record is not None
        state = self._settled(state, actuator)
        if record is None and not self._settling(state, at_s):
            state, record, reconfigured = self._decide(state, now_s, at_s, history_rps, actuator, available)
        return self._act(state, at_s, actuator, record, reconfigured)

    def settle(self, state: ControlState, now_s: float, actuator: ActuatorState) -> tuple[Step, ControlState]:
        """Move a transition along at ``now_s`` without deciding (no observation): for a mode woken at
        :attr:`Step.wake_s` between its periodic steps."""
        if state.target is None or state.started_s is None:
            return Step(None, None), state
        return self._act(self._settled(state, actuator), now_s - state.started_s, actuator, None, False)

    def _settled(self, state: ControlState, actuator: ActuatorState) -> ControlState:
        if state.since_s is not None and state.target is not None and converged(state.target, actuator):
            return replace(state, since_s=None)
        return state

    def _settling(self, state: ControlState, at_s: float) -> bool:
        return state.since_s is not None and at_s < state.since_s + self.settle_timeout_s

    def _act(self, state: ControlState, at_s: float, actuator: ActuatorState, record: DecisionRecord | None, reconfigured: bool) -> tuple[Step, ControlState]:
        assert state.target is not None  # the cold start always sets one
        in_place = state.in_place and actuator.in_place
        shrink = self._early_shrink and state.since_s is not None and at_s >= state.expected_s - self.latencies.in_place_s - EPS_S
        instant = self.latencies.in_place_s <= 0.0  # a resize acts at once: the split sent with it is for the new sizes
        full = actuation(state.target, actuator, self.profile, in_place=in_place, shrink=shrink, instant=instant)
        action = within_cap(full, state.target, actuator, self.profile, self.spec, self.cap, in_place=in_place, instant=instant, weights_lag=self._weights_lag)
        send = action if self._changed(action, state.sent, actuator) else None
        wake = self._wake_s(state, action, actuator, at_s)
        if action is not full:  # a staged switch goes on as soon as a resize has taken effect
            wake = min(wake, at_s + max(self.latencies.in_place_s, STAGE_POLL_S))
        state = replace(state, sent=action if send is not None else state.sent)
        return Step(send, record, reconfigured, wake + (state.started_s or 0.0)), state

    def metrics_available(self, history_rps: FloatArray) -> bool:
        """Some second of the last ``stale_s`` was observed."""
        tail = history_rps[-max(1, math.ceil(self.stale_s)) :]
        return bool(tail.size) and not bool(np.all(np.isnan(tail)))

    def _observation(self, at_s: float, history_rps: FloatArray, current: Plan | None, actuator: ActuatorState) -> Observation:
        return Observation(at_s, history_rps, current, provisioned_capacity_rps(self.profile, actuator))

    def _cold_start(
        self, state: ControlState, now_s: float, at_s: float, history_rps: FloatArray, actuator: ActuatorState, available: bool
    ) -> tuple[ControlState, DecisionRecord | None]:
        """Adopt what runs, or pick the first plan (module docstring); records a decision only for the latter."""
        in_place = self.spec.adaptation.resize_policy == ResizePolicy.IN_PLACE_OR_RECREATE  # for an adopted plan
        running = plan_of_state(actuator, self.spec, self.profile)
        if running is not None:
            return replace(state, target=running, in_place=in_place), None
        decision: Decision | None = None
        if isinstance(self.policy, StartsOnAPlan):
            plan = self.policy.initial_plan()
        else:
            if available:
                decision, policy_state = self.policy.decide(self._observation(at_s, history_rps, None, actuator), state.policy)
                state = replace(state, policy=policy_state, replan=decision.replan_now, next_tick_s=self._next_tick(state.next_tick_s, at_s))
            plan = decision.plan if decision is not None and decision.plan is not None else plan_for_load(self.spec, self.profile, 0.0)
        in_place = decision.resize == "in_place" if decision is not None else in_place
        state = replace(state, target=plan, in_place=in_place, since_s=at_s, expected_s=at_s + self._expected_s(plan, None, in_place))
        return state, self._record(now_s, plan, None, decision, True)

    def _decide(
        self, state: ControlState, now_s: float, at_s: float, history_rps: FloatArray, actuator: ActuatorState, available: bool
    ) -> tuple[ControlState, DecisionRecord | None, bool]:
        """A tick, a burst check or a requested re-plan: consult the policy (or record the hold when blind)."""
        due = at_s >= state.next_tick_s - EPS_S
        if not available:
            if not due:
                return state, None, False
            return replace(state, next_tick_s=self._next_tick(state.next_tick_s, at_s)), self._record(now_s, None, state.target, None, available), False
        obs = self._observation(at_s, history_rps, state.target, actuator)
        if not (due or state.replan or self.policy.between_ticks(obs, state.policy)):
            return state, None, False
        decision, policy_state = self.policy.decide(obs, state.policy)
        if due:
            state = replace(state, next_tick_s=self._next_tick(state.next_tick_s, at_s))
        state = replace(state, policy=policy_state, replan=decision.replan_now)
        previous = state.target
        plan = decision.plan
        if plan is None or (previous is not None and plan.same_config(previous) and same_weights(plan.weights(), previous.weights())):
            return state, self._record(now_s, None, previous, decision, available), False
        reconfigured = not plan.same_config(previous)
        if reconfigured:
            in_place = decision.resize == "in_place"
            state = replace(state, since_s=at_s, expected_s=at_s + self._expected_s(plan, previous, in_place), in_place=in_place)
        return replace(state, target=plan), self._record(now_s, plan, previous, decision, available), reconfigured

    def _next_tick(self, next_tick_s: float, at_s: float) -> float:
        """The first tick after ``at_s`` on the policy's grid (a late tick keeps the phase)."""
        interval = max(float(self.policy.interval_s), EPS_S)
        if not math.isfinite(next_tick_s):
            return next_tick_s
        while next_tick_s <= at_s + EPS_S:
            next_tick_s += interval
        return next_tick_s

    def _record(self, now_s: float, plan: Plan | None, previous: Plan | None, decision: Decision | None, available: bool) -> DecisionRecord:
        reason = classify(plan, previous, metrics_available=available)
        forecast = decision.forecast_rps if decision is not None else math.nan
        observed = decision.observed_rps if decision is not None else math.nan
        return record_from_plan(self.namespace, self.name, now_s, plan, previous, observed_rps=observed, forecast_rps=forecast, reason=reason)

    # ------------------------------------------------------------------ acting
    def _expected_s(self, plan: Plan, previous: Plan | None, in_place: bool) -> float:
        """How long until ``plan`` serves, by the actuator's latencies: the slowest cold start or resize."""
        slowest = 0.0
        for v in plan.variants:
            before = previous.variant(v.name) if previous is not None else None
            if before is None or v.replicas > before.replicas or (abs(v.cpu_cores - before.cpu_cores) > 1e-9 and not in_place):
                slowest = max(slowest, self.latencies.cold_start_s(self.spec, v.name))
            elif abs(v.cpu_cores - before.cpu_cores) > 1e-9:
                slowest = max(slowest, self.latencies.in_place_s)
        return slowest

    def _wake_s(self, state: ControlState, action: Action, actuator: ActuatorState, at_s: float) -> float:
        """When (relative) the next change is due: the expected end of a cold start, or a split the router must confirm."""
        assert state.target is not None
        if state.since_s is None:
            return math.inf
        if covered(state.target, actuator, self.profile):
            # a leaving variant, or a planned one above its planned capacity, waits for the router to confirm the split
            return at_s + self.latencies.weights_s if _held(state.target, action) else math.inf
        due = [state.expected_s]
        if self._early_shrink and self._shrinking(state.target, actuator, state.in_place and actuator.in_place):  # to go with the new capacity
            due.append(state.expected_s - self.latencies.in_place_s)
        return min((t for t in due if t > at_s + EPS_S), default=math.inf)

    @property
    def _weights_lag(self) -> bool:
        """A new split takes time to reach the router (the operator): what a variant sends is then not yet what it gets."""
        return self.latencies.weights_s > 0.0

    @property
    def _early_shrink(self) -> bool:
        """An in-place shrink may go one resize ahead of the new capacity, to take effect with it: only where the
        split that then moves the load off it acts at once (else the shrunk variant gets its old share until the
        new split arrives; it waits for the router instead, :func:`~infadapter.control.actuation.relieved`)."""
        return not self._weights_lag

    @staticmethod
    def _shrinking(target: Plan, actuator: ActuatorState, in_place: bool) -> bool:
        """Some planned variant is to get smaller in place."""
        sizes = {v.name: v.cpu_cores for v in target.variants}
        return in_place and any(v.name in sizes and v.cpu_cores > sizes[v.name] + 1e-9 for v in actuator.running)

    @staticmethod
    def _changed(action: Action, sent: Action | None, actuator: ActuatorState) -> bool:
        """The desired sizes or split differ from what was last sent (the actuator's report before anything was)
        or from what the actuator says it converges to (a restart, an edit by hand)."""
        if sent is not None and (set(action.variants) != set(sent.variants) or not same_weights(action.weights, sent.weights)):
            return True
        if sent is None and not same_weights(action.weights, actuator.weights):
            return True
        for target in action.variants:
            running = actuator.variant(target.name)
            if running is None or running.replicas != target.replicas or abs(running.cpu_cores - target.cpu_cores) > 1e-9:
                return True
        return any(running.replicas > 0 and action.variant(running.name) is None for running in actuator.variants)
