"""One tick of one InferenceService, as named steps: observe → decide (forecast + plan) → act → report.

Nothing here imports kopf: the handlers call :func:`run_tick` with the resource's parsed view and a
:class:`Runtime` (API client, Prometheus observer, settings) and apply the returned status patch and
events. The decision step is the pluggable policy (``infadapter.policies``); its state is checkpointed in
``status.checkpoint`` with the plan now applied in ``status.plan``, so a restarted operator resumes
with the same plan and policy state and changes nothing that is already right.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from infadapter.errors import ApplyFailed, InfAdapterError, InvalidInput, InvalidProfile, MetricsUnavailable
from infadapter.metrics import DECISION_REASONS, DecisionLog, InfAdapterMetrics, Observer, event_fields, record_from_plan
from infadapter.metrics.decisionlog import DecisionReason
from infadapter.operator import policy as policies
from infadapter.operator.settings import OperatorConfig
from infadapter.operator.status import Condition, merge_conditions, rounded, status_changes
from infadapter.planning import Plan, plan_for_load
from infadapter.profiles import Profile, load_profile, profile_from_dict
from infadapter.runtime import kube
from infadapter.runtime.kube_apply import ApplyOptions, ApplyResult, apply_plan
from infadapter.runtime.kube_client import KubeApi, api_path
from infadapter.spec import InferenceServiceSpec, Mode

log = logging.getLogger(__name__)

PROFILE_KEY = "profile.yaml"
#: how long a looked-up profile ConfigMap (or its absence) is trusted before it is read again
PROFILE_TTL_S = 30.0


@dataclass(frozen=True)
class Resource:
    """The parts of the custom resource a tick reads."""

    owner: kube.Owner
    generation: int
    annotations: Mapping[str, str]
    spec: InferenceServiceSpec
    status: Mapping[str, Any]

    @property
    def paused(self) -> bool:
        return str(self.annotations.get(kube.ANNOTATION_PAUSED, "")).lower() in ("true", "1", "yes")

    @property
    def profile_configmap(self) -> str:
        return self.annotations.get(kube.ANNOTATION_PROFILE) or f"{self.owner.name}-profile"


@dataclass
class Memory:
    """Per-resource state kept in the operator's memory (rebuilt from status after a restart)."""

    key: str = ""
    policy: policies.PolicyLike | None = None
    observation_cls: type[Any] | None = None
    state: Any = None
    last_tick_s: float = -math.inf
    in_place_supported: bool | None = None
    metrics_ok: bool | None = None
    metrics_error: str | None = None
    last_error: str = ""
    progressing: bool = False  # a reconfiguration is under way: reconcile at every timer wake
    checkpointed_s: float = -math.inf
    profile: Profile | None = None
    profile_read_s: float = -math.inf


@dataclass
class Runtime:
    config: OperatorConfig
    api: KubeApi
    observer: Observer
    metrics: InfAdapterMetrics | None = None
    decisions: DecisionLog = field(default_factory=DecisionLog)
    clock: Callable[[], float] = time.time
    _profiles: dict[tuple[str, str, str], Profile] = field(default_factory=dict)
    tick_seconds: list[float] = field(default_factory=list)
    #: per named step (observe, decide, act), the last durations in seconds (bounded)
    step_seconds: dict[str, list[float]] = field(default_factory=dict)

    def timed(self, step: str, started: float) -> None:
        samples = self.step_seconds.setdefault(step, [])
        samples.append(time.perf_counter() - started)
        if len(samples) > 10_000:
            del samples[:5_000]


@dataclass
class TickOutcome:
    status: dict[str, Any]  # only the keys that changed
    events: list[tuple[str, str, str]]  # (type Normal|Warning, reason, message)
    plan: Plan | None
    applied: ApplyResult | None = None


# --------------------------------------------------------------------------- steps


async def load_service_profile(rt: Runtime, res: Resource) -> Profile:
    """The profile: ConfigMap ``<name>-profile`` (or the one the annotation names), else the default file."""
    ns, name = res.owner.namespace, res.profile_configmap
    cm = await rt.api.get(api_path("v1", "configmaps", ns, name))
    if cm is not None:
        text = (cm.get("data") or {}).get(PROFILE_KEY)
        if text is None:
            raise InvalidProfile([], f"ConfigMap {ns}/{name} has no key {PROFILE_KEY!r}")
        key = (ns, name, str(cm.get("metadata", {}).get("resourceVersion", hashlib.sha256(text.encode()).hexdigest())))
        if key not in rt._profiles:
            try:
                raw = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise InvalidProfile([], f"ConfigMap {ns}/{name}: {PROFILE_KEY} is not YAML: {exc}") from None
            rt._profiles = {k: v for k, v in rt._profiles.items() if k[:2] != (ns, name)}
            rt._profiles[key] = profile_from_dict(raw, f"ConfigMap {ns}/{name}")
        return rt._profiles[key]
    if rt.config.default_profile:
        key = ("", rt.config.default_profile, str(res.spec.slo.latency_ms))
        if key not in rt._profiles:
            rt._profiles[key] = await asyncio.to_thread(load_profile, rt.config.default_profile, res.spec.slo.latency_ms)
        return rt._profiles[key]
    raise InvalidProfile([], f"no profile: create ConfigMap {ns}/{name} with key {PROFILE_KEY} (or set the operator's default profile)")


async def observe(rt: Runtime, res: Resource, now_s: float) -> npt.NDArray[np.float64]:
    """Per-second arrivals over the forecast window, from the router's counters in Prometheus."""
    window = min(res.spec.forecast.window_s, rt.config.max_history_s)
    try:
        history = await asyncio.to_thread(rt.observer.arrival_history_rps, res.owner.namespace, res.owner.name, now_s - window, now_s)
    except MetricsUnavailable:
        raise
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:  # malformed answers
        raise MetricsUnavailable(f"Prometheus answered with malformed data: {type(exc).__name__}: {exc}") from exc
    if history.size == 0 or bool(np.all(np.isnan(history))):
        raise MetricsUnavailable(f"no router traffic series for {res.owner.namespace}/{res.owner.name} in the last {window} s")
    return history


def prepare_policy(rt: Runtime, mem: Memory, res: Resource, profile: Profile) -> None:
    """(Re)build the policy when the spec or profile changed; restore its state from the checkpoint."""
    key = f"{res.generation}:{id(profile)}"
    if mem.policy is not None and mem.key == key:
        return
    policy, observation_cls = policies.make(rt.config.policy, res.spec, profile)
    checkpoint = res.status.get("checkpoint") or {}
    state = policy.initial_state()
    raw = checkpoint.get("policy") if isinstance(checkpoint, Mapping) else None
    if isinstance(raw, dict) and checkpoint.get("name") == policy.name:
        try:
            state = policy.state_from_dict(raw)
        except (InfAdapterError, KeyError, TypeError, ValueError) as exc:
            log.warning("ignoring the checkpoint of %s/%s: %s", res.owner.namespace, res.owner.name, exc)
    mem.policy, mem.observation_cls, mem.state, mem.key = policy, observation_cls, state, key
    if rt.metrics is not None:
        rt.metrics.describe_service(
            res.owner.namespace,
            res.owner.name,
            slo_latency_s=res.spec.slo.latency_ms / 1000.0,
            slo_target_ratio=res.spec.slo.percentile / 100.0,
            variant_accuracy={v.name: v.accuracy for v in res.spec.variants},
        )


def current_plan(res: Resource) -> Plan | None:
    raw = res.status.get("plan")
    if not isinstance(raw, Mapping) or not raw.get("variants"):
        return None
    try:
        plan = Plan.from_dict(raw)
    except InvalidInput:
        return None
    names = set(res.spec.variant_names)
    return plan if all(v.name in names for v in plan.variants) else None


def decide(mem: Memory, res: Resource, profile: Profile, history: npt.NDArray[np.float64] | None, now_s: float) -> tuple[Plan | None, str, float, float]:
    """(plan or None = keep, reason, observed rps, forecast rps). Pure apart from the policy state."""
    current = current_plan(res)
    if history is None:
        if current is None:  # nothing runs yet and no metrics: start with the plan for no load
            return plan_for_load(res.spec, profile, 0.0, None), "scale_up", math.nan, math.nan
        return None, "metrics_unavailable", math.nan, math.nan
    assert mem.policy is not None and mem.observation_cls is not None
    capacity = current.capacity_rps if current is not None else 0.0
    obs = mem.observation_cls(now_s=now_s, history_rps=history, current=current, provisioned_capacity_rps=capacity)
    decision, mem.state = mem.policy.decide(obs, mem.state)
    plan = decision.plan
    if plan is None and current is None:
        plan = plan_for_load(res.spec, profile, 0.0 if math.isnan(decision.forecast_rps) else decision.forecast_rps, None)
    return plan, str(decision.reason), float(decision.observed_rps), float(decision.forecast_rps)


async def act(rt: Runtime, mem: Memory, res: Resource, plan: Plan) -> ApplyResult:
    options = ApplyOptions(images=rt.config.images, in_place_supported=mem.in_place_supported, resize_wait_s=rt.config.resize_wait_s)
    result = await apply_plan(rt.api, res.owner, res.spec, plan, options)
    mem.in_place_supported = result.in_place_supported
    return result


def _iso(now_s: float) -> str:
    return datetime.datetime.fromtimestamp(now_s, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def report(
    res: Resource,
    mem: Memory,
    *,
    now_s: float,
    plan: Plan | None,
    previous: Plan | None,
    reason: str,
    observed_rps: float,
    forecast_rps: float,
    metrics_error: str | None,
    applied: ApplyResult | None,
    error: str | None,
) -> dict[str, Any]:
    """The desired status (pure): conditions, plan, loads, accuracy, cost, checkpoint."""
    spec = res.spec
    mode = "Paused" if res.paused else spec.mode.value
    shown = plan if plan is not None else previous
    conditions = [
        Condition("MetricsAvailable", metrics_error is None, "Observed" if metrics_error is None else "PrometheusUnavailable",
                  "router arrival rate read from Prometheus" if metrics_error is None else f"holding the last plan: {metrics_error}"),
    ]  # fmt: skip
    if shown is not None:
        feasible = shown.status != "infeasible"
        conditions.append(Condition("PlanFeasible", feasible, "Optimal" if feasible else "Infeasible",
                                    "the plan serves the predicted load within the budget" if feasible else
                                    f"best effort: serves {shown.served_rps:.1f} of {shown.load_rps:.1f} rps within the budget"))  # fmt: skip
    if error:
        conditions.append(Condition("Degraded", True, "ApplyFailed", error))
    else:
        conditions.append(Condition("Degraded", False, "AsExpected", ""))
    if mode == "Auto" and applied is not None:
        progressing = not applied.converged
        waiting = sorted({v.name for v in shown.variants} - applied.ready) if shown else []
        message = f"waiting for {', '.join(waiting)} to be ready" if waiting else ("rolling out" if progressing else "all variants ready, weights applied")
        conditions.append(Condition("Progressing", progressing, "Reconfiguring" if progressing else "Converged", message))
        conditions.append(resize_condition(applied))
        ready = bool(applied.ready) and not error
        conditions.append(Condition("Ready", ready, "Serving" if ready else "NoReadyVariant",
                                    f"serving through {', '.join(sorted(applied.ready))}" if ready else "no variant has a ready replica yet"))  # fmt: skip
    elif mode == "Auto":
        conditions.append(Condition("Ready", False, "ApplyFailed" if error else "Pending", error or "nothing applied yet"))
    else:
        why = {"Recommend": "Recommend mode: the plan is only reported", "Off": "Off mode: nothing is observed or changed",
               "Paused": f"paused by the {kube.ANNOTATION_PAUSED} annotation"}[mode]  # fmt: skip
        conditions.append(Condition("Progressing", False, mode, why))
        conditions.append(Condition("Ready", None, mode, why))
    status: dict[str, Any] = {
        "observedGeneration": res.generation,
        "conditions": merge_conditions(res.status.get("conditions") or [], conditions, _iso(now_s), res.generation),
    }
    if shown is not None:
        status.update(
            plan=shown.to_dict() | {"solve_ms": round(shown.solve_ms, 1)},
            summary=shown.describe(),
            variantCount=len(shown.variants),
            expectedAccuracy=rounded(shown.accuracy, 4),
            costCpu=rounded(shown.cost_cpu, 3),
            costGpu=int(shown.cost_gpu),
            objective=rounded(shown.objective, 4),
            solveMs=rounded(shown.solve_ms, 1),
        )
    if not math.isnan(observed_rps):
        status["observedLoadRps"] = rounded(observed_rps, 1)
    if not math.isnan(forecast_rps):
        status["predictedLoadRps"] = rounded(forecast_rps, 1)
    if plan is not None and not plan.same_config(previous):
        status["decidedAt"] = _iso(now_s)
        status["reason"] = reason
    # the policy state changes at every tick: it is written with each new plan (and once after a start), never
    # on its own, so a steady service causes no writes; a restart resumes from the state of the last decision
    due_checkpoint = math.isinf(mem.checkpointed_s) or "decidedAt" in status
    if mem.policy is not None and hasattr(mem.state, "to_dict") and due_checkpoint:
        status["checkpoint"] = {"name": mem.policy.name, "policy": _json_safe(mem.state.to_dict())}
    return status


def resize_condition(applied: ApplyResult) -> Condition:
    """In-place resize as the kubelets report it: done, waited on (Deferred, InProgress), or replaced by a rollout."""
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


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 6)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


# --------------------------------------------------------------------------- the tick


def due(mem: Memory, res: Resource, now_s: float) -> bool:
    return now_s - mem.last_tick_s >= res.spec.adaptation.interval_s - 1e-3


def settle(mem: Memory, applied: ApplyResult | None, error: str | None) -> None:
    """Remember the outcome of acting: the last error (for event de-duplication) and whether a change is under way."""
    mem.last_error = error or ""
    mem.progressing = error is not None or (applied is not None and not applied.converged)


async def act_reporting(
    rt: Runtime, mem: Memory, res: Resource, target: Plan, events: list[tuple[str, str, str]]
) -> tuple[ApplyResult | None, str | None]:
    """Act on ``target``; an ApplyFailed becomes an error string and (once per distinct error) a Warning event."""
    applied: ApplyResult | None = None
    error: str | None = None
    try:
        applied = await act(rt, mem, res, target)
    except ApplyFailed as exc:
        error = str(exc)
        if mem.last_error != error:
            events.append(("Warning", "ApplyFailed", error))
    settle(mem, applied, error)
    return applied, error


async def run_tick(rt: Runtime, mem: Memory, res: Resource) -> TickOutcome:
    started = time.perf_counter()
    now_s = rt.clock()
    mem.last_tick_s = now_s
    events: list[tuple[str, str, str]] = []
    previous = current_plan(res)
    if res.paused or res.spec.mode == Mode.OFF:
        desired = report(res, mem, now_s=now_s, plan=None, previous=previous, reason="hold", observed_rps=math.nan,
                         forecast_rps=math.nan, metrics_error=None, applied=None, error=None)  # fmt: skip
        desired.pop("checkpoint", None)
        return TickOutcome(status_changes(res.status, desired), events, None)
    try:
        if mem.profile is None or now_s - mem.profile_read_s >= PROFILE_TTL_S or mem.key.split(":")[0] != str(res.generation):
            mem.profile, mem.profile_read_s = await load_service_profile(rt, res), now_s
        profile = mem.profile
    except InvalidInput as exc:
        mem.profile = None
        message = str(exc).replace("\n", " ")
        if mem.last_error != message:
            events.append(("Warning", "ProfileUnavailable", message))
        mem.last_error = message
        desired = report(res, mem, now_s=now_s, plan=None, previous=previous, reason="hold", observed_rps=math.nan,
                         forecast_rps=math.nan, metrics_error=None, applied=None, error=message)  # fmt: skip
        return TickOutcome(status_changes(res.status, desired), events, None)
    prepare_policy(rt, mem, res, profile)
    metrics_error: str | None = None
    history: npt.NDArray[np.float64] | None = None
    try:
        step = time.perf_counter()
        history = await observe(rt, res, now_s)
        rt.timed("observe", step)
    except MetricsUnavailable as exc:
        metrics_error = str(exc)
        if mem.metrics_ok is not False:
            events.append(("Warning", "MetricsUnavailable", f"holding the last plan: {metrics_error}"))
    mem.metrics_ok = metrics_error is None
    mem.metrics_error = metrics_error
    step = time.perf_counter()
    plan, reason, observed, forecast = await asyncio.to_thread(decide, mem, res, profile, history, now_s)
    rt.timed("decide", step)
    target = plan if plan is not None else previous
    applied: ApplyResult | None = None
    error: str | None = None
    if res.spec.mode == Mode.AUTO and target is not None:
        step = time.perf_counter()
        applied, error = await act_reporting(rt, mem, res, target, events)
        if error is None:
            rt.timed("act", step)
    else:
        settle(mem, None, None)
    shown = plan if plan is not None else previous
    if shown is not None:  # one record per tick: the exporter's gauges follow every tick
        safe_reason: DecisionReason = reason if reason in DECISION_REASONS else "hold"
        record = record_from_plan(res.owner.namespace, res.owner.name, now_s, shown, previous, observed_rps=observed,
                                  forecast_rps=forecast, reason=safe_reason)  # fmt: skip
        if rt.metrics is not None:
            rt.metrics.observe(record)
        if plan is not None and not plan.same_config(previous) and error is None:  # a new plan: log line + event
            rt.decisions.log(record)
            verb = "PlanApplied" if res.spec.mode == Mode.AUTO else "PlanRecommended"
            event = event_fields(record)
            events.append((event.type, verb, event.message))
    desired = report(res, mem, now_s=now_s, plan=plan, previous=previous, reason=reason, observed_rps=observed,
                     forecast_rps=forecast, metrics_error=metrics_error, applied=applied, error=error)  # fmt: skip
    changes = status_changes(res.status, desired)
    if "checkpoint" in desired:
        mem.checkpointed_s = now_s
    rt.tick_seconds.append(time.perf_counter() - started)
    if len(rt.tick_seconds) > 10_000:
        del rt.tick_seconds[:5_000]
    return TickOutcome(changes, events, plan, applied)


async def run_reconcile(rt: Runtime, mem: Memory, res: Resource) -> TickOutcome:
    """Between ticks, while a reconfiguration is under way: act again on the plan in the status.

    No observation and no new decision (that is the tick's job, at its interval); this only moves the
    make-before-break along as soon as new instances are ready, instead of a whole interval later.
    """
    target = current_plan(res)
    if target is None or res.spec.mode != Mode.AUTO or res.paused:
        mem.progressing = False
        return TickOutcome({}, [], None)
    events: list[tuple[str, str, str]] = []
    applied, error = await act_reporting(rt, mem, res, target, events)
    desired = report(res, mem, now_s=rt.clock(), plan=None, previous=target, reason="hold", observed_rps=math.nan,
                     forecast_rps=math.nan, metrics_error=mem.metrics_error, applied=applied, error=error)  # fmt: skip
    desired.pop("checkpoint", None)
    return TickOutcome(status_changes(res.status, desired), events, None, applied)
