"""Solving: a plan for a load (one service, or several under one budget) and a fixed plan scored as it is."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from infadapter.errors import FieldError, InvalidInput
from infadapter.planning.plan import Plan, VariantPlan
from infadapter.planning.problem import CapacityFn, pricing, service_problem, spec_problem
from infadapter.profiles import Profile
from infadapter.solver import Problem, ResourceOption, ServiceSolution, Solution, SolveBackend, Status, solve
from infadapter.solver.evaluate import score
from infadapter.spec import InferenceServiceSpec


def plan_from_solution(
    service: ServiceSolution, status: Status, accuracies: Mapping[str, float], solve_s: float, notes: Iterable[str] = (), backend: str = ""
) -> Plan:
    served = service.served_rps
    variants = tuple(
        VariantPlan(
            name=a.variant,
            cpu_cores=a.option.cpu_cores,
            replicas=a.option.replicas,
            gpus=a.option.gpus,
            weight=(a.load_rps / served) if served > 0 else 0.0,
            capacity_rps=a.option.capacity_rps,
            accuracy=accuracies[a.variant],
            accelerator=a.option.accelerator,
        )
        for a in service.assignments
    )
    if served <= 0 and variants:  # no load: route by capacity so the first request has somewhere to go
        total = sum(v.capacity_rps for v in variants) or float(len(variants))
        variants = tuple(replace(v, weight=(v.capacity_rps or 1.0) / total) for v in variants)
    served_accuracy = (
        sum(accuracies[a.variant] * a.load_rps for a in service.assignments) / served if served > 0 else (max((v.accuracy for v in variants), default=0.0))
    )
    return Plan(
        variants=variants,
        status=status,
        load_rps=service.load_rps,
        served_rps=served,
        objective=service.objective,
        accuracy=served_accuracy,
        cost_cpu=service.cost_cpu,
        cost_gpu=service.cost_gpu,
        cost=service.cost,
        solve_ms=solve_s * 1000.0,
        notes=tuple(notes),
        backend=backend,
    )


def plan_for_load(
    spec: InferenceServiceSpec,
    profile: Profile,
    load_rps: float,
    current: Plan | None = None,
    *,
    capacity: CapacityFn | None = None,
    variants: Iterable[str] | None = None,
    backend: SolveBackend = "auto",
) -> Plan:
    """The exact best plan for ``load_rps`` (best effort, flagged ``infeasible``, when it cannot be served)."""
    problem = spec_problem(spec, service_problem(spec, profile, load_rps, current, capacity=capacity, variants=variants))
    solution = solve(problem, backend)
    return _single_plan(spec, solution)


def _single_plan(spec: InferenceServiceSpec, solution: Solution) -> Plan:
    accuracies = {v.name: v.accuracy for v in spec.units}
    if not solution.services:
        return Plan((), solution.status, notes=solution.notes, solve_ms=solution.solve_s * 1000.0, backend=solution.backend)
    return plan_from_solution(solution.services[0], solution.status, accuracies, solution.solve_s, solution.notes, solution.backend)


def plan_jointly(
    services: Mapping[str, tuple[InferenceServiceSpec, Profile, float, Plan | None]],
    budget_cpu: float,
    budget_gpu: int = 0,
    backend: SolveBackend = "auto",
) -> dict[str, Plan]:
    """Plan several services under one shared budget: ``{name: (spec, profile, load, current)}``."""
    problems = tuple(service_problem(spec, profile, load, current, name=name) for name, (spec, profile, load, current) in services.items())
    solution = solve(Problem(problems, budget_cpu, budget_gpu, **pricing(spec for spec, _, _, _ in services.values())), backend)
    plans: dict[str, Plan] = {}
    for name, (spec, _, load, _) in services.items():
        accuracies = {v.name: v.accuracy for v in spec.units}
        try:
            plans[name] = plan_from_solution(solution.service(name), solution.status, accuracies, solution.solve_s, solution.notes, solution.backend)
        except KeyError:
            plans[name] = Plan((), solution.status, load_rps=load, notes=solution.notes, backend=solution.backend)
    return plans


def static_plan(
    spec: InferenceServiceSpec,
    profile: Profile,
    sizes: Mapping[str, float],
    load_rps: float = 0.0,
    *,
    replicas: Mapping[str, int] | None = None,
    gpus: Mapping[str, int] | None = None,
) -> Plan:
    """A fixed plan (e.g. the current deployment): ``{variant: cores}`` per replica (``replicas``, ``gpus``
    per variant: 1 and 0 unless given), routed most-accurate-first."""
    errors: list[FieldError] = []
    for name, cores in sizes.items():
        if name not in spec.variant_names:
            errors.append(FieldError(name, f"unknown variant {name!r}", f"use one of {', '.join(spec.variant_names)}"))
        elif cores <= 0:
            errors.append(FieldError(name, f"cores must be > 0, got {cores:g}", "give a positive core count"))
    if errors:
        raise InvalidInput(errors, "plan")
    service = service_problem(spec, profile, load_rps, None, variants=list(sizes))
    count = replicas or {}
    # a variant measured only on GPUs runs on its smallest measured GPU count unless told otherwise
    devices = {n: (gpus or {}).get(n, 0 if profile.runs_on_cpu(n) else profile.gpu_counts(n)[0]) for n in sizes}
    options = {n: _fixed_option(spec, profile, n, c, count.get(n, 1), devices[n]) for n, c in sizes.items()}
    solution = score(service, options, spec_problem(spec))
    status: Status = "optimal" if solution.served_rps >= load_rps - 1e-6 else "infeasible"
    return plan_from_solution(solution, status, {v.name: v.accuracy for v in spec.units}, 0.0)


def _fixed_option(spec: InferenceServiceSpec, profile: Profile, name: str, cores: float, replicas: int, gpus: int) -> ResourceOption:
    named = spec.accelerator(name)
    return ResourceOption(cores, replicas, gpus, profile.capacity_rps(name, cores, replicas, gpus), named.name if named is not None and gpus else "")
