"""Reconfigurations of a running :class:`LocalRuntime` that block until they serve (tests, benchmarks).

:func:`apply_plan` (:meth:`LocalRuntime.apply`) converges to one plan by the controller's own make-before-break
rule: it returns once the plan serves and the router's split is the plan's; servers that leave drain in the
background. :func:`reconfigure` applies plans one after another (under load, by the caller). What each
reconfiguration did is recorded on the caller's clock (the load generator's, so a window of its requests
can be reported) with the servers resized in place whose process changed (an in-place resize must keep
it). Used by the slow reconfiguration tests and ``benchmarks/reconfigure.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from infadapter.control import Action, actuation, converged, same_weights, split
from infadapter.errors import ApplyFailed
from infadapter.planning import Plan
from infadapter.profiles import Profile
from infadapter.runtime.local.servers import LocalChanges
from infadapter.spec import ResizePolicy

if TYPE_CHECKING:
    from infadapter.runtime.local.actuator import LocalRuntime


@dataclass(frozen=True)
class Reconfiguration:
    """One plan applied: what changed, when (``began_s``/``ended_s`` on the caller's clock), what restarted."""

    plan: Plan
    changes: LocalChanges
    began_s: float
    ended_s: float
    restarted: tuple[str, ...] = ()  # servers resized in place whose process changed (none expected)


def apply_plan(runtime: LocalRuntime, plan: Plan, *, in_place: bool | None = None, profile: Profile | None = None, timeout_s: float = 120.0) -> LocalChanges:
    """Converge ``runtime`` to ``plan`` by the controller's make-before-break rule and block until it serves.

    Without ``profile`` capacities are unknown: a leaving variant waits for every planned replica.
    """
    if in_place is None:
        in_place = runtime.spec.adaptation.resize_policy == ResizePolicy.IN_PLACE_OR_RECREATE
    deadline = time.monotonic() + timeout_s
    failed_before = len(runtime.failed_starts)
    changes = LocalChanges(0.0)
    sent: Action | None = None
    while True:
        state = runtime.state()
        if converged(plan, state) and same_weights(state.weights, split(plan, state, profile)):
            return changes
        failed = runtime.failed_starts[failed_before:]
        if failed:
            raise ApplyFailed(f"instances did not start: {', '.join(failed)}")
        if time.monotonic() > deadline:
            raise ApplyFailed(f"{plan.describe()} not running after {timeout_s:g} s")
        action = actuation(plan, state, profile, in_place=in_place and runtime.use_cgroup, instant=True)
        if action != sent:
            changes, sent = changes + runtime.execute(action), action
        time.sleep(0.05)  # the servers start and drain on the runtime's threads


def reconfigure(
    runtime: LocalRuntime,
    plans: Iterable[Plan],
    *,
    gap_s: float,
    clock: Callable[[], float] = time.monotonic,
    wait: Callable[[float], object] = time.sleep,
    timeout_s: float = 120.0,
) -> list[Reconfiguration]:
    """Apply ``plans`` in turn, ``gap_s`` apart, then wait until every leaving server is stopped."""
    done = []
    for plan in plans:
        pids = {inst.key: inst.triton.pid for inst in runtime.ready_instances()}
        began = clock()
        changes = runtime.apply(plan, timeout_s=timeout_s)
        ended = clock()
        now = {inst.key: inst.triton.pid for inst in runtime.ready_instances()}
        # a replica started meanwhile may be resized too: only servers that ran before are checked
        restarted = tuple(key for key in changes.resized if key in pids and now.get(key) != pids[key])
        done.append(Reconfiguration(plan, changes, began, ended, restarted))
        wait(gap_s)
    runtime.wait_retired()
    return done
