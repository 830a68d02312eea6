"""The MILP's model: variables, constraints and objective of :mod:`.problem`, built for PuLP.

Each variant's options are given to the model in one of two forms:

* **one binary per option** (``y``), after :func:`prune` drops the dominated ones — the form of the
  maths in :mod:`.problem`;
* **a replica range** (:class:`ReplicaRange`): the options of one size whose replicas run over a
  contiguous range with capacity and cost proportional to the replicas (what the planner builds from
  a profile) become one binary "this size" (``z``) and one integer replica count (``r``). A fleet
  grid (100 replicas x 19 sizes x 5 variants) is then ~200 variables instead of ~9,500 binaries, and
  HiGHS solves it 3-4x faster (0.2-0.3 s instead of 0.65-1.1 s on the 2,000-core benchmark). The
  feasible set is the same, so the optimum is too. Short ranges stay binaries: they are as fast and
  keep small problems exactly as pruning shapes them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulp

from infadapter.solver.problem import TOLERANCE, Problem, ResourceOption, ServiceProblem, VariantOptions

#: a size with at least this many replica counts is modelled as a range (fewer: one binary per option)
MIN_RANGE = 8


@dataclass(frozen=True)
class ReplicaRange:
    """The options of one size: ``replicas`` ``lo..hi``, each with ``per_replica`` capacity and cost."""

    options: dict[int, ResourceOption]
    lo: int
    hi: int
    per_replica: ResourceOption  # capacity, CPU and GPUs of one replica

    def capacity(self) -> float:
        return self.per_replica.capacity_rps


def _linear(size: dict[int, ResourceOption]) -> ReplicaRange | None:
    """The size's options as a range, when they form one (contiguous, proportional), else None."""
    lo, hi = min(size), max(size)
    if len(size) < MIN_RANGE or hi - lo + 1 != len(size) or lo < 1:
        return None
    first = size[lo]
    one = first.capacity_rps / lo
    for replicas, option in size.items():
        if abs(option.capacity_rps - one * replicas) > TOLERANCE * max(1.0, option.capacity_rps):
            return None
    if one <= TOLERANCE:
        return None
    return ReplicaRange(dict(size), lo, hi, ResourceOption(first.cpu_cores, 1, first.gpus, one, first.accelerator))


def split_options(variant: VariantOptions) -> tuple[list[ReplicaRange], list[ResourceOption]]:
    """The variant's options as replica ranges and single options (before pruning)."""
    sizes: dict[tuple[float, int, str], dict[int, ResourceOption]] = defaultdict(dict)
    for option in variant.options:
        sizes[option.cpu_cores, option.gpus, option.device][option.replicas] = option
    ranges: list[ReplicaRange] = []
    singles: list[ResourceOption] = []
    for size in sizes.values():
        as_range = _linear(size)
        if as_range is not None:
            ranges.append(as_range)
        else:
            singles.extend(size.values())
    kept = set(singles)
    return ranges, [o for o in variant.options if o in kept]  # in the given order (pruning keeps the first of ties)


@dataclass
class VariantVars:
    """One variant's decision variables and what they mean."""

    singles: Sequence[ResourceOption]
    ranges: Sequence[ReplicaRange]
    q: pulp.LpVariable
    y: list[pulp.LpVariable] = field(default_factory=list)
    z: list[pulp.LpVariable] = field(default_factory=list)
    r: list[pulp.LpVariable] = field(default_factory=list)
    grown: dict[int, pulp.LpVariable] = field(default_factory=dict)  # range index -> "more replicas than now"

    def picks(self) -> list[pulp.LpVariable]:
        return [*self.y, *self.z]

    def capacity(self, load_rps: float) -> pulp.LpAffineExpression:
        useful = [min(o.capacity_rps, load_rps) * y for o, y in zip(self.singles, self.y, strict=True)]
        return pulp.lpSum(useful + [g.capacity() * r for g, r in zip(self.ranges, self.r, strict=True)])

    def cpu(self) -> pulp.LpAffineExpression:
        single = [o.cost_cpu * y for o, y in zip(self.singles, self.y, strict=True)]
        return pulp.lpSum(single + [g.per_replica.cpu_cores * r for g, r in zip(self.ranges, self.r, strict=True)])

    def devices(self, device: str) -> pulp.LpAffineExpression:
        """Its devices of type ``device`` (see :attr:`ResourceOption.device`)."""
        single = [o.cost_gpu * y for o, y in zip(self.singles, self.y, strict=True) if o.gpus and o.device == device]
        per = [g.per_replica.gpus * r for g, r in zip(self.ranges, self.r, strict=True) if g.per_replica.gpus and g.per_replica.device == device]
        return pulp.lpSum(single + per)

    def device_types(self) -> set[str]:
        return {o.device for o in self.singles if o.gpus} | {g.per_replica.device for g in self.ranges if g.per_replica.gpus}

    def price(self, problem: Problem) -> pulp.LpAffineExpression:
        """What its pick costs at the problem's prices."""
        single = [problem.price(o) * y for o, y in zip(self.singles, self.y, strict=True)]
        return pulp.lpSum(single + [problem.price(g.per_replica) * r for g, r in zip(self.ranges, self.r, strict=True)])

    def replicas(self) -> pulp.LpAffineExpression:
        return pulp.lpSum([o.replicas * y for o, y in zip(self.singles, self.y, strict=True)] + list(self.r))

    def most_replicas(self) -> int:
        return max([o.replicas for o in self.singles] + [g.hi for g in self.ranges], default=0)

    def changing(self, current: ResourceOption | None) -> list[pulp.LpVariable]:
        """The picks that create or resize an instance (see ``ResourceOption.transition_from``)."""
        out = [y for o, y in zip(self.singles, self.y, strict=True) if o.transition_from(current)]
        for k, (g, z) in enumerate(zip(self.ranges, self.z, strict=True)):
            out.append(self.grown[k] if g.per_replica.same_size(current) else z)
        return out

    def chosen(self) -> ResourceOption | None:
        for option, y in zip(self.singles, self.y, strict=True):
            if (y.value() or 0.0) > 0.5:
                return option
        for g, z, r in zip(self.ranges, self.z, self.r, strict=True):
            if (z.value() or 0.0) > 0.5:
                return g.options[min(g.hi, max(g.lo, round(r.value() or 0.0)))]
        return None


def _variant_vars(model: pulp.LpProblem, key: str, variant: VariantOptions, singles: Sequence[ResourceOption], ranges: Sequence[ReplicaRange]) -> VariantVars:
    out = VariantVars(singles, ranges, pulp.LpVariable(f"q_{key}", lowBound=0))
    out.y = [pulp.LpVariable(f"y_{key}_{o}", cat=pulp.LpBinary) for o in range(len(singles))]
    for k, g in enumerate(ranges):
        z = pulp.LpVariable(f"z_{key}_{k}", cat=pulp.LpBinary)
        r = pulp.LpVariable(f"r_{key}_{k}", lowBound=0, upBound=g.hi, cat=pulp.LpInteger)
        model += r <= g.hi * z, f"range_hi_{key}_{k}"
        model += r >= g.lo * z, f"range_lo_{key}_{k}"
        out.z.append(z)
        out.r.append(r)
        current = variant.current
        if g.per_replica.same_size(current):
            assert current is not None
            grown = pulp.LpVariable(f"g_{key}_{k}", cat=pulp.LpBinary)
            model += r - current.replicas <= max(0, g.hi - current.replicas) * grown, f"grown_{key}_{k}"
            out.grown[k] = grown
    return out


@dataclass
class Model:
    """The PuLP model of a problem, with each variant's variables (``vars[s][m]``)."""

    lp: pulp.LpProblem
    vars: list[list[VariantVars]]

    def chosen(self, s: int) -> dict[int, ResourceOption]:
        return {m: o for m, v in enumerate(self.vars[s]) if (o := v.chosen()) is not None}


def build(
    problem: Problem, forms: Sequence[Sequence[tuple[Sequence[ResourceOption], Sequence[ReplicaRange]]]], served_floor: float | None, maximise_served: bool
) -> Model:
    """The model: with ``maximise_served`` the most load served, else the objective (all the load, or at
    least ``served_floor``)."""
    lp = pulp.LpProblem("infadapter", pulp.LpMaximize)
    variables = [[_variant_vars(lp, f"{s}_{m}", v, *forms[s][m]) for m, v in enumerate(service.variants)] for s, service in enumerate(problem.services)]
    model = Model(lp, variables)
    lc = [_service_constraints(model, s, service, served_floor is None and not maximise_served) for s, service in enumerate(problem.services)]
    everything = [v for row in variables for v in row]
    lp += pulp.lpSum(v.cpu() for v in everything) <= problem.budget_cpu, "budget_cpu"
    for k, device in enumerate(sorted(set().union(*(v.device_types() for v in everything)))):
        lp += pulp.lpSum(v.devices(device) for v in everything) <= problem.device_budget(device), f"budget_devices_{k}"
    served = pulp.lpSum(v.q for v in everything)
    if served_floor is not None:
        lp += served >= served_floor, "serve_the_most"
    lp += served if maximise_served else _objective(problem, model, lc)
    return model


def _service_constraints(model: Model, s: int, service: ServiceProblem, all_load: bool) -> pulp.LpVariable | None:
    """One service's constraints; its transition variable (None when transitions cost nothing)."""
    lp, row = model.lp, model.vars[s]
    lc = None
    if service.transition_weight > 0 and service.max_load_time_s > 0:
        lc = pulp.LpVariable(f"lc_{s}", lowBound=0, upBound=1)
    for m, (variant, v) in enumerate(zip(service.variants, row, strict=True)):
        picks = pulp.lpSum(v.picks())
        lp += (picks == 1 if variant.required else picks <= 1), f"one_option_{s}_{m}"
        lp += v.q <= v.capacity(service.load_rps), f"capacity_{s}_{m}"
        weight = variant.load_time_s / service.max_load_time_s if lc is not None else 0.0
        changing = v.changing(variant.current) if weight > 0 else []
        if lc is not None and changing:
            lp += lc >= weight * pulp.lpSum(changing), f"transition_{s}_{m}"
    served = pulp.lpSum(v.q for v in row)
    lp += (served == service.load_rps if all_load else served <= service.load_rps), f"demand_{s}"
    lp += pulp.lpSum(p for v in row for p in v.picks()) >= 1, f"something_serves_{s}"
    return lc


def _objective(problem: Problem, model: Model, lc: Sequence[pulp.LpVariable | None]) -> pulp.LpAffineExpression:
    """Σ_s [w_s·(accuracy_s − β_s·LC_s) − α_s·cost_s] (see :mod:`.problem`)."""
    terms = []
    for s, (service, weight) in enumerate(zip(problem.services, problem.weights(), strict=True)):
        row = model.vars[s]
        if service.load_rps > 0 and weight > 0:
            # (w·a)/L: for w = 1.0 exactly the coefficients a single service always had
            terms.append(pulp.lpSum((weight * v.accuracy / service.load_rps) * x.q for v, x in zip(service.variants, row, strict=True)))
        terms.append(-(service.cost_weight / problem.budget_price) * pulp.lpSum(x.price(problem) for x in row))
        transition = lc[s]
        if transition is not None:
            terms.append(-(service.transition_weight * weight) * transition)
    return pulp.lpSum(terms)


def cost_term(problem: Problem, model: Model) -> pulp.LpAffineExpression:
    """``price / price_B`` over every service: the tie-break's first key."""
    return pulp.lpSum(v.price(problem) for row in model.vars for v in row) / problem.budget_price


def tie_break_objective(model: Model) -> pulp.LpAffineExpression | None:
    """``(R + 1)·units + replicas`` to minimise, when every cost is a whole number of one CPU unit
    (no GPUs; what the spec's ``cpuStep`` gives), else None.

    ``R`` is the most replicas a plan can hold (every variant at its largest), so one cost unit
    outweighs any difference in replicas: minimising it is the lexicographic (cost term, replicas)
    order in one integer objective, which HiGHS resolves exactly (no tolerance to choose).
    """
    everything = [v for row in model.vars for v in row]
    per_unit = [o.cost_cpu for v in everything for o in v.singles] + [g.per_replica.cpu_cores for v in everything for g in v.ranges]
    if any(o.gpus for v in everything for o in v.singles) or any(g.per_replica.gpus for v in everything for g in v.ranges):
        return None
    milli = [c * 1000.0 for c in per_unit]
    if not milli or any(abs(m - round(m)) > 1e-6 for m in milli):
        return None
    unit = 0
    for m in milli:
        unit = math.gcd(unit, round(m))
    if unit == 0:
        return None
    units = pulp.lpSum(
        [round(o.cost_cpu * 1000.0) // unit * y for v in everything for o, y in zip(v.singles, v.y, strict=True)]
        + [round(g.per_replica.cpu_cores * 1000.0) // unit * r for v in everything for g, r in zip(v.ranges, v.r, strict=True)]
    )
    most = sum(v.most_replicas() for v in everything)
    return (most + 1) * units + pulp.lpSum(v.replicas() for v in everything)
