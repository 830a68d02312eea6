"""What the operator keeps: per custom resource (:class:`Memory`, rebuilt from the status after a restart), for the
whole process (:class:`Runtime`), what one step reads (:class:`Resource`) and returns (:class:`TickOutcome`)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from infadapter.control import Controller, ControlState, DecisionRecord
from infadapter.metrics import DecisionLog, InfAdapterMetrics, Observer
from infadapter.operator.history import History
from infadapter.operator.pool import Grant, Pools
from infadapter.operator.settings import OperatorConfig
from infadapter.operator.shadow import Comparison
from infadapter.planning import Plan
from infadapter.profiles import Profile
from infadapter.runtime.kube.actuator import ApplyResult, KubeView
from infadapter.runtime.kube.client import KubeApi
from infadapter.runtime.kube.objects import ANNOTATION_PAUSED, ANNOTATION_PROFILE, Owner
from infadapter.spec import InferenceServiceSpec


@dataclass(frozen=True)
class Resource:
    """The parts of the custom resource a step reads."""

    owner: Owner
    generation: int
    annotations: Mapping[str, str]
    spec: InferenceServiceSpec
    status: Mapping[str, Any]

    @property
    def paused(self) -> bool:
        return str(self.annotations.get(ANNOTATION_PAUSED, "")).lower() in ("true", "1", "yes")

    @property
    def profile_configmap(self) -> str:
        return self.annotations.get(ANNOTATION_PROFILE) or f"{self.owner.name}-profile"

    @property
    def mode(self) -> str:
        return "Paused" if self.paused else self.spec.mode.value


@dataclass
class Memory:
    """Per-resource state kept in the operator's memory (rebuilt from the status after a restart)."""

    key: str = ""
    controller: Controller | None = None
    state: ControlState | None = None
    history: History | None = None
    view: KubeView | None = None
    view_read_s: float = -math.inf
    next_step_s: float = -math.inf
    wake_s: float = math.inf
    metrics_ok: bool | None = None
    metrics_error: str | None = None
    last_error: str = ""
    applied: ApplyResult | None = None
    record: DecisionRecord | None = None
    checkpointed: bool = False
    shadow: Comparison | None = None  # spec.shadow: the current configuration beside the recommendation
    #: GatewayAPI: why the Gateway does not route to the service, as last read (kept while a write clears the view)
    route_problem: str | None = None
    profile: Profile | None = None
    profile_read_s: float = -math.inf
    grant: Grant | None = None  # spec.budget.pool: the share of the pool this service plans with

    @property
    def transitioning(self) -> bool:
        return self.state is not None and self.state.since_s is not None


@dataclass
class Runtime:
    config: OperatorConfig
    api: KubeApi
    observer: Observer
    metrics: InfAdapterMetrics | None = None
    decisions: DecisionLog = field(default_factory=DecisionLog)
    clock: Callable[[], float] = time.time
    _profiles: dict[tuple[str, str, str], Profile] = field(default_factory=dict)
    pools: Pools = field(default_factory=Pools)
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
    plan: Plan | None = None
