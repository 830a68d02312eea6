"""A budget several services draw on (a pool): each member's share of it, from one joint solve (pure).

Each member of a pool gets a budget of its own, its *share*, within which its controller plans alone as any
service does. Shares come from the joint solver (one budget for all, each service's accuracy weighted by its
traffic) at the members' predicted loads:

1. **Admission.** Every member first needs its minimum: what its plan for no load costs (the cheapest variant
   at its smallest size). Members are admitted in name order while their minimums fit the pool; the others get
   nothing (``PoolExhausted``) and run nothing until the pool grows or a member leaves.
2. **Enough for all.** When the pool serves every admitted member's predicted load, a member's share starts at
   what its part of the joint plan costs.
3. **Short.** When it does not, every member serves at least the same fraction ``f`` of its predicted load: the
   largest ``f`` at which the joint problem is feasible (bisection), which maximises the smallest served
   fraction. A small service is not starved to feed a large one, nor the other way round. Each member's reason is
   ``PoolShort``; the fraction it is said to serve is what its own plan within its share serves (its controller
   plans alone, the most load first: a small member's minimum may serve all of its load).
4. **What is left** of the pool after the joint plan is handed out in proportion to the predicted loads (equally
   when there is none), so a member can absorb a burst before the next allocation.

The shares never sum past the pool: the joint plan fits it and the rest is divided, rounded down.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from infadapter.planning.plan import Plan
from infadapter.planning.solve import plan_for_load, plan_jointly
from infadapter.profiles import Profile
from infadapter.solver import SolveBackend
from infadapter.spec import InferenceServiceSpec

ShareReason = Literal["Shared", "PoolShort", "PoolExhausted"]
#: the load a member with no predicted load is planned for: enough to need one replica of something
TRICKLE_RPS = 1e-3
#: bisection steps on the served fraction when the pool is short (2^-8: within 0.4 %)
BISECTION_STEPS = 8
#: shares are rounded down to this (cores): their sum stays within the pool whatever the float sums do
CPU_QUANTUM = 1e-3


@dataclass(frozen=True)
class Member:
    """A service of the pool as the allocation sees it: its spec, its profile, its predicted load."""

    spec: InferenceServiceSpec
    profile: Profile
    demand_rps: float


@dataclass(frozen=True)
class Share:
    """What one member gets: cores and GPUs, the fraction of its predicted load the pool lets it serve, and why."""

    cpu: float
    gpu: int
    demand_rps: float
    served_fraction: float
    reason: ShareReason
    message: str
    #: what its part of the joint plan costs (the rest of ``cpu`` is its part of what the plan left)
    needed_cpu: float = 0.0
    needed_gpu: int = 0


def with_budget(spec: InferenceServiceSpec, cpu: float, gpu: int) -> InferenceServiceSpec:
    """The spec planned with another budget (a member's share, or the whole pool)."""
    return spec.model_copy(update={"budget": spec.budget.model_copy(update={"cpu": cpu, "gpu": gpu})})


def minimum(spec: InferenceServiceSpec, profile: Profile, cpu: float, gpu: int) -> tuple[float, int]:
    """(cores, GPUs) of the member's plan for no load, with the whole pool to choose from."""
    plan = plan_for_load(with_budget(spec, cpu, gpu), profile, 0.0)
    return plan.cost_cpu, int(plan.cost_gpu)


def allocate(members: Mapping[str, Member], cpu: float, gpu: int, *, backend: SolveBackend = "auto") -> dict[str, Share]:
    """Every member's share of a pool of ``cpu`` cores and ``gpu`` GPUs (module docstring)."""
    shares: dict[str, Share] = {}
    admitted: dict[str, Member] = {}
    used_cpu, used_gpu = 0.0, 0
    for name in sorted(members):
        member = members[name]
        need_cpu, need_gpu = minimum(member.spec, member.profile, cpu, gpu)
        if used_cpu + need_cpu > cpu + 1e-9 or used_gpu + need_gpu > gpu:
            message = (
                f"the pool ({cpu:g} cores, {gpu} GPUs) cannot hold this service's minimum ({need_cpu:g} cores, {need_gpu} GPUs) "
                "beside the members before it: grow the pool"
            )
            shares[name] = Share(0.0, 0, _demand(member), 0.0, "PoolExhausted", message)
            continue
        used_cpu, used_gpu = used_cpu + need_cpu, used_gpu + need_gpu
        admitted[name] = member
    if admitted:
        fraction, plans = _served_fraction(admitted, cpu, gpu, backend)
        shares.update(_divide(admitted, plans, fraction, cpu, gpu))
    return shares


def _demand(member: Member) -> float:
    load = float(member.demand_rps)
    return load if math.isfinite(load) and load > 0 else 0.0


def _joint(members: Mapping[str, Member], fraction: float, cpu: float, gpu: int, backend: SolveBackend) -> dict[str, Plan]:
    services = {name: (with_budget(m.spec, cpu, gpu), m.profile, max(TRICKLE_RPS, fraction * _demand(m)), None) for name, m in members.items()}
    return plan_jointly(services, cpu, gpu, backend)


def _serves(plans: Mapping[str, Plan]) -> bool:
    return all(p.status != "infeasible" and p.variants and p.served_rps >= p.load_rps * (1 - 1e-6) - 1e-9 for p in plans.values())


def _served_fraction(members: Mapping[str, Member], cpu: float, gpu: int, backend: SolveBackend) -> tuple[float, dict[str, Plan]]:
    """The largest fraction of every member's predicted load the pool serves, and the joint plan at it."""
    plans = _joint(members, 1.0, cpu, gpu, backend)
    if _serves(plans):
        return 1.0, plans
    low, high = 0.0, 1.0
    best = _joint(members, 0.0, cpu, gpu, backend)  # the minimums fit (admission): feasible
    for _ in range(BISECTION_STEPS):
        middle = (low + high) / 2
        trial = _joint(members, middle, cpu, gpu, backend)
        if _serves(trial):
            low, best = middle, trial
        else:
            high = middle
    return low, best


def _divide(members: Mapping[str, Member], plans: Mapping[str, Plan], fraction: float, cpu: float, gpu: int) -> dict[str, Share]:
    """Each member's part of the joint plan, plus its part of what the plan leaves (by predicted load)."""
    demands = {name: _demand(m) for name, m in members.items()}
    total = sum(demands.values())
    weights = {name: (d / total if total > 0 else 1.0 / len(demands)) for name, d in demands.items()}
    left_cpu = max(0.0, cpu - sum(p.cost_cpu for p in plans.values()))
    left_gpu = max(0, gpu - sum(int(p.cost_gpu) for p in plans.values()))
    extra_gpu = _largest_remainder(weights, left_gpu)
    reason: ShareReason = "Shared" if fraction >= 1.0 else "PoolShort"
    shares: dict[str, Share] = {}
    for name, plan in plans.items():
        share_cpu = math.floor((plan.cost_cpu + left_cpu * weights[name]) / CPU_QUANTUM + 1e-6) * CPU_QUANTUM
        share_cpu = max(share_cpu, plan.cost_cpu)  # never below what its plan needs (the quantum is far smaller)
        share_gpu = int(plan.cost_gpu) + extra_gpu[name]
        served = 1.0 if reason == "Shared" else _served_alone(members[name], demands[name], share_cpu, share_gpu)
        if reason == "Shared":
            message = (
                f"{share_cpu:g} cores, {share_gpu} GPUs of the pool: its plan for {demands[name]:.1f} rps needs {plan.cost_cpu:g}; "
                "the rest is its part of what the plan leaves"
            )
        else:
            message = (
                f"the pool is short: every member serves at least {fraction:.0%} of its predicted load; "
                f"this one {served * demands[name]:.1f} of {demands[name]:.1f} rps with {share_cpu:g} cores, {share_gpu} GPUs"
            )
        shares[name] = Share(share_cpu, share_gpu, demands[name], served, reason, message, plan.cost_cpu, int(plan.cost_gpu))
    return shares


def _served_alone(member: Member, demand: float, cpu: float, gpu: int) -> float:
    """The fraction of its predicted load the member's own plan within its share serves (its controller plans
    alone within the share, the most load first: a small member may serve all of its load from its minimum)."""
    if demand <= 0:
        return 1.0
    plan = plan_for_load(with_budget(member.spec, cpu, gpu), member.profile, demand)
    return min(1.0, plan.served_rps / demand)


def _largest_remainder(weights: Mapping[str, float], count: int) -> dict[str, int]:
    """``count`` whole units divided by ``weights`` (largest remainders first; ties by name)."""
    exact = {name: w * count for name, w in weights.items()}
    out = {name: math.floor(x + 1e-9) for name, x in exact.items()}
    rest = count - sum(out.values())
    for name in sorted(exact, key=lambda n: (-(exact[n] - out[n]), n))[: max(0, rest)]:
        out[name] += 1
    return out
