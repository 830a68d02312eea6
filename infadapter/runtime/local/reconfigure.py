"""Reconfigurations of a running :class:`LocalRuntime`, one plan after another (under load, by the caller).

Each plan is applied with :meth:`LocalRuntime.apply` (make-before-break: it returns once the plan serves
and the router's split is the plan's; servers that leave drain in the background). What each
reconfiguration did is recorded on the caller's clock (the load generator's, so a window of its requests
can be reported) with the servers resized in place whose process changed (an in-place resize must keep
it). Used by the slow reconfiguration tests and ``benchmarks/reconfigure.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from infadapter.planning import Plan
from infadapter.runtime.local.servers import LocalChanges

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
