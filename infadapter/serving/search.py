"""The capacity search of one server: open-loop load steps at chosen rates, and what they show.

:func:`search_capacity` grows then bisects the rate to the highest at which the SLO percentile holds;
:func:`ceiling_steps` overload the server to measure its throughput ceiling; :func:`steady_step`
brings a capacity that a step was too short to judge back to a rate whose queue a step does see settle.
Pure apart from the ``measure`` callable each takes: the local profiler (a ``tritonserver`` it starts)
and the remote one (a Triton anywhere) search the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from infadapter.loadgen import LoadReport
from infadapter.profiles import CEILING_MARGIN

#: relaxation times a load step must last for its tail to be the steady state's (a queue is within 5 % of
#: its steady level after three). With one, 17 of a profile's 18 points kept their capacity, among them
#: ResNet-152 at 1.5 cores at 86 % of its ceiling: a relaxation time of 4 s, in a 6-s step
SETTLE_TIMES = 3.0

#: the load of the step that measures a server's throughput ceiling, as a multiple of its capacity
OVERLOAD_FACTOR = 2.0

#: the share of what an overloading step sent that, answered within it, shows the server kept up: at a throughput
#: ceiling 1.1-1.4 x the capacity (the measured profiles'), a step at twice the capacity answers 55-70 % of it
KEPT_UP_SHARE = 0.8


@dataclass(frozen=True)
class RateStep:
    """One rate of the capacity search and whether the SLO held at it."""

    rate_rps: float
    passed: bool
    report: LoadReport


def measure_step(measure: Callable[[float], LoadReport], rate_rps: float, percentile: float) -> RateStep:
    """One load step at ``rate_rps`` and whether the SLO held at it."""
    report = measure(rate_rps)
    return RateStep(rate_rps, slo_holds(report, percentile), report)


def ceiling_steps(
    measure: Callable[[float], LoadReport], capacity_rps: float, steps: Sequence[RateStep], percentile: float, *, most: int = 3
) -> list[RateStep]:
    """Steps that overload the server: one at :data:`OVERLOAD_FACTOR` x the capacity (unless a step was already
    offered that much, or nothing passed), then :data:`OVERLOAD_FACTOR` x the heaviest step while that step
    :func:`kept_up`, ``most`` steps at most. The answers that come back within an overloaded step are the
    server's throughput ceiling (the excess is answered after it), which the simulator serves no more than.

    The search ends within 10 % of the capacity, and a server that keeps up with a step answers what it
    is sent: without such a step the saturation was often only a lower bound, and the simulator took the
    throughput from the tail at the capacity instead, 2.3-3.6 x the capacity on three sizes of one
    measured profile (ResNet-18 at 0.25 cores: 18.3 rps simulated; the server answered 11.5 at most).
    Twice the capacity is not always enough: where the SLO, not the throughput, limits the capacity (ResNet-18 at
    0.25 cores, its CPU quota throttled in bursts: capacity 7.2 rps), a step at 14.2 rps answered 13.3 of them,
    and an embedded run's server then kept up with 13-17 rps using 0.16-0.22 of its 0.25 cores.
    """
    if capacity_rps <= 0:
        return []
    added: list[RateStep] = []
    for _ in range(most):
        heaviest = max((*steps, *added), key=lambda s: s.rate_rps, default=None)
        if heaviest is None or heaviest.rate_rps < OVERLOAD_FACTOR * capacity_rps:
            rate = OVERLOAD_FACTOR * capacity_rps
        elif kept_up(heaviest.report):
            rate = OVERLOAD_FACTOR * heaviest.rate_rps
        else:
            break
        added.append(measure_step(measure, rate, percentile))
    return added


def kept_up(report: LoadReport) -> bool:
    """The step's answers within it were at least :data:`KEPT_UP_SHARE` of what it sent: it did not find the
    ceiling (False where it counted no answers: nothing shows it kept up)."""
    return not math.isnan(report.completed_rps) and report.completed_rps >= KEPT_UP_SHARE * report.achieved_rps


def slo_holds(report: LoadReport, percentile: float) -> bool:
    """The percentile latency is within the SLO: violations (slow or failed) <= (100 - p) %."""
    allowed = (100.0 - percentile) / 100.0
    return report.sent > 0 and report.slo_violation_ratio <= allowed + 1e-12


def search_capacity(
    measure: Callable[[float], LoadReport],
    guess_rps: float,
    percentile: float,
    *,
    max_steps: int = 6,
    tolerance: float = 0.1,
    min_rps: float = 0.5,
    retries: int = 2,
    on_step: Callable[[RateStep], None] | None = None,
) -> tuple[float, RateStep | None, list[RateStep]]:
    """Highest passing rate found by grow-then-bisect; ``measure(rate)`` runs one load step.

    Interference from other work only ever makes latency worse, so a failure that is not clearly
    saturation (median within the SLO, at most 20 % violations) is measured again, up to ``retries``
    times per search, and the better outcome counts. Returns (capacity, the passing step at capacity or None, all
    steps). Pure apart from ``measure``.
    """
    lo, hi = 0.0, math.inf
    best: RateStep | None = None
    steps: list[RateStep] = []
    rate = max(min_rps, guess_rps)
    for _ in range(max_steps):
        step = measure_step(measure, rate, percentile)
        steps.append(step)
        if on_step is not None:
            on_step(step)
        if not step.passed and retries > 0 and step.report.slo_violation_ratio <= 0.2 and not step.report.p50_ms > step.report.slo_ms:
            retries -= 1
            step = measure_step(measure, rate, percentile)
            steps.append(step)
            if on_step is not None:
                on_step(step)
        if step.passed:
            lo, best = rate, step
        else:
            hi = rate
        if lo > 0 and hi < math.inf and (hi - lo) <= tolerance * lo:
            break
        if hi == math.inf:
            # far below the SLO: double; near it: x1.5
            rate = lo * (2.0 if step.report.p99_ms < 0.5 * step.report.slo_ms else 1.5)
        elif lo == 0:
            rate = hi / 2
            if rate < min_rps:
                break
        else:
            rate = (lo + hi) / 2
    return lo, best, steps


def most_answered_rps(steps: Sequence[RateStep]) -> float | None:
    """The most requests a second any step had answered by its end (None: no step counted them)."""
    completed = [s.report.completed_rps for s in steps if not math.isnan(s.report.completed_rps)]
    return max(completed) if completed else None


def throughput_ceiling(steps: Sequence[RateStep]) -> float | None:
    """What the most heavily loaded of the :func:`overloaded` steps answered a second: the server's ceiling
    (None: no step was overloaded, the answers are only a lower bound).

    Not the most any overloaded step answered: that maximum of noisy figures reads high. ResNet-50's overloaded
    steps at 1.5 cores answered 63.5, 63.2, 63.0 and 62.3 rps in one search, 64.3, 63.3 and 62.8 in another (at
    1.0 core 41.8, then 41.7, 41.7 and 39.8), the step at twice the capacity the least each time, 1.9-4.5 %
    below the maximum; in the bursts of 13 embedded runs the backlogged server answered 59.0-59.8 rps where the
    maximum had made its ceiling 60.8. Under a load 10 % above the ceiling, 2 % less ceiling makes a backlog
    grow 20 % faster: on those runs, replayed, the simulator's late requests went from 0.33 % to 1.40 %
    (measured 1.03 %) when every ceiling was 2 % lower."""
    heavy = [s for s in steps if overloaded(s.report)]
    return max(heavy, key=lambda s: s.report.achieved_rps).report.completed_rps if heavy else None


def saturation_of(steps: Sequence[RateStep]) -> float | None:
    """The profile's saturation of a point measured by ``steps``: its :func:`throughput_ceiling` where a step
    overloaded the server, else the most any step answered (a lower bound; None: no step counted answers)."""
    ceiling = throughput_ceiling(steps)
    return ceiling if ceiling is not None else most_answered_rps(steps)


def overloaded(report: LoadReport) -> bool:
    """More of the step's requests were unanswered at its end than latencies within the SLO leave unanswered
    (those sent in its last SLO's worth of time), by :data:`~infadapter.profiles.CEILING_MARGIN` of them:
    a queue built up. A step that kept up leaves 3 % unanswered at 200 ms of 6 s, so sent against
    answered alone took a server that kept up for one at its ceiling."""
    if report.achieved_rps <= 0 or math.isnan(report.completed_rps) or report.duration_s <= 0:
        return False
    unanswered = 1.0 - report.completed_rps / report.achieved_rps
    return unanswered > report.slo_ms / 1000.0 / report.duration_s + CEILING_MARGIN


def steady_limit_rps(ceiling_rps: float, duration_s: float) -> float:
    """The highest rate whose queue a ``duration_s`` step sees settle, on a server that answers at most
    ``ceiling_rps``: a queue at utilisation ``u`` forgets its start in about ``1 / (ceiling (1 - sqrt u)^2)``
    seconds (the M/M/1 relaxation time), and a step is :data:`SETTLE_TIMES` of them long only below
    ``u = (1 - sqrt(SETTLE_TIMES / (ceiling x duration)))^2``. Above it the step ends while its queue still
    grows, and a rate that passed it can fail when held: 0.89 of the ceiling for 146 rps and 6-s steps,
    0.80 for 44 rps, 0.46 for 4.8 rps."""
    served = ceiling_rps * duration_s
    if served <= SETTLE_TIMES:
        return 0.0
    return ceiling_rps * (1.0 - math.sqrt(SETTLE_TIMES / served)) ** 2


def steady_step(
    measure: Callable[[float], LoadReport],
    capacity_rps: float,
    steps: Sequence[RateStep],
    duration_s: float,
    percentile: float,
    *,
    tolerance: float = 0.1,
) -> tuple[float, RateStep | None, list[RateStep]] | None:
    """Where the search's capacity is past :func:`steady_limit_rps` of the measured ceiling (a 6-s step passed
    ResNet-50 at 1 core at 100 % of its ceiling; held for a minute, that rate built a 40-s backlog):
    (the capacity, its passing step, the new steps) re-measured at that limit, or at ``1 - tolerance`` of it
    if the limit fails; a step already measured that high and passing counts without a new one. Nothing
    passing: capacity 0 and no step. None where the capacity is within the limit or the ceiling is unknown."""
    ceiling = throughput_ceiling(steps)
    if ceiling is None or capacity_rps <= (limit := steady_limit_rps(ceiling, duration_s)):
        return None
    known = max((s for s in steps if s.passed and s.rate_rps <= limit), key=lambda s: s.rate_rps, default=None)
    added: list[RateStep] = []
    for rate in (round(limit, 2), round(limit * (1.0 - tolerance), 2)):
        if known is not None and known.rate_rps >= rate * (1.0 - tolerance):
            return known.rate_rps, known, added
        added.append(measure_step(measure, rate, percentile))
        if added[-1].passed:
            return rate, added[-1], added
    return (known.rate_rps, known, added) if known is not None else (0.0, None, added)
