"""Score a choice of options: the greedy split and the objective, shared by the solvers.

Given the chosen option of every variant, the accuracy term is maximised by filling the
most accurate variants first (a fractional knapsack with unit weights), so the split is
canonical: equal choices always give the same shares.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from infadapter.solver.problem import Assignment, Problem, ResourceOption, ServiceProblem, ServiceSolution


def split_load(service: ServiceProblem, chosen: Mapping[str, ResourceOption], total_rps: float) -> dict[str, float]:
    """Route ``total_rps`` to the chosen variants, most accurate first, up to each capacity."""
    order = sorted(
        (v for v in service.variants if v.name in chosen),
        key=lambda v: (-v.accuracy, v.name),
    )
    remaining = max(0.0, total_rps)
    shares: dict[str, float] = {}
    for v in order:
        q = min(chosen[v.name].capacity_rps, remaining)
        shares[v.name] = q
        remaining -= q
    return shares


def score(
    service: ServiceProblem,
    chosen: Mapping[str, ResourceOption],
    problem: Problem,
    served_rps: float | None = None,
    weight: float = 1.0,
) -> ServiceSolution:
    """The service's solution for ``chosen`` options, routing ``served_rps`` (default: all it can).

    ``problem`` gives the budget and the prices of the cost term (its services are not read).

    ``weight`` is the service's share ``w_s`` of a joint problem's load (:meth:`Problem.weights`):
    it scales the accuracy and transition terms of the service's ``contribution``, not its
    ``objective`` (the service's own, as if alone).
    """
    capacity = sum(o.capacity_rps for o in chosen.values())
    total = min(service.load_rps, capacity) if served_rps is None else served_rps
    shares = split_load(service, chosen, total)
    by_name = {v.name: v for v in service.variants}
    load = service.load_rps
    accuracy = sum(by_name[n].accuracy * q for n, q in shares.items()) / load if load > 0 else 0.0
    cost_cpu = sum(o.cost_cpu for o in chosen.values())
    cost_gpu = sum(o.cost_gpu for o in chosen.values())
    max_l = service.max_load_time_s
    transition = max(
        (by_name[n].load_time_s / max_l for n, o in chosen.items() if max_l > 0 and o.transition_from(by_name[n].current)),
        default=0.0,
    )
    cost = sum(problem.price(o) for o in chosen.values())
    cost_term = cost / problem.budget_price  # Problem.cost_term, its price summed once
    objective = accuracy - service.cost_weight * cost_term - service.transition_weight * transition
    # the same operations in the same order as `objective`, so that for w = 1.0 it is bitwise the same
    contribution = accuracy * weight - service.cost_weight * cost_term - service.transition_weight * weight * transition
    assignments = tuple(
        Assignment(v.name, chosen[v.name], shares.get(v.name, 0.0)) for v in sorted(service.variants, key=lambda v: (-v.accuracy, v.name)) if v.name in chosen
    )
    return ServiceSolution(
        name=service.name,
        assignments=assignments,
        load_rps=load,
        served_rps=sum(shares.values()),
        accuracy=accuracy,
        cost_cpu=cost_cpu,
        cost_gpu=cost_gpu,
        transition=transition,
        objective=objective,
        weight=weight,
        contribution=contribution,
        cost=cost,
    )


def resources(problem: Problem, services: Iterable[ServiceSolution]) -> tuple[float, int]:
    """A plan's keys in the tie-break: its cost term ``price / price_B`` and its replicas."""
    options = [a.option for s in services for a in s.assignments]
    return problem.cost_term(options), sum(o.replicas for o in options)
