"""An independent checker: re-verifies a solution's feasibility and objective without PuLP.

It recomputes everything from the problem data and the returned assignments (it does
not trust the split or any reported number) and lists every violation it finds.
"""

from __future__ import annotations

from infadapter.solver.problem import TOLERANCE, Assignment, Problem, ResourceOption, ServiceProblem, ServiceSolution, Solution, Status, VariantOptions


def check(problem: Problem, solution: Solution, tolerance: float = TOLERANCE) -> list[str]:
    """Every way ``solution`` violates ``problem`` (empty when it is feasible and its numbers are right)."""
    issues: list[str] = []
    if len(solution.services) != len(problem.services) and solution.services:
        issues.append(f"{len(solution.services)} service solutions for {len(problem.services)} services")
    options: list[ResourceOption] = []
    total_objective = 0.0
    for service, weight in zip(problem.services, problem.weights(), strict=True):
        try:
            sol = solution.service(service.name)
        except KeyError:
            issues.append(f"{service.name}: no solution")
            continue
        total_objective += _check_service(problem, service, weight, sol, solution.status, tolerance, issues)
        options += [a.option for a in sol.assignments]
    issues += problem.over_budget(options)
    if solution.services and abs(total_objective - solution.objective) > 1e-6:
        issues.append(f"reported total objective {solution.objective:.9f}, recomputed {total_objective:.9f}")
    return issues


def _check_service(
    problem: Problem, service: ServiceProblem, weight: float, sol: ServiceSolution, status: Status, tolerance: float, issues: list[str]
) -> float:
    """Append the service's violations to ``issues``; its recomputed term of the joint objective."""
    variants = {v.name: v for v in service.variants}
    seen: set[str] = set()
    served = weighted_accuracy = transition = 0.0
    chosen: list[ResourceOption] = []
    max_l = max((v.load_time_s for v in service.variants), default=0.0)
    for a in sol.assignments:
        v = variants.get(a.variant)
        if v is None:
            issues.append(f"{service.name}: unknown variant {a.variant!r}")
            continue
        if a.variant in seen:
            issues.append(f"{service.name}/{a.variant}: more than one option")
        seen.add(a.variant)
        issues.extend(_assignment_issues(service.name, a, v, tolerance))
        served += a.load_rps
        weighted_accuracy += v.accuracy * a.load_rps
        chosen.append(a.option)
        if max_l > 0 and a.option.transition_from(v.current):
            transition = max(transition, v.load_time_s / max_l)
    issues.extend(f"{service.name}/{name}: required variant not selected" for name, v in variants.items() if v.required and name not in seen)
    if not sol.assignments:
        issues.append(f"{service.name}: no variant serves")
    scale = tolerance * max(1.0, service.load_rps)
    if served > service.load_rps + scale:
        issues.append(f"{service.name}: serves {served:.6f} rps, more than the load {service.load_rps:.6f}")
    if status in ("optimal", "feasible") and served < service.load_rps - scale:  # both claim all the load
        issues.append(f"{service.name}: {status!r} but serves {served:.6f} of {service.load_rps:.6f} rps")
    accuracy = weighted_accuracy / service.load_rps if service.load_rps > 0 else 0.0
    price = sum(problem.price(o) for o in chosen)
    cost_term = price / problem.budget_price
    objective = accuracy - service.cost_weight * cost_term - service.transition_weight * transition
    if abs(objective - sol.objective) > 1e-6:
        issues.append(f"{service.name}: reported objective {sol.objective:.9f}, recomputed {objective:.9f}")
    term = weight * (accuracy - service.transition_weight * transition) - service.cost_weight * cost_term  # see problem.py
    if abs(term - sol.joint_term) > 1e-6:
        issues.append(f"{service.name}: reported contribution {sol.joint_term:.9f} (weight {sol.weight:g}), recomputed {term:.9f} (weight {weight:g})")
    if abs(price - sol.cost) > 1e-6 * max(1.0, sol.cost):
        issues.append(f"{service.name}: reported cost {sol.cost:.6f}, recomputed {price:.6f}")
    return term


def _assignment_issues(service: str, a: Assignment, v: VariantOptions, tolerance: float) -> list[str]:
    out = []
    if a.option not in v.options:
        out.append(f"{service}/{a.variant}: option {a.option} is not one of the variant's options")
    if a.load_rps < -tolerance:
        out.append(f"{service}/{a.variant}: negative load {a.load_rps}")
    if a.load_rps > a.option.capacity_rps + tolerance * max(1.0, a.option.capacity_rps):
        out.append(f"{service}/{a.variant}: load {a.load_rps:.6f} over capacity {a.option.capacity_rps:.6f}")
    return out
