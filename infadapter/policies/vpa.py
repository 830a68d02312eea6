"""``vpa:<variant>``: the Kubernetes VPA recommender driving one fixed variant (research notes §8).

The recommender (VPA ``pkg/recommender/util`` and ``logic``, defaults): CPU usage samples go into an
exponential histogram (first bucket 0.01 cores, ratio 1.05) with exponential decay (half-life 24 h,
implemented as VPA does by growing the weight of new samples), each sample weighted by the container's
CPU request (at least 0.1 core). The target is the bucket end of the 90th percentile, plus a 15 %
safety margin, bounded to ``[min_cores, max_cores]`` (the paper's VPA object: minAllowed 2, maxAllowed
20). The paper created the VPA 60 s after the start; the recommender samples usage once a minute.

Usage is what the server burns: served requests × CPU-seconds per request, the latter from the profile
(cores / throughput at full load at the nearest measured size), capped at the allocated cores (a
throttled container never shows more than its limit).

The adapter (``VPA_TYPE="P"``): every 30 s (first after 2 min) it reads the target rounded **up** to whole
cores and applies it by patching the Deployment (a rolling update: a new pod, make-before-break);
a lower target waits for 4 consecutive non-increasing recommendations, like the paper's stabilisation.

Within the spec's bounds (:mod:`infadapter.policies.sizes`): the target is the variant's total cores,
bounded to ``[minCpu, maxCpu × maxReplicas]`` (and the budget) unless ``min_cores``/``max_cores`` say
otherwise, and applied as the smallest size of the ladder that has it — one replica up to ``maxCpu``,
then replicas of ``maxCpu`` (a VPA with a horizontal autoscaler). It starts on the largest size (the
paper's VPA started on the whole budget). On the paper's spec this is the paper's VPA object: 2..20
cores, one replica, starting at 20. Usage is the total over the replicas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from infadapter.errors import FieldError, InvalidInput
from infadapter.planning import Plan, static_plan
from infadapter.policies.base import Decision, Observation, StateDict
from infadapter.policies.sizes import Rung, ladder, rung_for
from infadapter.profiles import Profile
from infadapter.spec import InferenceServiceSpec

FIRST_BUCKET_CORES = 0.01
BUCKET_RATIO = 1.05
HALF_LIFE_S = 24 * 3600.0
MIN_SAMPLE_WEIGHT = 0.1
TARGET_PERCENTILE = 0.9
SAFETY_MARGIN = 0.15


def bucket_of(cores: float) -> int:
    """Index of the histogram bucket holding ``cores`` (VPA's exponential histogram)."""
    if cores < FIRST_BUCKET_CORES:
        return 0
    return math.floor(math.log(cores * (BUCKET_RATIO - 1.0) / FIRST_BUCKET_CORES + 1.0) / math.log(BUCKET_RATIO))


def bucket_start(index: int) -> float:
    return FIRST_BUCKET_CORES * (BUCKET_RATIO**index - 1.0) / (BUCKET_RATIO - 1.0)


@dataclass(frozen=True)
class VpaState(StateDict):
    """The decaying histogram (bucket -> weight, weights relative to ``reference_s``), sampling and hold."""

    buckets: tuple[tuple[int, float], ...] = ()
    reference_s: float = 0.0
    last_sample_s: float = -math.inf
    applied_cores: float = 0.0
    counter: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["buckets"] = [[i, w] for i, w in self.buckets]
        out["last_sample_s"] = None if math.isinf(self.last_sample_s) else self.last_sample_s
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> VpaState:
        last = raw.get("last_sample_s")
        return cls(
            tuple((int(i), float(w)) for i, w in raw.get("buckets", [])),
            float(raw.get("reference_s", 0.0)),
            -math.inf if last is None else float(last),
            float(raw.get("applied_cores", 0.0)),
            int(raw.get("counter", 0)),
        )


def add_sample(state: VpaState, usage_cores: float, weight: float, now_s: float) -> VpaState:
    """Add one usage sample, decayed as VPA does (new samples weigh 2^((t - ref)/half-life))."""
    grown = weight * 2.0 ** ((now_s - state.reference_s) / HALF_LIFE_S)
    buckets = dict(state.buckets)
    index = bucket_of(usage_cores)
    buckets[index] = buckets.get(index, 0.0) + grown
    return replace(state, buckets=tuple(sorted(buckets.items())))


def percentile(state: VpaState, q: float) -> float:
    """VPA's ``Percentile``: the end of the bucket where the cumulative weight reaches ``q``."""
    if not state.buckets:
        return 0.0
    total = sum(w for _, w in state.buckets)
    running = 0.0
    for index, weight in state.buckets:
        running += weight
        if running >= q * total - 1e-12:
            return bucket_start(index + 1)
    return bucket_start(state.buckets[-1][0] + 1)


def cpu_seconds_per_request(profile: Profile, variant: str, cores: float) -> float:
    """CPU time per request at the nearest measured size: cores / full-load throughput."""
    points = [p for p in profile.points[variant] if p.gpus == 0]
    if not points:
        return math.inf
    p = min(points, key=lambda p: abs(p.cpu_cores - cores))
    throughput = max(p.capacity_rps, p.saturation_rps or 0.0)
    return p.cpu_cores / throughput if throughput > 0 else math.inf


class VpaPolicy:
    """``vpa:<variant>`` (see the module docstring)."""

    def __init__(
        self,
        spec: InferenceServiceSpec,
        profile: Profile,
        variant: str,
        *,
        interval_s: float = 30.0,
        first_tick_s: float = 120.0,
        vpa_start_s: float = 60.0,
        sample_interval_s: float = 60.0,
        min_cores: float | None = None,
        max_cores: float | None = None,
        start_cores: float | None = None,
        stabilisation: int = 4,
    ) -> None:
        self.name = f"vpa:{variant}"
        self.rungs = ladder(spec, variant)
        if not self.rungs or not profile.runs_on_cpu(variant):
            raise InvalidInput(
                [
                    FieldError(
                        "policy",
                        f"{self.name!r}: {variant} has no CPU size to recommend (no CPU measurement in the profile, or no size within the budget)",
                        "VPA sizes CPU: drop it from --policies, or profile the variant on CPU",
                    )
                ],
                "policy",
            )
        self.spec = spec
        self.profile = profile
        self.variant = variant
        self.interval_s = float(interval_s)
        self.first_tick_s = float(first_tick_s)
        self.vpa_start_s = float(vpa_start_s)
        self.sample_interval_s = float(sample_interval_s)
        self.min_cores = float(min_cores if min_cores is not None else self.rungs[0].total_cores)
        self.max_cores = float(max_cores if max_cores is not None else self.rungs[-1].total_cores)
        self.start_cores = rung_for(self.rungs, float(start_cores if start_cores is not None else self.max_cores)).total_cores
        self.stabilisation = int(stabilisation)
        self.notes: list[str] = []

    def initial_plan(self) -> Plan:
        return self.plan(self.start_cores)

    def plan(self, cores: float) -> Plan:
        """The smallest size of the ladder with ``cores`` in total."""
        rung = rung_for(self.rungs, cores)
        return static_plan(self.spec, self.profile, {self.variant: rung.cpu_cores}, replicas={self.variant: rung.replicas})

    def initial_state(self) -> VpaState:
        return VpaState(applied_cores=self.start_cores)

    def state_from_dict(self, raw: dict[str, Any]) -> VpaState:
        return VpaState.from_dict(raw)

    def between_ticks(self, obs: Observation, state: VpaState) -> bool:
        return False

    def usage_cores(self, arrivals_rps: float, cores: float, replicas: int = 1) -> float:
        """Cores burnt by ``replicas`` replicas of ``cores`` each at ``arrivals_rps`` (capped at their limits)."""
        total = cores * replicas
        full = self.profile.capacity_rps(self.variant, cores, replicas)
        cpu_s = cpu_seconds_per_request(self.profile, self.variant, cores)
        throughput = total / cpu_s if cpu_s > 0 else full
        return min(total, min(arrivals_rps, throughput) * cpu_s)

    def observe(self, obs: Observation, state: VpaState) -> VpaState:
        """Feed the usage samples due since the last one (one per ``sample_interval_s``)."""
        running = obs.current.variants[0] if obs.current is not None and obs.current.variants else None
        size = Rung(running.cpu_cores, running.replicas) if running is not None else rung_for(self.rungs, state.applied_cores)
        first = self.vpa_start_s + self.sample_interval_s
        next_s = first if math.isinf(state.last_sample_s) else state.last_sample_s + self.sample_interval_s
        while next_s <= obs.now_s + 1e-9:
            back = round(obs.now_s - next_s)
            end = obs.history_rps.size - back
            window = obs.history_rps[max(0, end - int(self.sample_interval_s)) : end]
            window = window[~np.isnan(window)]
            arrivals = float(window.mean()) if window.size else 0.0
            usage = self.usage_cores(arrivals, size.cpu_cores, size.replicas)
            state = add_sample(state, usage, max(size.total_cores, MIN_SAMPLE_WEIGHT), next_s)
            state = replace(state, last_sample_s=next_s)
            next_s += self.sample_interval_s
        return state

    def target_cores(self, state: VpaState) -> float | None:
        if not state.buckets:
            return None
        target = percentile(state, TARGET_PERCENTILE) * (1.0 + SAFETY_MARGIN)
        return min(self.max_cores, max(self.min_cores, target))

    def decide(self, obs: Observation, state: VpaState) -> tuple[Decision, VpaState]:
        state = self.observe(obs, state)
        target = self.target_cores(state)
        observed = float(obs.history_rps[-1]) if obs.history_rps.size else math.nan
        if target is None:
            return Decision(None, math.nan, observed, resize="recreate", note="no recommendation yet"), state
        rung = rung_for(self.rungs, float(math.ceil(target - 1e-9)))
        cores = rung.total_cores
        note = f"vpa target {target:.2f} cores -> {rung.describe()}"
        if cores <= state.applied_cores and state.counter < self.stabilisation:
            return Decision(None, math.nan, observed, resize="recreate", note=note), replace(state, counter=state.counter + 1)
        state = replace(state, counter=0)
        if cores == state.applied_cores:
            return Decision(None, math.nan, observed, resize="recreate", note=note), state
        return Decision(self.plan(cores), math.nan, observed, resize="recreate", note=note), replace(state, applied_cores=cores)
