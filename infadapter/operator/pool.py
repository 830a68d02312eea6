"""Shared budgets: InferenceServices that name an InferenceBudget (``spec.budget.pool``) plan within a share of it.

Each member's step reports what it predicts and holds, and asks for its grant. The pool is divided
(:func:`infadapter.planning.pool.allocate`: one joint solve, the same served fraction for all when short) at
most once per pool interval, the shortest adaptation interval of its members. A new division is adopted when
the one in force no longer covers some member's need, a share would move by a tenth of the pool, or the pool or
its members changed, so members are not re-planned for small moves of the load; what each member got is written to the InferenceBudget's status when it changes.

**Release before grant.** A member is granted its share only as far as the others leave room: what the pool
holds minus, for every other member, the larger of its share and what it still holds. So when cores move from
one member to another, the receiver grows as the giver shrinks. The giver may need room to shrink: switching to
a cheaper variant starts the new one beside the old (make-before-break), so until it has re-planned and fits
its share, its cap is what it held when the division took cores from it plus the surge of its new share; the
receiver, meanwhile, still waits for those cores. The pool's pods stay within a ResourceQuota of the pool's size
times ``1 + surge`` through the change.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from infadapter.errors import ApplyFailed
from infadapter.planning.pool import Member, Share, allocate
from infadapter.profiles import Profile
from infadapter.runtime.kube.client import KubeApi, api_path
from infadapter.runtime.kube.objects import GROUP, VERSION
from infadapter.spec import InferenceServiceSpec

log = logging.getLogger(__name__)

PLURAL = "inferencebudgets"
#: how long the pool object read from the API is trusted (its size rarely changes)
POOL_TTL_S = 15.0
#: a member not heard from for this long (and three of its intervals) has left: deleted, moved, or its
#: operator replica lost the lease
MEMBER_STALE_S = 60.0
#: a new division replaces the one in force when a share would move by this fraction of the pool (or a need
#: outgrew its share): smaller moves of the predicted loads do not re-plan every member
REDIVIDE_FRACTION = 0.1


@dataclass(frozen=True)
class Grant:
    """What a member may plan with now: its share, less what other members have not released yet."""

    cpu: float
    gpu: int
    share: Share
    pool: str
    #: what the member may hold during a transition (its make-before-break room): its grant plus its surge, or,
    #: while it gives cores back to the pool, what it held when the division took them plus the surge of its share
    cap_cpu: float = math.inf
    cap_gpu: float = math.inf

    def status(self) -> dict[str, Any]:
        waiting = self.cpu < self.share.cpu - 1e-9 or self.gpu < self.share.gpu
        message = self.share.message + (f"; {self.cpu:g} cores and {self.gpu} GPUs now, the rest as other members release it" if waiting else "")
        return {
            "pool": self.pool,
            "cpu": round(self.cpu, 3),
            "gpu": self.gpu,
            "shareCpu": round(self.share.cpu, 3),
            "shareGpu": self.share.gpu,
            "servedFraction": round(self.share.served_fraction, 3),
            "reason": self.share.reason,
            "message": message[:1000],
        }


@dataclass(frozen=True)
class Refusal:
    """Why a member gets nothing now: the pool does not exist, cannot hold it, or others hold it all."""

    reason: str  # PoolNotFound | PoolUnreadable | PoolExhausted | WaitingForPool
    message: str


@dataclass
class _Seen:
    member: Member
    held_cpu: float
    held_gpu: float
    seen_s: float
    interval_s: float
    transitioning: bool = False
    #: what it held when a division gave it less (it may hold that, plus a surge, until it has shrunk)
    releasing: tuple[float, float] | None = None
    releasing_since_s: float = 0.0


@dataclass
class _Pool:
    capacity: tuple[float, int] | None = None
    read_s: float = -math.inf
    members: dict[str, _Seen] = field(default_factory=dict)
    shares: dict[str, Share] = field(default_factory=dict)
    allocated_s: float = -math.inf
    allocated_for: tuple[Any, ...] = ()
    written: dict[str, Any] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Pools:
    """Every pool this operator divides, by (namespace, name)."""

    def __init__(self) -> None:
        self._pools: dict[tuple[str, str], _Pool] = {}
        self._member_of: dict[tuple[str, str], str] = {}

    def forget(self, namespace: str, name: str) -> None:
        """A member was deleted (or left its pool): its share returns to the pool at the next allocation."""
        pool = self._member_of.pop((namespace, name), None)
        if pool is not None and (namespace, pool) in self._pools:
            self._pools[(namespace, pool)].members.pop(name, None)

    async def grant(
        self,
        api: KubeApi,
        namespace: str,
        name: str,
        spec: InferenceServiceSpec,
        profile: Profile,
        demand_rps: float,
        held: tuple[float, float] | None,
        now_s: float,
        transitioning: bool = False,
    ) -> Grant | Refusal:
        """The member's grant at ``now_s`` (``held``: the cores and GPUs it holds now, None when unknown)."""
        assert spec.budget.pool is not None
        pool_name = spec.budget.pool
        if self._member_of.get((namespace, name)) not in (None, pool_name):
            self.forget(namespace, name)
        self._member_of[(namespace, name)] = pool_name
        pool = self._pools.setdefault((namespace, pool_name), _Pool())
        async with pool.lock:
            if pool.capacity is None or now_s - pool.read_s >= POOL_TTL_S:
                try:
                    pool.capacity, pool.read_s = await _read_capacity(api, namespace, pool_name), now_s
                except ApplyFailed as exc:  # the API is unreachable: the last size read stands
                    if pool.capacity is None:
                        return Refusal("PoolUnreadable", f"cannot read InferenceBudget {namespace}/{pool_name}: {exc}")
            if pool.capacity is None:
                return Refusal("PoolNotFound", f"InferenceBudget {namespace}/{pool_name} does not exist: create it, or remove spec.budget.pool")
            before = pool.members.get(name)
            held_cpu, held_gpu = held if held is not None else ((before.held_cpu, before.held_gpu) if before is not None else (0.0, 0.0))
            seen = _Seen(Member(spec, profile, demand_rps), held_cpu, held_gpu, now_s, float(spec.adaptation.interval_s), transitioning)
            if before is not None:
                seen.releasing, seen.releasing_since_s = before.releasing, before.releasing_since_s
            pool.members[name] = seen
            _drop_stale(pool, now_s)
            await _allocate_when_due(pool, now_s)
            await _write_status(api, namespace, pool_name, pool)
            return _grant(pool, name, pool_name)


async def _read_capacity(api: KubeApi, namespace: str, name: str) -> tuple[float, int] | None:
    found = await api.get(api_path(f"{GROUP}/{VERSION}", PLURAL, namespace, name))
    if found is None:
        return None
    spec = found.get("spec") or {}
    try:
        return float(spec.get("cpu", 0.0)), int(spec.get("gpu", 0) or 0)
    except (TypeError, ValueError):
        return None


def _drop_stale(pool: _Pool, now_s: float) -> None:
    for name, seen in list(pool.members.items()):
        if now_s - seen.seen_s > max(MEMBER_STALE_S, 3 * seen.interval_s):
            del pool.members[name]


async def _allocate_when_due(pool: _Pool, now_s: float) -> None:
    """Divide the pool again when its size or members changed, or once per interval when a need outgrew its share."""
    assert pool.capacity is not None
    identity = (pool.capacity, tuple(sorted(pool.members)))
    interval = min((s.interval_s for s in pool.members.values()), default=10.0)
    if identity == pool.allocated_for and now_s - pool.allocated_s < max(5.0, interval) - 1e-6:
        return
    cpu, gpu = pool.capacity
    members = {name: seen.member for name, seen in pool.members.items()}
    shares = await asyncio.to_thread(allocate, members, cpu, gpu)
    pool.allocated_s = now_s
    if identity == pool.allocated_for and _close_enough(pool.shares, shares, cpu):
        return  # the shares in force still do: no member is re-planned for a small change
    pool.shares, pool.allocated_for = shares, identity
    for name, seen in pool.members.items():
        share = shares[name]
        if seen.held_cpu > share.cpu + 1e-9 or seen.held_gpu > share.gpu:  # it must give cores back: room to do so
            seen.releasing, seen.releasing_since_s = (seen.held_cpu, seen.held_gpu), now_s


def _close_enough(old: dict[str, Share], new: dict[str, Share], pool_cpu: float) -> bool:
    """The division in force covers every member's need and no share moved by a tenth of the pool (or a GPU)."""
    if set(old) != set(new):
        return False
    for name, share in new.items():
        kept = old[name]
        if share.reason != "Shared" or kept.reason != "Shared":
            return False
        if share.needed_cpu > kept.cpu + 1e-9 or share.needed_gpu > kept.gpu:
            return False
        if abs(share.cpu - kept.cpu) >= REDIVIDE_FRACTION * pool_cpu or share.gpu != kept.gpu:
            return False
    return True


def _grant(pool: _Pool, name: str, pool_name: str) -> Grant | Refusal:
    """The member's share, as far as the others have released what the pool holds (module docstring)."""
    assert pool.capacity is not None
    share = pool.shares.get(name)
    if share is None:
        return Refusal("WaitingForPool", f"joining InferenceBudget {pool_name}: its next division includes this service")
    if share.reason == "PoolExhausted":
        return Refusal("PoolExhausted", share.message)
    others = [(pool.shares.get(n), seen) for n, seen in pool.members.items() if n != name]
    taken_cpu = sum(max(s.cpu if s else 0.0, seen.held_cpu) for s, seen in others)
    taken_gpu = sum(max(s.gpu if s else 0, math.ceil(seen.held_gpu)) for s, seen in others)
    me = pool.members[name]
    cpu = max(min(share.cpu, pool.capacity[0] - taken_cpu), min(share.cpu, me.held_cpu))
    gpu = max(min(share.gpu, pool.capacity[1] - taken_gpu), min(share.gpu, math.ceil(me.held_gpu)))
    if cpu <= 1e-9:
        return Refusal("WaitingForPool", f"InferenceBudget {pool_name}: waiting for other members to release cores for this service's share ({share.cpu:g})")
    cpu, gpu = round(cpu, 3), max(0, gpu)
    surge = float(me.member.spec.budget.surge)
    cap_cpu, cap_gpu = cpu * (1 + surge), float(math.floor(gpu * (1 + surge) + 1e-9))
    if me.releasing is not None and _released(me, share):
        me.releasing = None
    if me.releasing is not None:  # a switch to a smaller plan needs room beside what still runs
        cap_cpu, cap_gpu = max(cap_cpu, me.releasing[0] + share.cpu * surge), max(cap_gpu, me.releasing[1])
    return Grant(cpu, gpu, share, pool_name, cap_cpu, cap_gpu)


def _released(seen: _Seen, share: Share) -> bool:
    """Given back: it has re-planned since (two of its intervals), its transition is over, and it fits its share."""
    settled = not seen.transitioning and seen.seen_s - seen.releasing_since_s >= 2 * seen.interval_s
    return settled and seen.held_cpu <= share.cpu + 1e-9 and seen.held_gpu <= share.gpu


def pool_status(pool: _Pool) -> dict[str, Any]:
    """What the InferenceBudget's status says: the members' shares and why."""
    members = [
        {
            "name": name,
            "cpu": round(share.cpu, 3),
            "gpu": share.gpu,
            "predictedLoadRps": round(share.demand_rps, 1),
            "servedFraction": round(share.served_fraction, 3),
            "reason": share.reason,
        }
        for name, share in sorted(pool.shares.items())
    ]
    fractions = [s.served_fraction for s in pool.shares.values() if s.reason != "PoolExhausted"]
    return {
        "allocatedCpu": round(sum(s.cpu for s in pool.shares.values()), 3),
        "allocatedGpu": sum(s.gpu for s in pool.shares.values()),
        "memberCount": len(members),
        "servedFraction": round(min(fractions), 3) if fractions else 1.0,
        "members": members,
    }


async def _write_status(api: KubeApi, namespace: str, name: str, pool: _Pool) -> None:
    """Patch the pool's status when what it says changed (a failure is retried at the next grant)."""
    status = pool_status(pool)
    if status == pool.written:
        return
    path = api_path(f"{GROUP}/{VERSION}", PLURAL, namespace, name, "status")
    try:
        await api.request("PATCH", path, {"status": status}, content_type="application/merge-patch+json")
    except ApplyFailed as exc:
        log.warning("cannot write the status of InferenceBudget %s/%s: %s", namespace, name, exc)
        return
    pool.written = status
