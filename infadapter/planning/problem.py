"""The solver's view of one service: the resource options of every variant under the spec's grid and budget."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from infadapter.errors import InvalidInput
from infadapter.planning.plan import Plan
from infadapter.profiles import Profile
from infadapter.solver import Problem, ResourceOption, ServiceProblem, VariantOptions
from infadapter.solver.problem import Accelerator
from infadapter.spec import InferenceServiceSpec

#: capacity function: (variant, cpu cores per replica, replicas, gpus per replica) -> RPS at the SLO
CapacityFn = Callable[[str, float, int, int], float]


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
    """The options of one deployment: a variant's own (CPU sizes, default GPUs) or one on a named type."""
    v = spec.variant(variant)
    max_replicas = v.resources.max_replicas or spec.resources.max_replicas
    replicas = range(max(1, v.resources.min_replicas), max_replicas + 1)
    named = spec.accelerator(variant)
    if named is not None:
        return tuple(_gpu_options(spec, profile, variant, capacity, replicas, (named.name, named.count)))
    options: list[ResourceOption] = []
    # a variant profiled only on GPUs is simply not offered on CPU (its CPU capacity is unknown, not zero)
    for cpu in cpu_grid(spec, variant) if profile.runs_on_cpu(variant) else []:
        for r in replicas:
            if cpu * r > spec.budget.cpu + 1e-9:
                break
            options.append(ResourceOption(cpu, r, 0, capacity(variant, cpu, r, 0)))
    if v.gpu and spec.budget.gpu > 0:
        options += _gpu_options(spec, profile, variant, capacity, replicas, ("", spec.budget.gpu))
    return tuple(options)


def _gpu_options(
    spec: InferenceServiceSpec, profile: Profile, variant: str, capacity: CapacityFn, replicas: range, device: tuple[str, int]
) -> list[ResourceOption]:
    """Every measured GPU count of the grid, at its smallest measured cores, within ``device``'s (type, count)."""
    accelerator, count = device
    options: list[ResourceOption] = []
    for g in sorted(set(spec.resources.gpus_per_replica) & set(profile.gpu_counts(variant))):
        cpu = profile.cpu_range(variant, g)[0]
        for r in replicas:
            if g * r > count or cpu * r > spec.budget.cpu + 1e-9:
                break
            options.append(ResourceOption(cpu, r, g, capacity(variant, cpu, r, g), accelerator))
    return options


def spec_problem(spec: InferenceServiceSpec, *services: ServiceProblem) -> Problem:
    """``services`` under ``spec``'s budget, accelerator types and prices."""
    return Problem(tuple(services), spec.budget.cpu, spec.budget.gpu, **pricing([spec]))


def pricing(specs: Iterable[InferenceServiceSpec]) -> dict[str, Any]:
    """The budget's accelerator types and prices for :class:`~infadapter.solver.Problem` (keyword arguments).

    Several services solved jointly share one set: each named type counts the most any of them
    declares, at the price the first declares; the prices of a core and a default GPU are the first's.
    """
    ordered = list(specs)
    types: dict[str, Accelerator] = {}
    for spec in ordered:
        for a in spec.accelerators:
            known = types.get(a.name)
            types[a.name] = Accelerator(a.name, max(a.count, known.count if known else 0), known.price if known else a.price)
    first = ordered[0].budget
    return {"accelerators": tuple(types.values()), "cpu_price": first.cpu_price, "gpu_price": first.gpu_price}


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
    for v in spec.units:
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
