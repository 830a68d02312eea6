"""One step of one InferenceService: the controller (:mod:`infadapter.control`) wired to the cluster.

The operator is wiring, as the simulator and the embedded mode are: its clock is Unix time, its observer the
router's counters in Prometheus (read incrementally: only the newest seconds at each step), its actuator the
Kubernetes objects (:mod:`infadapter.runtime.kube.actuator`). The controller owns the schedule (the policy's
interval, its between-ticks checks at every step — ``ours``' burst detector and live re-weighting —,
``replan_now``), the cold start, holding when metrics vanish, make-before-break and the decision record.

A step is due every scrape interval (the between-ticks cadence), at the time the controller expects the
next change (``Step.wake_s``), and at every timer wake while a transition is under way. The cluster is read
at the policy's interval (to see edits by hand), during transitions and after every write — at steady state
a service costs a few reads per interval and no writes. The controller's state is checkpointed in
``status.checkpoint`` with each new plan, so a restarted operator resumes where the last one stopped.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import yaml

from infadapter.control import MODE_LATENCIES, ActuatorState, Controller, DecisionRecord, Step, VariantState, policy_options
from infadapter.control.budget import Cap, held
from infadapter.errors import ApplyFailed, InfAdapterError, InvalidInput, InvalidProfile, MetricsUnavailable
from infadapter.metrics import event_fields
from infadapter.metrics.prometheus import LOAD_SOURCES, LoadSource
from infadapter.operator.history import History, next_step_s
from infadapter.operator.memory import Memory, Resource, Runtime, TickOutcome
from infadapter.operator.pool import Grant, Refusal
from infadapter.operator.report import Seen, desired_status
from infadapter.operator.shadow import compare
from infadapter.operator.status import status_changes
from infadapter.planning import Plan
from infadapter.planning.pool import with_budget
from infadapter.policies import make_policy
from infadapter.profiles import Profile, load_profile, profile_from_dict
from infadapter.runtime.kube.actuator import ApplyOptions, execute, read_state
from infadapter.runtime.kube.client import api_path
from infadapter.runtime.kube.objects import ROUTER_STATUS_PORT
from infadapter.spec import InferenceServiceSpec, Mode

log = logging.getLogger(__name__)

PROFILE_KEY = "profile.yaml"
#: how long a profile read from its ConfigMap is trusted before it is read again (a missing one is looked for at
#: every step): profiles change rarely, and at the default 30 s interval a re-read each interval was a sixth of a
#: steady service's requests, taking it to the 0.2 requests/s limit
PROFILE_TTL_S = 120.0
#: marks a pool's refusal in ``Memory.last_error`` (cleared by the next grant, unlike a failed write)
POOL_REFUSED = "pool: "
#: what a change costs on Kubernetes, as the controller plans with it (:data:`~infadapter.control.MODE_LATENCIES`)
KUBE_LATENCIES = MODE_LATENCIES["kubernetes"]


# --------------------------------------------------------------------------- inputs


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


def ensure_controller(rt: Runtime, mem: Memory, res: Resource, profile: Profile) -> None:
    """(Re)build the controller when the spec or profile changed; restore its state from the checkpoint."""
    cap = Cap(mem.grant.cap_cpu, mem.grant.cap_gpu) if mem.grant is not None and res.spec.budget.pool is not None else None
    key = f"{res.generation}:{id(profile)}:{res.spec.budget.cpu:g}:{res.spec.budget.gpu}:{cap}"
    if mem.controller is not None and mem.key == key:
        return
    # a pool member whose share changed keeps its state and history: only the budget it plans with is new
    rebudget = mem.controller is not None and mem.key.split(":")[:2] == key.split(":")[:2] and mem.state is not None
    name = rt.config.policy
    policy = make_policy(name, res.spec, profile, **policy_options(name, KUBE_LATENCIES))
    stale_s = max(30.0, 4 * rt.config.scrape_interval_s)
    controller = Controller(res.spec, profile, policy, latencies=KUBE_LATENCIES, namespace=res.owner.namespace, name=res.owner.name, stale_s=stale_s, cap=cap)
    state = mem.state if rebudget and mem.state is not None else controller.initial_state()
    checkpoint = res.status.get("checkpoint") or {}
    raw = checkpoint.get("controller") if isinstance(checkpoint, Mapping) else None
    if not rebudget and isinstance(raw, Mapping) and checkpoint.get("name") == policy.name:
        try:
            state = controller.state_from_dict(raw)
        except (InfAdapterError, KeyError, TypeError, ValueError) as exc:
            log.warning("ignoring the checkpoint of %s/%s: %s", res.owner.namespace, res.owner.name, exc)
    mem.controller, mem.state, mem.key = controller, state, key
    if rebudget:
        return
    shadow_query = res.spec.shadow.load_query if res.spec.shadow is not None else None
    mem.history = History(min(res.spec.forecast.window_s, rt.config.max_history_s), rt.config.scrape_interval_s, load_source(res.spec), shadow_query)
    if rt.metrics is not None:
        rt.metrics.describe_service(
            res.owner.namespace,
            res.owner.name,
            slo_latency_s=res.spec.slo.latency_ms / 1000.0,
            slo_target_ratio=res.spec.slo.percentile / 100.0,
            variant_accuracy={v.name: v.accuracy for v in res.spec.units},
        )


async def observe(rt: Runtime, mem: Memory, res: Resource, now_s: float) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Per-second arrivals over the forecast window (NaN = unknown); only the newest seconds are queried."""
    assert mem.history is not None
    try:
        started = time.perf_counter()
        await asyncio.to_thread(mem.history.update, rt.observer, res.owner.namespace, res.owner.name, now_s)
        rt.timed("observe", started)
        mem.metrics_error = None
    except MetricsUnavailable as exc:
        mem.metrics_error = str(exc)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:  # an answer that is not Prometheus'
        mem.metrics_error = f"Prometheus answered with malformed data: {type(exc).__name__}: {exc}"
    return mem.history.window(now_s)


def as_if_applied(plan: Plan | None, in_place: bool) -> ActuatorState:
    """What would run had ``plan`` been applied at once: the actuator of a service that is only advised."""
    if plan is None:
        return ActuatorState((), {}, in_place)
    variants = tuple(VariantState(v.name, v.cpu_cores, v.replicas, (v.cpu_cores,) * v.replicas, v.gpus) for v in plan.variants if v.replicas > 0)
    return ActuatorState(variants, plan.weights(), in_place)


async def router_probe(ip: str) -> str:
    """What Envoy in one router pod applies: its read-only status listener's ``GET /runtime`` (1 s)."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=1.0)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(f"http://{ip}:{ROUTER_STATUS_PORT}/runtime") as answer:
        answer.raise_for_status()
        return await answer.text()


# --------------------------------------------------------------------------- shared budgets


async def pool_grant(rt: Runtime, mem: Memory, res: Resource, profile: Profile, now_s: float) -> Grant | Refusal:
    """The share of its pool the service plans with: asked for when a step is due, kept between steps."""
    if mem.grant is not None and not due(mem, now_s) and mem.grant.pool == res.spec.budget.pool:
        return mem.grant
    rec = mem.record
    demand = next((x for x in ((rec.forecast_rps, rec.observed_rps) if rec is not None else ()) if math.isfinite(x)), 0.0)
    holding = held(mem.view.state, mem.view.state.in_place) if mem.view is not None else None
    granted = await rt.pools.grant(rt.api, res.owner.namespace, res.owner.name, res.spec, profile, demand, holding, now_s, mem.transitioning)
    mem.grant = granted if isinstance(granted, Grant) else None
    if mem.grant is not None and mem.last_error.startswith(POOL_REFUSED):  # the pool's refusal is over, not a failed write
        mem.last_error = ""
    return granted


def _refused(mem: Memory, res: Resource, refusal: Refusal, now_s: float, events: list[tuple[str, str, str]]) -> TickOutcome:
    """No share of the pool now: nothing is planned or changed; the status and one event say why."""
    message = f"{POOL_REFUSED}{refusal.message}"
    if mem.last_error != message:
        events.append(("Warning" if refusal.reason != "WaitingForPool" else "Normal", refusal.reason, refusal.message))
    mem.last_error = message
    seen = Seen(res.mode, res.generation, plan=mem.state.target if mem.state is not None else None, blocked=(refusal.reason, refusal.message))
    return TickOutcome(status_changes(res.status, desired_status(res.status, seen, now_s)), events)


# --------------------------------------------------------------------------- the step


def load_source(spec: InferenceServiceSpec) -> LoadSource:
    """Behind a Gateway there is no router of ours to count requests: the servers' own counters are read."""
    return "servers" if spec.routing.kind == "GatewayAPI" else "router"


def due(mem: Memory, now_s: float) -> bool:
    return mem.controller is None or mem.transitioning or now_s >= min(mem.next_step_s, mem.wake_s) - 1e-3


async def actuator_view(rt: Runtime, mem: Memory, res: Resource, now_s: float) -> ActuatorState:
    """The cluster as the controller sees it (read when due), or the advised plan as if applied (Recommend)."""
    assert mem.state is not None
    if res.spec.mode != Mode.AUTO:
        return as_if_applied(mem.state.target, in_place=True)
    stale = mem.view is None or mem.transitioning or now_s >= mem.wake_s - 1e-3 or now_s - mem.view_read_s >= res.spec.adaptation.interval_s
    if stale:
        mem.view = await read_state(rt.api, res.owner, res.spec, confirm=router_probe if rt.config.confirm_weights else None)
        mem.view_read_s, mem.route_problem = now_s, mem.view.route_problem
    assert mem.view is not None
    return mem.view.state


async def act(rt: Runtime, mem: Memory, res: Resource, step: Step, events: list[tuple[str, str, str]]) -> str | None:
    """Execute the step's action (Auto mode); an ApplyFailed becomes an error (and one Warning event per distinct error)."""
    # during a transition, or after a failed write, the last action is executed again (idempotent: what holds is
    # not written), so pods that started since, resizes the kubelet deferred past the wait, or a write the
    # apiserver refused (a 409 on the weights after the Deployments went through) are taken care of
    retry = mem.transitioning or bool(mem.last_error)
    action = step.action or (mem.state.sent if retry and mem.state is not None else None)
    if action is None or res.spec.mode != Mode.AUTO or mem.view is None:
        return mem.last_error or None
    try:
        started = time.perf_counter()
        options = ApplyOptions(images=rt.config.images, resize_wait_s=rt.config.resize_wait_s)
        mem.applied = await execute(rt.api, res.owner, res.spec, action, mem.view, options)
        rt.timed("act", started)
    except ApplyFailed as exc:
        error = str(exc)
        if mem.last_error != error:
            events.append(("Warning", "ApplyFailed", error))
        mem.last_error = error
        return error
    if mem.applied.changed:
        mem.view = None  # what was written shows at the next read
    mem.last_error = ""
    return None


def record(rt: Runtime, mem: Memory, res: Resource, step: Step, events: list[tuple[str, str, str]]) -> None:
    """The decision record: exporter gauges always, a log line and an event for a new configuration."""
    if step.record is None:
        return
    mem.record = step.record
    if rt.metrics is not None:
        rt.metrics.observe(step.record)
    _compare_shadow(rt, mem, res, step.record)
    if step.record.reason == "metrics_unavailable":
        if mem.metrics_ok is not False:
            events.append(("Warning", "MetricsUnavailable", f"holding the last plan: {mem.metrics_error or 'no recent samples'}"))
        mem.metrics_ok = False
        return
    mem.metrics_ok = True
    if step.reconfigured:
        rt.decisions.log(step.record)
        event = event_fields(step.record)
        events.append((event.type, "PlanApplied" if res.spec.mode == Mode.AUTO else "PlanRecommended", event.message))
        if mem.shadow is not None:
            events.append(("Normal", "ShadowComparison", mem.shadow.message()))


def _compare_shadow(rt: Runtime, mem: Memory, res: Resource, rec: DecisionRecord) -> None:
    """spec.shadow: the current configuration beside the recommendation, at the predicted load (status, metrics)."""
    mem.shadow = None
    if res.spec.shadow is None or mem.profile is None or mem.state is None or mem.state.target is None or rec.reason == "metrics_unavailable":
        return
    mem.shadow = compare(res.spec, mem.profile, mem.state.target, rec.forecast_rps)
    current = mem.shadow.current if mem.shadow is not None else None
    if rt.metrics is not None and current is not None:
        rt.metrics.observe_shadow(res.owner.namespace, res.owner.name, cost_cpu=current.cost_cpu, accuracy=current.accuracy, capacity_rps=current.capacity_rps)


async def run_step(rt: Runtime, mem: Memory, res: Resource) -> TickOutcome | None:
    """One step when due (None when not): observe → controller step → act → report."""
    now_s = rt.clock()
    events: list[tuple[str, str, str]] = []
    if res.paused or res.spec.mode == Mode.OFF:
        return TickOutcome(status_changes(res.status, desired_status(res.status, Seen(res.mode, res.generation), now_s)), events)
    try:
        if mem.profile is None or now_s - mem.profile_read_s >= PROFILE_TTL_S or mem.key.split(":")[0] != str(res.generation):
            mem.profile, mem.profile_read_s = await load_service_profile(rt, res), now_s
        if res.spec.budget.pool is not None:
            granted = await pool_grant(rt, mem, res, mem.profile, now_s)
            if isinstance(granted, Refusal):
                return _refused(mem, res, granted, now_s, events)
            res = replace(res, spec=with_budget(res.spec, granted.cpu, granted.gpu))
        ensure_controller(rt, mem, res, mem.profile)
    except InvalidInput as exc:
        mem.profile = None
        message = str(exc).replace("\n", " ")
        if mem.last_error != message:
            events.append(("Warning", "ProfileUnavailable", message))
        mem.last_error = message
        return TickOutcome(status_changes(res.status, desired_status(res.status, Seen(res.mode, res.generation, error=message), now_s)), events)
    if not due(mem, now_s):
        return None
    assert mem.controller is not None and mem.state is not None
    history = await observe(rt, mem, res, now_s)
    try:
        actuator = await actuator_view(rt, mem, res, now_s)
    except ApplyFailed as exc:  # the cluster cannot be read now (timeouts, 5xx after retries): say so, retry next step
        failure = str(exc)
        if mem.last_error != failure:
            events.append(("Warning", "ApplyFailed", failure))
        mem.last_error, mem.next_step_s = failure, now_s + max(1.0, rt.config.scrape_interval_s)
        seen = Seen(res.mode, res.generation, plan=mem.state.target, error=failure, metrics_error=mem.metrics_error)
        return TickOutcome(status_changes(res.status, desired_status(res.status, seen, now_s)), events, mem.state.target)
    started = time.perf_counter()
    step, mem.state = mem.controller.step(mem.state, now_s, history, actuator)
    rt.timed("decide", started)
    error = await act(rt, mem, res, step, events)
    record(rt, mem, res, step, events)
    landed = mem.history.landed_s if mem.history is not None else None
    mem.next_step_s, mem.wake_s = next_step_s(landed, now_s, rt.config.scrape_interval_s), step.wake_s
    seen = _seen(mem, res, step, actuator, error)
    status = desired_status(res.status, seen, now_s)
    if seen.checkpoint is not None:
        mem.checkpointed = True
    return TickOutcome(status_changes(res.status, status), events, mem.state.target)


def _seen(mem: Memory, res: Resource, step: Step, actuator: ActuatorState, error: str | None) -> Seen:
    assert mem.controller is not None and mem.state is not None
    target = mem.state.target
    rec = mem.record
    shadow = mem.shadow if res.spec.shadow is not None else None
    checkpoint = None
    if step.reconfigured or not mem.checkpointed:  # with each new plan: the policy's state changes every step
        checkpoint = {"name": mem.controller.policy.name, "controller": mem.controller.state_to_dict(mem.state)}
    waiting: tuple[str, ...] = ()
    serving: frozenset[str] = frozenset()
    if target is not None:
        ready = {v.name: len(v.ready_cores) for v in actuator.variants}
        waiting = tuple(sorted(v.name for v in target.variants if v.replicas > ready.get(v.name, 0)))
        serving = frozenset(v.name for v in actuator.variants if v.ready_cores and actuator.weights.get(v.name, 0.0) > 0)
    return Seen(
        res.mode,
        res.generation,
        plan=target,
        decided=step.reconfigured,
        reason=rec.reason if rec is not None else "hold",
        observed_rps=rec.observed_rps if rec is not None else math.nan,
        forecast_rps=rec.forecast_rps if rec is not None else math.nan,
        metrics_error=mem.metrics_error,
        error=error,
        transitioning=mem.transitioning,
        serving=serving,
        waiting=waiting,
        applied=mem.applied if mem.transitioning else None,
        checkpoint=checkpoint,
        route_problem=mem.route_problem if res.spec.mode == Mode.AUTO else None,
        load_source="the spec's load query (shadow)" if res.spec.shadow is not None else LOAD_SOURCES[load_source(res.spec)],
        shadow=shadow,
        budget=mem.grant.status() if mem.grant is not None and res.spec.budget.pool is not None else None,
    )
