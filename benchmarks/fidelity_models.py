"""The simulations ``benchmarks/fidelity.py`` runs of one measured run: the headline on the host and loop as
measured in that run, and each simulation beside it, with the latencies and host each one runs on.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from fidelity_output import Scenario, one_figure  # beside this file

from infadapter.control import Latencies
from infadapter.planning import Plan
from infadapter.profiles import Profile
from infadapter.sim.machine import Machine

Model = tuple[str, Profile, Any, Machine, Latencies]


def run_models(
    sc: Scenario, machine: Machine, hosts: tuple[Machine, Machine | None], loops: tuple[Latencies, Latencies], mean: Latencies, observed: Any, by_second: Any
) -> list[Model]:
    """The simulations of one run: the simulator as a user runs it (its observer counts the requests sent) on the
    host and loop as measured in the run (``hosts[0]``, ``loops[0]``); the same at the profile's speed, at the mode's
    mean observer delay (``mean``), with the one-figure server model, the decisions' input replayed (what the run's
    observer read), a start's whole core, a start when planned, at the host's speed second by second; and the run's
    own plans replayed (``replay`` at ``loops[1]``: the servers and the actuation alone, no control loop to diverge)."""
    headline, own = hosts
    looped, replay = loops
    models: list[Model] = [("simulated", sc.profile, None, headline, looped), ("simulated_one_figure", one_figure(sc.profile), None, headline, looped)]
    if own is not None:
        models.append(("simulated_at_profile_speed", sc.profile, None, own, looped))
    if looped != mean:
        models.append(("simulated_at_mean_delay", sc.profile, None, headline, mean))
    if machine.jitter:
        models.append(("simulated_steady_host", sc.profile, None, dataclasses.replace(machine, jitter=(), seed=0), looped))
    if observed is not None:
        models.append(("simulated_as_observed", sc.profile, observed, headline, looped))
    # a start taking the whole core its boost allows, not the CPU one was measured to take, idle (the headline: on the
    # three batches run on the fixed controller, 2026-12-05, +2.6, +1.4 and -3.4 points where the whole core was +3.3 to +10.3)
    if machine.startup_cpu_s:
        models.append(("simulated_start_whole_core", sc.profile, None, dataclasses.replace(headline, startup_cpu_s={}), looped))
    if machine.ready_s:  # a new server serving when the controller planned it would (load time + start-up)
        models.append(("simulated_start_as_planned", sc.profile, None, dataclasses.replace(headline, ready_s={}), looped))
    models.append(("simulated_as_decided", sc.profile, None, headline, replay))
    if own is not None:
        models.append(("simulated_as_decided_at_profile_speed", sc.profile, None, own, replay))
    if by_second:  # and at the speed it ran at each second
        measured_host = dataclasses.replace(headline, speed_by_second=tuple(by_second))
        models.append(("simulated_at_measured_host", sc.profile, None, measured_host, looped))
        models.append(("simulated_as_decided_at_measured_host", sc.profile, None, measured_host, replay))
    return models


def run_latencies(mean: Latencies, phase_s: float | None) -> Latencies:
    """The embedded loop as a run's controller stepped it: it reads a second one second after the second ends, plus its
    step's phase within the second (:func:`at_phase`, from its decisions' times): 1.2-1.8 s at phases 0.2-0.8, whose
    mean is the mode's ``observe_s`` (``mean``). On the fifteen saved batches A-O the violations' rms error fell from
    1.21 to 1.09 points with it, 7 batches within ±0.5 against 5. ``None`` (a run that decided nothing): ``mean``."""
    if phase_s is None:
        return mean
    return dataclasses.replace(mean, observe_s=math.floor(mean.observe_s) + phase_s)


def at_phase(latencies: Latencies, decided: list[tuple[float, Plan, Any]]) -> tuple[Latencies, list[tuple[float, Plan, Any]]]:
    """``latencies`` whose loop steps at the fraction of a second the measured run's controller did (the circular
    mean of its decisions': one per run, within 0.05 s for most decisions), and the decisions moved to the nearest of
    those steps, so that each replayed plan is applied when it was decided, not up to a second later. The
    schedule is on the simulated controller's clock, which starts at its first step (``phase``)."""
    if not decided:
        return latencies, decided
    # the fractions' circular mean: a run whose phase is near a whole second has decisions at .98 and .02
    angle = np.angle(np.mean(np.exp(2j * np.pi * np.array([t for t, _, _ in decided]))))
    phase = float(angle / (2.0 * np.pi)) % 1.0
    return dataclasses.replace(latencies, observe_s=phase), [(float(round(t - phase)), plan, how) for t, plan, how in decided]


def run_hosts(machine: Machine, run: int, host_speed: float | None) -> tuple[Machine, Machine | None]:
    """Run ``run``'s simulated hosts, each with its own stretch of the host's measured swings (a seed per run).

    The headline's runs at ``host_speed``, the host's speed measured beside the run relative to the profile's
    (None where either was not probed), as the rest of the machine is measured beside the runs: on the saved
    batches A-M of 2026-12-05/06 its violations erred by 1.10 points rms, against 1.52 at the profile's speed and
    a floor of 0.93 that the batches' own standard errors set. The second is that host at the profile's speed
    (``simulated_at_profile_speed``; None where there is no measured speed to differ from)."""
    own = dataclasses.replace(machine, seed=machine.seed + run)
    if host_speed is None:
        return own, None
    return dataclasses.replace(own, speed=host_speed), own
