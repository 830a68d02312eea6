"""The solver's view of one service: the resource options of every variant under the spec's grid and budget."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from infadapter.errors import InvalidInput
from infadapter.planning.plan import Plan
from infadapter.profiles import Profile
from infadapter.solver import ResourceOption, ServiceProblem, VariantOptions
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
