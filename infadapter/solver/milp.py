"""The exact MILP (PuLP; CBC or HiGHS), in the order of the maths in :mod:`.problem`.

Constants, variables, constraints (each named), objective, solve, extract. Options that
can never be part of an optimal plan are pruned first (see :func:`prune`), which keeps
the paper-size problem to a few dozen binaries. Infeasible loads are solved in two
phases: first the most load that the budget can serve, then the best objective among
plans serving that much. A proven optimum is then tie-broken where a cost weight is 0
(:func:`_tie_broken`): among the plans within ``TIE_TOLERANCE`` of it, the lowest cost term, then
the fewest replicas; with every cost weight above 0, each variant's share moves to the same-cost option
with the fewest replicas (:func:`_fewer_replicas`).

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

import itertools
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

import highspy
import pulp

from infadapter.solver.evaluate import resources, score
from infadapter.solver.milp_model import Model, ReplicaRange, build, cost_term, split_options, tie_break_objective
from infadapter.solver.problem import (
    TIE_TOLERANCE,
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
    capacity (capacity beyond the service's load is useless), triggers no transition where
    ``o`` does not, and either costs strictly less or has no more replicas: of two options
    that cost the same, the tie-break (:mod:`.problem`) may prefer the one with fewer
    replicas even where the other has more capacity. Ties keep the first option in
    (cost, replicas, given) order, so pruning is deterministic.
    """
    options = variant.options
    return tuple(options[i] for i in sorted(undominated(variant, load_rps)[0]))


def undominated(variant: VariantOptions, load_rps: float) -> tuple[list[int], list[float], list[bool]]:
    """:func:`prune`'s work: the indices of the options it keeps (in no set order), and every option's CPU
    cost and transition (whether it creates or resizes an instance), for callers that need them too."""
    options = variant.options
    useful = [min(o.capacity_rps, load_rps) for o in options] if load_rps > TOLERANCE else [o.capacity_rps for o in options]
    current = variant.current
    trans = [o.transition_from(current) for o in options] if current is not None else [True] * len(options)
    cpu = [o.cost_cpu for o in options]
    reps = [o.replicas for o in options]
    gpu = [(o.gpus * o.replicas, o.accelerator) if o.gpus else (0, "") for o in options]  # (devices, their type)
    order = sorted(range(len(options)), key=cpu.__getitem__)  # a C key: the common case has no equal costs
    if any(cpu[i] == cpu[j] for i, j in itertools.pairwise(order)):  # ties: the whole order of the docstring
        order.sort(key=lambda i: (cpu[i], gpu[i], -useful[i], trans[i], reps[i], i))
    if len(set(gpu)) == 1:
        return _linear_prune(order, variant.required, cpu, gpu, useful, trans, reps), cpu, trans
    kept: list[int] = []
    for i in order:
        if (useful[i] > TOLERANCE or variant.required) and not any(_dominates(j, i, cpu, gpu, useful, trans, reps) for j in kept):
            kept.append(i)
    return kept, cpu, trans


def _linear_prune(
    order: list[int], required: bool, cpu: list[float], gpu: list[tuple[int, str]], useful: list[float], trans: list[bool], reps: list[int]
) -> list[int]:
    """One GPU cost (the usual case): options come by CPU cost, so every option kept before this one's
    cost group costs strictly less and only capacity and transition decide; within the group (equal
    cost), replicas too. Linear instead of quadratic: 1,500 options per variant at 300 replicas."""
    most_plain = most_any = float("-inf")  # the most useful capacity kept, strictly cheaper, without / with a transition
    group: list[int] = []
    kept: list[int] = []
    for i in order:
        u = useful[i]
        if u <= TOLERANCE and not required:
            continue
        if group and cpu[i] > cpu[group[0]] + 1e-12:
            for j in group:  # a loop, not lists passed to max(): it runs for every option of every solve
                most_any = max(most_any, useful[j])
                if not trans[j]:
                    most_plain = max(most_plain, useful[j])
            group = []
        if (most_any if trans[i] else most_plain) >= u - 1e-12:
            continue
        if group and any(_dominates(j, i, cpu, gpu, useful, trans, reps) for j in group):
            continue
        kept.append(i)
        group.append(i)
    return kept


def _dominates(j: int, i: int, cpu: list[float], gpu: list[tuple[int, str]], useful: list[float], trans: list[bool], reps: list[int]) -> bool:
    # devices of two accelerator types are not comparable: only none, or fewer of the same type, is less
    gpu_le = gpu[j][0] == 0 or (gpu[j][1] == gpu[i][1] and gpu[j][0] <= gpu[i][0])
    if cpu[j] > cpu[i] + 1e-12 or not gpu_le or useful[j] < useful[i] - 1e-12 or trans[j] > trans[i]:
        return False
    return cpu[j] < cpu[i] - 1e-12 or gpu[j][0] < gpu[i][0] or reps[j] <= reps[i]


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
        model.setOptionValue("mip_abs_gap", 0.0)  # its default, 1e-6, would blur the tie-break's ties (1e-9)
        if self.timeLimit is not None:
            model.setOptionValue("time_limit", float(self.timeLimit))
        lp.solverModel = model


def _solver(backend: Backend, time_limit_s: float | None) -> pulp.LpSolver:
    if backend == "highs":
        return _PulpHiGHS(msg=False, timeLimit=time_limit_s)
    return pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s, threads=1, gapRel=0.0, gapAbs=0.0)


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
        out.append(score(service, chosen, problem, weight=weight))
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

    def done(status: Status, model: Model | list[ServiceSolution] | None, *notes: str) -> Solution:
        services = model if isinstance(model, list) else _extract(scored, model)
        if status == "feasible" and not _serves_all(scored, services):
            status = "time_limit"  # an incumbent of the demand model always should; never claim it
        objective = sum(s.joint_term for s in services) if services else float("-inf")
        return Solution(status, tuple(services), objective, time.perf_counter() - started, backend, notes)

    model = build(problem, forms, None, maximise_served=False)
    first = _run(model, backend, time_limit_s)
    if first == "optimal":
        return done("optimal", _tie_broken(scored, problem, model, backend, time_limit_s))
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
        return done("infeasible", _tie_broken(scored, problem, model, backend, time_limit_s), served_note)
    if second == "incumbent":
        return done("time_limit", model, served_note, _UNPROVEN)
    if second == "unknown":
        return done("time_limit", probe, served_note, _UNPROVEN)
    return done("infeasible", probe, served_note)  # numerically marginal: keep phase 1's plan


def _serves_all(problem: Problem, services: Sequence[ServiceSolution]) -> bool:
    return len(services) == len(problem.services) and all(
        s.served_rps >= p.load_rps - TOLERANCE * max(1.0, p.load_rps) for s, p in zip(services, problem.services, strict=True)
    )


#: the tie row is multiplied by this so that the solver's feasibility tolerance on it (1e-7) stands for
#: 1e-10 of objective, below TIE_TOLERANCE: a plan worse than the ties cannot slip in as one
_TIE_ROW_SCALE = 1e3


def _tie_broken(scored: Problem, problem: Problem, model: Model, backend: Backend, time_limit_s: float | None) -> list[ServiceSolution]:
    """The optimum, tie-broken by :func:`_cheapest_tie` where resources can tie: when some service's cost weight
    is 0 (its resources are then free in the objective, and plans of every size tie). With every cost weight
    above 0, a cheaper plan of the same objective would need an exactly compensating accuracy, so the optimum is
    kept as it is: the extra solves cost seconds on a fleet's grid (the oracle's 48 solves of the 2,000-core
    benchmark went from 27 s to 145 s) for a tie that does not arise. The ties of one cost that do arise
    there (the same resources in fewer replicas) are resolved by :func:`_fewer_replicas`, without a solve.
    The DP, which ``auto`` uses for CPU-only problems, prefers fewer replicas among every equal-cost tie."""
    if all(service.cost_weight > 0 for service in problem.services):
        return _fewer_replicas(scored, _extract(scored, model))
    return _cheapest_tie(scored, problem, model, backend, time_limit_s)


def _fewer_replicas(problem: Problem, plan: list[ServiceSolution]) -> list[ServiceSolution]:
    """``plan`` with each variant's option swapped for the one of the same variant with the fewest replicas
    that costs the same (cores, devices and their type), holds the variant's share and adds no transition.

    With every cost weight above 0 the ties left are such plans (1 core x 2 against 2 cores x 1, one
    2-GPU replica against two 1-GPU ones): found in one pass, without another solve. A swapped plan is
    kept only where it re-scores as a tie; a tie that routes the load differently is not searched.
    """
    out = []
    for service, solution, weight in zip(problem.services, plan, problem.weights(), strict=True):
        by_name = {v.name: v for v in service.variants}
        chosen = {a.variant: a.option for a in solution.assignments}
        for a in solution.assignments:
            variant, was = by_name[a.variant], a.option
            moves = was.transition_from(variant.current)
            same = [
                o
                for o in variant.options
                if o.replicas < was.replicas
                and abs(o.cost_cpu - was.cost_cpu) < 1e-9
                and (o.cost_gpu, o.device) == (was.cost_gpu, was.device)
                and o.capacity_rps >= a.load_rps - TOLERANCE
                and (moves or not o.transition_from(variant.current))
            ]
            if same:
                chosen[a.variant] = min(same, key=lambda o: o.replicas)
        swapped = score(service, chosen, problem, weight=weight)
        tie = _served([swapped]) == _served([solution])
        out.append(swapped if tie and swapped.joint_term >= solution.joint_term - TIE_TOLERANCE else solution)
    return out


def _cheapest_tie(scored: Problem, problem: Problem, model: Model, backend: Backend, time_limit_s: float | None) -> list[ServiceSolution]:
    """Among the plans within ``TIE_TOLERANCE`` of the optimum ``model`` holds, the lowest cost term,
    then the fewest replicas (lexicographic phases on the same model; see :mod:`.problem`).

    Every plan a phase returns is re-scored exactly; one that is not a tie (same load served,
    objective within the tolerance) or not cheaper is ignored, so the result is never worse.
    """
    best = _extract(scored, model)
    served, floor = _served(best), sum(s.joint_term for s in best) - TIE_TOLERANCE
    # the row holds the model's own objective: for an absurd load the model's (capped) load is not the real one
    model_floor = sum(s.joint_term for s in _extract(problem, model)) - TIE_TOLERANCE
    model.lp += _TIE_ROW_SCALE * model.lp.objective >= _TIE_ROW_SCALE * model_floor, "tie"
    combined = tie_break_objective(model)
    for phase in ["combined"] if combined is not None else ["cost", "replicas"]:
        if phase == "combined":
            goal = combined
        elif phase == "cost":
            goal = cost_term(problem, model)
        else:  # the fewest replicas at the cost the first phase found
            cost, _ = resources(scored, best)
            model.lp += _TIE_ROW_SCALE * cost_term(problem, model) <= _TIE_ROW_SCALE * (cost + TIE_TOLERANCE), "tie_cost"
            goal = pulp.lpSum(v.replicas() for row in model.vars for v in row)
        model.lp.sense = pulp.LpMinimize
        model.lp.setObjective(goal)
        if _run(model, backend, time_limit_s) not in ("optimal", "incumbent"):
            break
        candidate = _extract(scored, model)
        tie = _served(candidate) == served and sum(s.joint_term for s in candidate) >= floor
        if tie and _cheaper(resources(scored, candidate), resources(scored, best)):
            best = candidate
    return best


def _served(services: Sequence[ServiceSolution]) -> int:
    return round(sum(s.served_rps for s in services) / TOLERANCE)


def _cheaper(a: tuple[float, int], b: tuple[float, int]) -> bool:
    """Lexicographically less (cost term, then replicas); costs equal up to the order of their sums."""
    if abs(a[0] - b[0]) > 1e-12:
        return a[0] < b[0]
    return a[1] < b[1]
