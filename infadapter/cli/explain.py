"""``infadapter explain``: why this plan, what came second, and which load would change it.

The plan is ``infadapter plan``'s (the same exact solve). The objective is split into its terms
(``accuracy − α·cost/B − β·transition``, docs/formulation.md). The runner-up is the best plan with a
*different configuration* (variants, sizes, replicas; weights alone do not count), found exactly: a
configuration differs from the optimum at some variant, either one the optimum runs (that variant without
the optimum's option: another size, or absent) or one it does not (that variant required), so the best of
these restricted solves is the runner-up. The change points are found by scanning the load up and down in
steps of 1 % (at least 0.1 rps) until the optimal configuration changes, then bisecting to 0.01 rps.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from infadapter.cli._app import app, fail
from infadapter.cli.defaults import SPEC_HELP, spec_or_default
from infadapter.errors import InfAdapterError

if TYPE_CHECKING:
    from infadapter.planning import Plan
    from infadapter.profiles import Profile
    from infadapter.solver import Problem, ServiceSolution
    from infadapter.spec import InferenceServiceSpec

#: how far the scan looks, as a multiple of the load (plus a few rps for tiny loads)
SCAN_FACTOR = 10.0
#: the change point's precision (rps)
PRECISION_RPS = 0.01


@dataclass(frozen=True)
class Candidate:
    """One plan with its objective terms (each as it enters the objective, before its sign)."""

    plan: Plan
    accuracy_term: float
    cost_term: float
    transition_term: float

    @property
    def objective(self) -> float:
        return self.accuracy_term - self.cost_term - self.transition_term

    def to_dict(self) -> dict[str, Any]:
        return {
            "configuration": self.plan.describe(),
            "status": self.plan.status,
            "variants": self.plan.to_dict()["variants"],
            "objective": round(self.objective, 9),
            "terms": {"accuracy": round(self.accuracy_term, 9), "cost": round(-self.cost_term, 9), "transition": round(-self.transition_term, 9)},
            "accuracy": round(self.plan.accuracy, 9),
            "cost_cpu": self.plan.cost_cpu,
            "cost_gpu": self.plan.cost_gpu,
            "served_rps": round(self.plan.served_rps, 6),
        }


def _candidate(problem: Problem, spec: InferenceServiceSpec) -> Candidate | None:
    from infadapter.planning.solve import plan_from_solution
    from infadapter.solver import solve

    solution = solve(problem)
    if not solution.services:
        return None
    service: ServiceSolution = solution.services[0]
    sp = problem.services[0]
    cost = sp.cost_weight * problem.cost_term(a.option for a in service.assignments)
    plan = plan_from_solution(service, solution.status, {v.name: v.accuracy for v in spec.units}, solution.solve_s, solution.notes, solution.backend)
    return Candidate(plan, service.accuracy, cost, sp.transition_weight * service.transition)


def _problem(spec: InferenceServiceSpec, profile: Profile, load_rps: float, current: Plan | None) -> Problem:
    from infadapter.planning import service_problem
    from infadapter.planning.problem import spec_problem

    return spec_problem(spec, service_problem(spec, profile, load_rps, current))


def _rank(candidate: Candidate) -> tuple[bool, float]:
    return (candidate.plan.status == "optimal", candidate.objective)


def runner_up(spec: InferenceServiceSpec, profile: Profile, load_rps: float, current: Plan | None, best: Plan) -> Candidate | None:
    """The best plan whose configuration differs from ``best``'s (None when there is no other)."""
    problem = _problem(spec, profile, load_rps, current)
    service = problem.services[0]
    chosen = {v.name: v.option() for v in best.variants}
    found: list[Candidate] = []
    for index, variant in enumerate(service.variants):
        if variant.name in chosen:
            mine = chosen[variant.name]
            options = tuple(o for o in variant.options if (o.cpu_cores, o.replicas, o.gpus) != (mine.cpu_cores, mine.replicas, mine.gpus))
            if variant.required and not options:
                continue
            changed = replace(variant, options=options)
        else:
            if not variant.options:
                continue
            changed = replace(variant, required=True)
        variants = (*service.variants[:index], changed, *service.variants[index + 1 :])
        restricted = replace(problem, services=(replace(service, variants=variants),))
        candidate = _candidate(restricted, spec)
        if candidate is not None and candidate.plan.variants and not candidate.plan.same_config(best):
            found.append(candidate)
    return max(found, key=_rank, default=None)


def _optimum(spec: InferenceServiceSpec, profile: Profile, load_rps: float, current: Plan | None) -> Candidate:
    candidate = _candidate(_problem(spec, profile, load_rps, current), spec)
    if candidate is None:
        from infadapter.planning import Plan

        return Candidate(Plan(()), 0.0, 0.0, 0.0)
    return candidate


def _same(a: Candidate, b: Candidate) -> bool:
    return a.plan.status == b.plan.status and a.plan.same_config(b.plan)


def change_point(spec: InferenceServiceSpec, profile: Profile, load_rps: float, current: Plan | None, direction: int) -> dict[str, Any] | None:
    """The nearest load above (``direction=1``) or below (``-1``) where the optimal configuration changes."""
    here = _optimum(spec, profile, load_rps, current)
    step = max(0.01 * load_rps, 0.1)
    limit = load_rps * SCAN_FACTOR + 10.0 if direction > 0 else 0.0
    inside, outside = load_rps, None
    probe = load_rps
    while outside is None:
        probe = min(limit, probe + step) if direction > 0 else max(0.0, probe - step)
        if not _same(_optimum(spec, profile, probe, current), here):
            outside = probe
        elif probe in (limit, 0.0):
            return None
        else:
            inside = probe
    while abs(outside - inside) > PRECISION_RPS:
        middle = (inside + outside) / 2.0
        if _same(_optimum(spec, profile, middle, current), here):
            inside = middle
        else:
            outside = middle
    there = _optimum(spec, profile, outside, current)
    return {"load_rps": round(outside, 6), "last_same_rps": round(inside, 6), **there.to_dict()}


@app.command()
def explain(
    profile: Annotated[Path, typer.Option("--profile", "-p", help="capacity profile: the paper's CSV or a Profile YAML/JSON")],
    load: Annotated[float, typer.Option("--load", "-l", help="predicted load in requests per second")],
    spec_path: Annotated[Path | None, typer.Option("--spec", "-f", help=SPEC_HELP, show_default=False)] = None,
    current: Annotated[str, typer.Option("--current", help="configuration now running: VARIANT=CORES[xREPLICAS][:gpu=N],...")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Why this plan: its objective terms, the runner-up configuration, and the loads that would change it."""
    from infadapter.cli.arguments import named_input
    from infadapter.cli.configuration import configuration_plan
    from infadapter.cli.plan import MAX_LOAD_RPS
    from infadapter.profiles import load_profile
    from infadapter.spec import load_spec

    if not (math.isfinite(load) and 0 <= load <= MAX_LOAD_RPS):
        raise fail(f"--load: must be a number in 0 .. {MAX_LOAD_RPS:g}, got {load:g} (hint: give the predicted load in rps)")
    try:
        spec = named_input("--spec", load_spec, spec_or_default(spec_path, quiet=as_json))
        prof = named_input("--profile", lambda p: load_profile(p, slo_ms=spec.slo.latency_ms), profile)
        now = configuration_plan(current, spec, prof, "--current") if current.strip() else None
        best = _optimum(spec, prof, load, now)
        second = runner_up(spec, prof, load, now, best.plan)
        up = change_point(spec, prof, load, now, +1)
        down = change_point(spec, prof, load, now, -1) if load > 0 else None
    except InfAdapterError as exc:
        raise fail(str(exc), exc.exit_code) from None
    out = {
        "load_rps": load,
        "current": now.describe() if now is not None else None,
        "weights": {"cost": spec.objective.cost_weight, "transition": spec.objective.transition_weight, "budget_cpu": spec.budget.cpu},
        "chosen": best.to_dict(),
        "runner_up": second.to_dict() if second is not None else None,
        "margin": round(best.objective - second.objective, 9) if second is not None else None,
        "changes": {"up": up, "down": down},
    }
    if as_json:
        typer.echo(json.dumps(out))
        return
    _print_explanation(out)


def _terms(c: dict[str, Any]) -> str:
    t = c["terms"]
    return f"objective {c['objective']:.6f} = accuracy {t['accuracy']:.6f} {t['cost']:+.6f} cost {t['transition']:+.6f} transition"


def _print_explanation(out: dict[str, Any]) -> None:
    chosen, second = out["chosen"], out["runner_up"]
    typer.echo(f"at {out['load_rps']:g} rps" + (f" (running {out['current']})" if out["current"] else "") + f": {chosen['configuration']} [{chosen['status']}]")
    typer.echo(f"  {_terms(chosen)}  ({chosen['cost_cpu']:g} cores of {out['weights']['budget_cpu']:g}, served {chosen['served_rps']:g} rps)")
    if second is None:
        typer.echo("runner-up: none (no other configuration serves this load)")
    else:
        typer.echo(f"runner-up: {second['configuration']} [{second['status']}], {out['margin']:.6f} lower")
        typer.echo(f"  {_terms(second)}  ({second['cost_cpu']:g} cores)")
    for direction, word in (("up", "above"), ("down", "below")):
        change = out["changes"][direction]
        if change is None:
            typer.echo(f"{word}: the configuration stays the same over the range scanned")
        else:
            at, same = change["load_rps"], change["last_same_rps"]
            typer.echo(f"{word}: changes at {at:.2f} rps (same until {same:.2f}) to {change['configuration']} [{change['status']}]")
