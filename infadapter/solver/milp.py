"""The exact MILP (PuLP; CBC or HiGHS), in the order of the maths in :mod:`.problem`.

Constants, variables, constraints (each named), objective, solve, extract. Options that
can never be part of an optimal plan are pruned first (see :func:`prune`), which keeps
the paper-size problem to a few dozen binaries. Infeasible loads are solved in two
phases: first the most load that the budget can serve, then the best objective among
plans serving that much.

What a run proved is read from PuLP's *solution* status, not only its overall status: PuLP
reports a HiGHS or CBC run stopped by its time limit with an incumbent as "Optimal"
(``sol_status`` ``LpSolutionIntegerFeasible``). Such a plan comes back ``feasible`` (or
``time_limit`` when it does not serve all the load), and a run stopped before any solution
claims neither optimality nor infeasibility (``time_limit``); see :mod:`.problem`.

Neither solver may write to stdout (``infadapter plan --json`` prints one JSON object there):
CBC runs with ``msg=False``, and HiGHS is built with its logging off before its first call
(:class:`_SilentHighs`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

import highspy
import pulp

from infadapter.solver.evaluate import score
from infadapter.solver.milp_model import Model, ReplicaRange, build, split_options
from infadapter.solver.problem import (
    TOLERANCE,
    Problem,
    ResourceOption,
    ServiceSolution,
    Solution,
    Status,
    VariantOptions,
)

Backend = Literal["cbc", "highs"]

#: what one solver run established: a proven optimum, an unproven incumbent, proven infeasibility, nothing
Outcome = Literal["optimal", "incumbent", "infeasible", "unknown"]


def prune(variant: VariantOptions, load_rps: float) -> tuple[ResourceOption, ...]:
    """Drop options that another option of the same variant dominates.

    ``o'`` dominates ``o`` when it costs no more CPU and GPU, has at least the useful
    capacity (capacity beyond the service's load is useless), and triggers no transition
    where ``o`` does not. Ties keep the first (cheapest) option, so pruning is deterministic.
    """
    options = variant.options
    useful = [min(o.capacity_rps, load_rps) if load_rps > TOLERANCE else o.capacity_rps for o in options]
    trans = [o.transition_from(variant.current) for o in options] if variant.current is not None else [True] * len(options)
    cpu = [o.cost_cpu for o in options]
    gpu = [o.cost_gpu for o in options]
    order = sorted(range(len(options)), key=lambda i: (cpu[i], gpu[i], -useful[i], trans[i], i))
    kept: list[int] = []
    one_gpu_cost = len(set(gpu)) <= 1
    most_plain = most_any = float("-inf")  # the most useful capacity kept without / with a transition
    for i in order:
        if useful[i] <= TOLERANCE and not variant.required:
            continue
        if one_gpu_cost:
            # kept options come first in the order, so cost no more: only capacity and transition decide
            dominated = (most_any if trans[i] else most_plain) >= useful[i] - 1e-12
        else:
            dominated = any(cpu[j] <= cpu[i] + 1e-12 and gpu[j] <= gpu[i] and useful[j] >= useful[i] - 1e-12 and trans[j] <= trans[i] for j in kept)
        if not dominated:
            kept.append(i)
            most_any = max(most_any, useful[i])
            if not trans[i]:
                most_plain = max(most_plain, useful[i])
    return tuple(options[i] for i in sorted(kept))


class _SilentHighs(highspy.Highs):
    """A HiGHS instance whose logging is off before its first call.

    highspy's constructor registers its callbacks (``enableCallbacks``), and that first call
    prints the HiGHS banner on stdout; PuLP sets ``output_flag`` only afterwards, too late.
    """

    def enableCallbacks(self) -> None:
        self.setOptionValue("output_flag", False)
        self.setOptionValue("log_to_console", False)
        super().enableCallbacks()  # type: ignore[no-untyped-call]  # highspy leaves it unannotated


class _PulpHiGHS(pulp.HiGHS):  # type: ignore[misc]  # pulp ships no type information
    """PuLP's in-process HiGHS, silent, single-threaded, with a zero gap."""

    def createAndConfigureSolver(self, lp: pulp.LpProblem) -> None:
        model = _SilentHighs()  # type: ignore[no-untyped-call]  # highspy leaves __init__ unannotated
        # presolve stays on: without it HiGHS 1.15 returned a non-optimal "Optimal" on a joint
        # max-served model (found by the DP = MILP property test)
        model.setOptionValue("threads", 1)
        model.setOptionValue("mip_rel_gap", 0.0)
        if self.timeLimit is not None:
            model.setOptionValue("time_limit", float(self.timeLimit))
        lp.solverModel = model


def _solver(backend: Backend, time_limit_s: float | None) -> pulp.LpSolver:
    if backend == "highs":
        return _PulpHiGHS(msg=False, timeLimit=time_limit_s)
    return pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s, threads=1, gapRel=0.0)


def _run(model: Model, backend: Backend, time_limit_s: float | None) -> Outcome:
    model.lp.solve(_solver(backend, time_limit_s))
    return outcome(model.lp.status, model.lp.sol_status)


def outcome(status: int, sol_status: int) -> Outcome:
    """What a run proved, from PuLP's overall ``status`` and its ``sol_status``.

    Only ``sol_status`` separates a proven optimum from an incumbent that a time limit
    stopped: PuLP gives both the overall status "Optimal".
    """
    if sol_status == pulp.LpSolutionOptimal and status == pulp.LpStatusOptimal:
        return "optimal"
    if sol_status == pulp.LpSolutionIntegerFeasible:
        return "incumbent"
    if status == pulp.LpStatusInfeasible:
        return "infeasible"
    return "unknown"  # stopped before any solution, or a solver error: nothing proven


def _extract(problem: Problem, model: Model | None) -> list[ServiceSolution]:
    if model is None:
        return []
    out: list[ServiceSolution] = []
    for s, (service, weight) in enumerate(zip(problem.services, problem.weights(), strict=True)):
        chosen = {service.variants[m].name: option for m, option in model.chosen(s).items()}
        # for fixed choices, routing min(L, capacity) most-accurate-first is optimal in both phases
        out.append(score(service, chosen, problem.budget_cpu, problem.budget_gpu, weight=weight))
    return out


def _forms(problem: Problem) -> list[list[tuple[tuple[ResourceOption, ...], list[ReplicaRange]]]]:
    """Per service and variant: its single options (pruned) and its replica ranges."""
    out = []
    for service in problem.services:
        row = []
        for variant in service.variants:
            ranges, singles = split_options(variant)
            row.append((prune(replace(variant, options=tuple(singles)), service.load_rps), ranges))
        out.append(row)
    return out


#: a load beyond this many times everything's capacity only scales the accuracy term below the tolerance
_ABSURD_LOAD_FACTOR = 1e6


def _numerically_safe(problem: Problem) -> Problem:
    """Cap absurd loads (say 1e20 rps) so the solver's coefficients stay representable.

    Past ``1e6 x`` the total capacity of every option, the accuracy term ``a·q/L`` is below the
    solver's tolerance whatever ``L`` is, so the capped model has the same optimum; the solution
    is still scored against the real load.
    """
    services = []
    for service in problem.services:
        bound = _ABSURD_LOAD_FACTOR * max(1.0, sum(max((o.capacity_rps for o in v.options), default=0.0) for v in service.variants))
        services.append(replace(service, load_rps=bound) if service.load_rps > bound else service)
    return replace(problem, services=tuple(services))


_UNPROVEN = "the time limit stopped the solver before it proved this plan optimal"
_NOTHING_YET = "the time limit stopped the solver before it found any plan (raise the time limit)"


def solve_milp(problem: Problem, backend: Backend = "highs", time_limit_s: float | None = 30.0) -> Solution:
    """Solve ``problem`` exactly; never raises on an infeasible load (returns ``status='infeasible'``).

    ``time_limit_s`` bounds each solver run; a run it stops is reported as ``feasible`` or
    ``time_limit`` (see :mod:`.problem`), never as ``optimal`` or ``infeasible``.
    """
    started = time.perf_counter()
    if problem.budget_cpu <= 0:
        raise ValueError("budget_cpu must be > 0")
    scored = problem
    problem = _numerically_safe(problem)
    forms = _forms(problem)

    def done(status: Status, model: Model | None, *notes: str) -> Solution:
        services = _extract(scored, model)
        if status == "feasible" and not _serves_all(scored, services):
            status = "time_limit"  # an incumbent of the demand model always should; never claim it
        objective = sum(s.joint_term for s in services) if services else float("-inf")
        return Solution(status, tuple(services), objective, time.perf_counter() - started, backend, notes)

    model = build(problem, forms, None, maximise_served=False)
    first = _run(model, backend, time_limit_s)
    if first == "optimal":
        return done("optimal", model)
    if first == "incumbent":
        return done("feasible", model, _UNPROVEN)
    # Phase 1: the most load the budget can serve; phase 2: the best plan serving it.
    probe = build(problem, forms, None, maximise_served=True)
    found = _run(probe, backend, time_limit_s)
    if found == "infeasible":
        return done("infeasible", None, "no plan fits the budget at all (required variants or minimum sizes exceed it)")
    if found == "unknown":
        return done("time_limit", None, _NOTHING_YET)
    if found == "incumbent":
        return done("time_limit", probe, "the time limit stopped the solver before it found the most load the budget serves")
    most = float(pulp.value(probe.lp.objective) or 0.0)
    demand = sum(s.load_rps for s in problem.services)
    if first == "unknown" and most >= demand - TOLERANCE * max(1.0, demand):
        return done("feasible", probe, _UNPROVEN)  # the load fits; the first run only ran out of time
    served_note = f"the budget serves at most {most:.3f} of {demand:.3f} rps"
    model = build(problem, forms, most - 1e-7 * max(1.0, most), maximise_served=False)
    second = _run(model, backend, time_limit_s)
    if second == "optimal":
        return done("infeasible", model, served_note)
    if second == "incumbent":
        return done("time_limit", model, served_note, _UNPROVEN)
    if second == "unknown":
        return done("time_limit", probe, served_note, _UNPROVEN)
    return done("infeasible", probe, served_note)  # numerically marginal: keep phase 1's plan


def _serves_all(problem: Problem, services: Sequence[ServiceSolution]) -> bool:
    return len(services) == len(problem.services) and all(
        s.served_rps >= p.load_rps - TOLERANCE * max(1.0, p.load_rps) for s, p in zip(services, problem.services, strict=True)
    )
