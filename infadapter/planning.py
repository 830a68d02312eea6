"""One decision, pure: spec + profile + predicted load + current plan -> :class:`Plan`.

This module turns the user's spec and a capacity profile into the solver's
:class:`~infadapter.solver.Problem`, solves it exactly and returns a :class:`Plan`:
which variants serve, their CPU/GPU per replica, replicas and traffic weights. It never
reads the clock, the environment, the cluster or Prometheus; the policies that call it
(``infadapter.policies``) pass time and history in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from infadapter.errors import FieldError, InvalidInput
from infadapter.profiles import Profile
from infadapter.solver import (
    STATUSES,
    Problem,
    ResourceOption,
    ServiceProblem,
    ServiceSolution,
    Solution,
    SolveBackend,
    Status,
    VariantOptions,
    solve,
)
from infadapter.solver.evaluate import score
from infadapter.spec import InferenceServiceSpec

#: capacity function: (variant, cpu cores per replica, replicas, gpus per replica) -> RPS at the SLO
CapacityFn = Callable[[str, float, int, int], float]


@dataclass(frozen=True)
class VariantPlan:
    """What one variant gets: ``replicas`` x (``cpu_cores`` + ``gpus``), ``weight`` of the traffic."""

    name: str
    cpu_cores: float
    replicas: int = 1
    gpus: int = 0
    weight: float = 0.0
    capacity_rps: float = 0.0
    accuracy: float = 0.0

    @property
    def total_cpu(self) -> float:
        return self.cpu_cores * self.replicas

    def option(self) -> ResourceOption:
        return ResourceOption(self.cpu_cores, self.replicas, self.gpus, self.capacity_rps)

    def describe(self) -> str:
        size = f"{self.cpu_cores:g}c" + (f"+{self.gpus}g" if self.gpus else "") + (f"x{self.replicas}" if self.replicas != 1 else "")
        return f"{self.name}:{size}/{self.weight:.2f}"


@dataclass(frozen=True)
class Plan:
    """A configuration of the service: the solver's decision in the terms the actuators need."""

    variants: tuple[VariantPlan, ...]
    status: Status = "optimal"
    load_rps: float = 0.0
    served_rps: float = 0.0
    objective: float = 0.0
    accuracy: float = 0.0
    cost_cpu: float = 0.0
    cost_gpu: int = 0
    solve_ms: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)
    backend: str = ""  # the method that solved it: "dp", "highs" or "cbc" ("" when no solver ran)

    @property
    def capacity_rps(self) -> float:
        return sum(v.capacity_rps for v in self.variants)

    def weights(self) -> dict[str, float]:
        return {v.name: v.weight for v in self.variants}

    def variant(self, name: str) -> VariantPlan | None:
        return next((v for v in self.variants if v.name == name), None)

    def describe(self) -> str:
        return " ".join(v.describe() for v in self.variants) or "(nothing)"

    def same_config(self, other: Plan | None) -> bool:
        """Same variants, sizes and replicas (weights may differ)."""
        if other is None:
            return False
        mine = {(v.name, round(v.cpu_cores, 6), v.gpus, v.replicas) for v in self.variants}
        theirs = {(v.name, round(v.cpu_cores, 6), v.gpus, v.replicas) for v in other.variants}
        return mine == theirs

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "variants": [
                {
                    "name": v.name,
                    "cpu": v.cpu_cores,
                    "gpus": v.gpus,
                    "replicas": v.replicas,
                    "weight": v.weight,
                    "capacity_rps": v.capacity_rps,
                    "accuracy": v.accuracy,
                }
                for v in self.variants
            ],
            "load_rps": self.load_rps,
            "served_rps": self.served_rps,
            "objective": self.objective,
            "accuracy": self.accuracy,
            "cost_cpu": self.cost_cpu,
            "cost_gpu": self.cost_gpu,
            "solve_ms": self.solve_ms,
            "backend": self.backend,
        }

    @staticmethod
    def from_dict(raw: Mapping[str, Any]) -> Plan:
        """Rebuild a plan from :meth:`to_dict` output (status checkpoints); raises InvalidInput."""
        try:
            variants = tuple(
                VariantPlan(
                    name=str(v["name"]),
                    cpu_cores=float(v["cpu"]),
                    replicas=int(v.get("replicas", 1)),
                    gpus=int(v.get("gpus", 0)),
                    weight=float(v.get("weight", 0.0)),
                    capacity_rps=float(v.get("capacity_rps", 0.0)),
                    accuracy=float(v.get("accuracy", 0.0)),
                )
                for v in raw.get("variants", [])
            )
            status: Status = next((s for s in STATUSES if s == raw.get("status")), "optimal")
            return Plan(
                variants=variants,
                status=status,
                load_rps=float(raw.get("load_rps", 0.0)),
                served_rps=float(raw.get("served_rps", 0.0)),
                objective=float(raw.get("objective", 0.0)),
                accuracy=float(raw.get("accuracy", 0.0)),
                cost_cpu=float(raw.get("cost_cpu", sum(v.total_cpu for v in variants))),
                cost_gpu=int(raw.get("cost_gpu", 0)),
                solve_ms=float(raw.get("solve_ms", 0.0)),
                backend=str(raw.get("backend", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput([FieldError("plan", f"malformed plan record: {exc}", "drop the stored plan")], "plan") from None


# --------------------------------------------------------------------------- building the problem


def cpu_grid(spec: InferenceServiceSpec, variant: str) -> list[float]:
    """CPU sizes (cores per replica) the solver may give ``variant``: min..max by the step."""
    v = spec.variant(variant)
    grid = spec.resources
    low = v.resources.min_cpu if v.resources.min_cpu is not None else grid.min_cpu
    high = v.resources.max_cpu if v.resources.max_cpu is not None else grid.max_cpu
    high = min(high, spec.budget.cpu)
    step = grid.cpu_step
    start = math.ceil(low / step - 1e-9) * step
    sizes: list[float] = []
    k = 0
    while start + k * step <= high + 1e-9:
        sizes.append(round(start + k * step, 6))
        k += 1
    return sizes


def variant_options(spec: InferenceServiceSpec, profile: Profile, variant: str, capacity: CapacityFn) -> tuple[ResourceOption, ...]:
    v = spec.variant(variant)
    max_replicas = v.resources.max_replicas or spec.resources.max_replicas
    min_replicas = max(1, v.resources.min_replicas)
    options: list[ResourceOption] = []
    # a variant profiled only on GPUs is simply not offered on CPU (its CPU capacity is unknown, not zero)
    for cpu in cpu_grid(spec, variant) if profile.runs_on_cpu(variant) else []:
        for r in range(min_replicas, max_replicas + 1):
            if cpu * r > spec.budget.cpu + 1e-9:
                break
            options.append(ResourceOption(cpu, r, 0, capacity(variant, cpu, r, 0)))
    if v.gpu and spec.budget.gpu > 0:
        for g in sorted(set(spec.resources.gpus_per_replica) & set(profile.gpu_counts(variant))):
            cpu = profile.cpu_range(variant, g)[0]
            for r in range(min_replicas, max_replicas + 1):
                if g * r > spec.budget.gpu or cpu * r > spec.budget.cpu + 1e-9:
                    break
                options.append(ResourceOption(cpu, r, g, capacity(variant, cpu, r, g)))
    return tuple(options)


def gpu_warnings(spec: InferenceServiceSpec, profile: Profile) -> list[str]:
    """Why GPU options the spec or the profile suggest will not be offered (the user probably wants them)."""
    out: list[str] = []
    for i, v in enumerate(spec.variants):
        if v.name not in profile.points:
            continue
        measured = profile.gpu_counts(v.name)
        usable = sorted(set(spec.resources.gpus_per_replica) & set(measured))
        if not v.gpu:
            why, hint = "it does not have gpu: true", "set gpu: true and budget.gpu"
        elif spec.budget.gpu <= 0:
            why, hint = "spec.budget.gpu is 0", "set budget.gpu to the GPUs it may use"
        elif not measured:
            why, hint = "the profile has no GPU measurement of it", "profile it with gpus"
        elif not usable:
            why = f"spec.resources.gpusPerReplica {spec.resources.gpus_per_replica} has none of the profile's GPU counts {measured}"
            hint = "add one of them"
        else:
            continue
        where = f"spec.variants[{i}] ({v.name})"
        if not profile.runs_on_cpu(v.name):
            out.append(f"{where} was profiled only on GPUs and {why}, so it is never planned (hint: {hint})")
        elif v.gpu:
            out.append(f"{where} has gpu: true but {why}, so it runs on CPU only (hint: {hint})")
    return out


def size_warnings(plan: Plan, profile: Profile) -> list[str]:
    """The plan's sizes that lie outside what the profile measured (their capacity is an assumption)."""
    found = (profile.unmeasured(v.name, v.cpu_cores, v.gpus) for v in plan.variants if v.name in profile.points)
    return [f"{why} (hint: profile that size)" for why in found if why is not None]


def service_problem(
    spec: InferenceServiceSpec,
    profile: Profile,
    load_rps: float,
    current: Plan | None = None,
    *,
    name: str = "service",
    capacity: CapacityFn | None = None,
    variants: Iterable[str] | None = None,
) -> ServiceProblem:
    """The solver's view of one service at ``load_rps``, given the plan now running."""
    errors = profile.covers(spec)
    if errors:
        raise InvalidInput(errors, "profile")
    cap = capacity or profile.capacity_rps
    allowed = set(variants) if variants is not None else None
    items: list[VariantOptions] = []
    for v in spec.variants:
        if allowed is not None and v.name not in allowed:
            continue
        running = current.variant(v.name) if current is not None else None
        items.append(
            VariantOptions(
                name=v.name,
                accuracy=v.accuracy,
                options=variant_options(spec, profile, v.name, cap),
                load_time_s=v.load_time_s,
                current=running.option() if running is not None else None,
                required=v.resources.min_replicas > 0,
            )
        )
    return ServiceProblem(
        name=name,
        load_rps=max(0.0, float(load_rps)),
        variants=tuple(items),
        cost_weight=spec.objective.cost_weight,
        transition_weight=spec.objective.transition_weight,
    )


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
    problem = Problem.single(
        service_problem(spec, profile, load_rps, current, capacity=capacity, variants=variants),
        spec.budget.cpu,
        spec.budget.gpu,
    )
    solution = solve(problem, backend)
    return _single_plan(spec, solution)


def _single_plan(spec: InferenceServiceSpec, solution: Solution) -> Plan:
    accuracies = {v.name: v.accuracy for v in spec.variants}
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
    solution = solve(Problem(problems, budget_cpu, budget_gpu), backend)
    plans: dict[str, Plan] = {}
    for name, (spec, _, load, _) in services.items():
        accuracies = {v.name: v.accuracy for v in spec.variants}
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
    options = {n: ResourceOption(c, count.get(n, 1), devices[n], profile.capacity_rps(n, c, count.get(n, 1), devices[n]))
               for n, c in sizes.items()}  # fmt: skip
    solution = score(service, options, spec.budget.cpu, spec.budget.gpu)
    status: Status = "optimal" if solution.served_rps >= load_rps - 1e-6 else "infeasible"
    return plan_from_solution(solution, status, {v.name: v.accuracy for v in spec.variants}, 0.0)


def parse_sizes(text: str, spec: InferenceServiceSpec, field_name: str = "--current") -> dict[str, float]:
    """Parse ``"resnet152=20,resnet18=2"`` into ``{variant: cores}``; InvalidInput names the bad part."""
    sizes: dict[str, float] = {}
    errors: list[FieldError] = []
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep:
            errors.append(FieldError(field_name, f"{part!r} is not variant=cores", "write e.g. resnet152=20"))
            continue
        if name not in spec.variant_names:
            errors.append(FieldError(field_name, f"unknown variant {name!r}", f"use one of {', '.join(spec.variant_names)}"))
            continue
        try:
            cores = float(value)
        except ValueError:
            errors.append(FieldError(field_name, f"{value!r} is not a number of cores", "write e.g. resnet152=20"))
            continue
        if not cores > 0 or math.isinf(cores):
            errors.append(FieldError(field_name, f"cores for {name} must be > 0, got {value}", "write a positive number"))
            continue
        if name in sizes:
            errors.append(FieldError(field_name, f"variant {name!r} is given twice", "give each variant once"))
            continue
        sizes[name] = cores
    if errors:
        raise InvalidInput(errors, "arguments")
    return sizes
