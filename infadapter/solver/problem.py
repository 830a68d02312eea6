"""The decision problem as frozen data: what the solver is given and what it returns.

For every service ``s`` with predicted load ``L_s``, every variant ``m`` (accuracy ``a_m``,
load time ``l_m``) and every resource option ``o`` of ``m`` (CPU and GPUs per replica,
replicas, capacity ``th_mo`` in RPS at the SLO, cost ``c_mo``)::

    maximise   Σ_s [ w_s · ( Σ_m a_m q_sm / L_s              (request-weighted accuracy)
                             − β_s · LC_s )                  (transition; the paper's β)
                     − α_s · price_s / price_B ]             (cost; the paper's α)
    subject to Σ_m q_sm = L_s                               all predicted load is assigned
               q_sm ≤ Σ_o th_mo · y_smo                     nobody gets more than its capacity
               Σ_o y_smo ≤ 1                                one option per variant
               Σ_{m,o} y_smo ≥ 1                            something always serves
               Σ cpu · y ≤ B_cpu,  Σ gpu_t · y ≤ B_t        budgets shared by all services (one
                                                            per accelerator type t)
               LC_s ≥ (l_m / max_m l_m) · y_smo             for every option o that creates or
                                                            resizes an instance of m

Cost is money-like: ``price_s = p_cpu·cpu_s + Σ_t p_t·gpu_s,t`` at a price per core and per device of
each accelerator type ``t`` (the default type is named ``gpu``), over ``price_B``, the price of the
whole budget. With CPU only this is the paper's ``cpu_s / B_cpu`` whatever the core's price.

``w_s = L_s / Σ_t L_t`` is the service's share of the load (``1/n`` each when no service has
any), so ``Σ_s w_s Σ_m a_m q_sm / L_s = Σ_{s,m} a_m q_sm / Σ_t L_t``: the joint accuracy term is
the accuracy of the average *request*, and a 5 rps service weighs a hundredth of a 500 rps one.
The transition term is weighted the same way (a reload disturbs that service's share of the
requests), so the quality terms of a joint problem are on the scale of one service's. The cost
term is not weighted: a core costs the same whichever service holds it, so it stays the price of
the cores (and GPUs) used over the price of the shared budget, each counted once, at its service's α. For one service
``w = 1`` and this is the paper's objective. A :class:`ServiceSolution` reports the service's
own objective (``w = 1``, what its plan shows) and its ``contribution`` to the joint one.

Ties: plans whose objectives differ by at most :data:`TIE_TOLERANCE` are equally good (at α = 0
plans from 10 to 40 cores often are). Among them every method returns one with the lowest cost
term ``Σ_s price_s / price_B`` and, of that cost, the fewest replicas: the exhaustive
oracle by filtering, the DP by its order of labels, the MILP by lexicographic phases where some cost
weight is 0 (with every α > 0 the ties left are of one cost and differ only in replicas; the MILP
leaves them as found, the DP, which ``auto`` uses for CPU-only problems, breaks them). Exact ties are
broken alike by the oracle and the DP, and by the MILP where some α is 0 (``docs/formulation.md``).

``LC`` is the paper's loading-cost term: the longest (normalised) load time among the
variants the plan creates or resizes. When ``Σ th`` cannot reach ``L_s`` within the budget
the problem is *infeasible*; the solver then returns the plan that serves the most load and,
among those, the best objective, flagged ``infeasible``.

A :class:`Solution`'s status says what was *proven*:

- ``optimal``: the plan serves all the load and no plan within the budget is better;
- ``feasible``: the plan serves all the load, but the MILP's time limit stopped the search before
  it proved the plan optimal;
- ``infeasible``: no plan within the budget serves all the load (proven); the plan serves the most
  load possible and is the best of those (no plan at all when not even a minimal one fits);
- ``time_limit``: the time limit stopped the search before it found a plan serving all the load
  or settled the best of the rest; the plan (possibly none) is the best found, and nothing is
  claimed about optimality or infeasibility.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from infadapter.hardware import DEFAULT_ACCELERATOR, DEFAULT_GPU_PRICE

Status = Literal["optimal", "feasible", "infeasible", "time_limit"]

#: every status, in the order above (for parsers of stored plans)
STATUSES: tuple[Status, ...] = ("optimal", "feasible", "infeasible", "time_limit")

#: numerical tolerance used by the solver, the checker and the oracle
TOLERANCE = 1e-6

#: objectives this close are equal: the tie-break (lowest cost, then fewest replicas) decides. Far
#: below any difference the problem data make on purpose (accuracies and loads of 1e-3 make
#: differences of ~1e-9/L), far above the float noise of the solvers' sums (~1e-15)
TIE_TOLERANCE = 1e-9


@dataclass(frozen=True, order=True)
class ResourceOption:
    """``replicas`` instances of ``cpu_cores`` (+ ``gpus`` of type ``accelerator``) each, serving
    ``capacity_rps`` in total. ``accelerator`` "" is the default type (``budget.gpu``)."""

    cpu_cores: float
    replicas: int = 1
    gpus: int = 0
    capacity_rps: float = 0.0
    accelerator: str = ""

    @property
    def cost_cpu(self) -> float:
        return self.cpu_cores * self.replicas

    @property
    def cost_gpu(self) -> int:
        return self.gpus * self.replicas

    def same_size(self, other: ResourceOption | None) -> bool:
        return (
            other is not None
            and abs(self.cpu_cores - other.cpu_cores) < 1e-9
            and self.gpus == other.gpus
            and (self.accelerator == other.accelerator or not self.gpus)
        )

    @property
    def device(self) -> str:
        """The accelerator type its GPUs are of ("" without GPUs; :data:`DEFAULT_ACCELERATOR` for the default)."""
        return (self.accelerator or DEFAULT_ACCELERATOR) if self.gpus else ""

    @property
    def hardware(self) -> str:
        """What it runs on: "cpu", or its GPUs' type ("gpu" for the default)."""
        return self.device or "cpu"

    def transition_from(self, current: ResourceOption | None) -> bool:
        """Does moving from ``current`` to this option create or resize an instance?

        A new variant, a new size, or more replicas all load the model somewhere; removing
        replicas of an unchanged size does not.
        """
        if not self.same_size(current):
            return True
        assert current is not None
        return self.replicas > current.replicas


@dataclass(frozen=True)
class VariantOptions:
    """A variant and the resource options it may be given."""

    name: str
    accuracy: float
    options: tuple[ResourceOption, ...]
    load_time_s: float = 0.0
    current: ResourceOption | None = None
    required: bool = False


@dataclass(frozen=True)
class ServiceProblem:
    """One inference service: its predicted load and its variants."""

    name: str
    load_rps: float
    variants: tuple[VariantOptions, ...]
    cost_weight: float = 0.05
    transition_weight: float = 0.001

    @property
    def max_load_time_s(self) -> float:
        return max((v.load_time_s for v in self.variants), default=0.0)


@dataclass(frozen=True)
class Accelerator:
    """A named accelerator type: ``count`` devices in the budget at ``price`` each (in :attr:`Problem.cpu_price`'s unit)."""

    name: str
    count: int
    price: float


@dataclass(frozen=True)
class Problem:
    """Several services sharing one CPU budget, one budget of default GPUs and one per named accelerator type."""

    services: tuple[ServiceProblem, ...]
    budget_cpu: float
    budget_gpu: int = 0
    accelerators: tuple[Accelerator, ...] = ()
    #: prices per core and per default GPU (money-like; only their ratios to each other matter)
    cpu_price: float = 1.0
    gpu_price: float = DEFAULT_GPU_PRICE

    @staticmethod
    def single(service: ServiceProblem, budget_cpu: float, budget_gpu: int = 0, **pricing: Any) -> Problem:
        return Problem((service,), budget_cpu, budget_gpu, **pricing)

    def device_budget(self, device: str) -> int:
        """How many devices of type ``device`` (an option's :attr:`ResourceOption.device`) the budget holds."""
        if device == DEFAULT_ACCELERATOR:
            return self.budget_gpu
        return next((a.count for a in self.accelerators if a.name == device), 0)

    def device_price(self, device: str) -> float:
        if device == DEFAULT_ACCELERATOR:
            return self.gpu_price
        return next((a.price for a in self.accelerators if a.name == device), 0.0)

    def price(self, option: ResourceOption) -> float:
        """What ``option`` costs: its cores and its devices at their prices."""
        return option.cost_cpu * self.cpu_price + (option.cost_gpu * self.device_price(option.device) if option.gpus else 0.0)

    @property
    def budget_price(self) -> float:
        """What the whole budget would cost (the cost term's denominator)."""
        return self.budget_cpu * self.cpu_price + self.budget_gpu * self.gpu_price + sum(a.count * a.price for a in self.accelerators)

    def cost_term(self, options: Iterable[ResourceOption]) -> float:
        """``price / price_B`` of the options together (``cpu / B_cpu`` with CPU only)."""
        return sum(self.price(o) for o in options) / self.budget_price

    def over_budget(self, options: Iterable[ResourceOption]) -> list[str]:
        """How the options together exceed the budget (empty when they fit)."""
        cpu = 0.0
        devices: dict[str, int] = {}
        for o in options:
            cpu += o.cost_cpu
            if o.gpus:
                devices[o.device] = devices.get(o.device, 0) + o.cost_gpu
        out = [f"CPU {cpu:g} over the budget {self.budget_cpu:g}"] if cpu > self.budget_cpu + 1e-9 else []
        out += [f"{n} {name} over the budget {self.device_budget(name)}" for name, n in sorted(devices.items()) if n > self.device_budget(name)]
        return out

    def weights(self) -> tuple[float, ...]:
        """Each service's share ``w_s`` of the load: the weight of its accuracy and transition terms.

        ``1/n`` each when no service has any load. A single service's is exactly 1.0 (``L / L``).
        """
        total = sum(s.load_rps for s in self.services)
        if total <= 0:
            return tuple(1.0 / len(self.services) for _ in self.services)
        return tuple(s.load_rps / total for s in self.services)


@dataclass(frozen=True)
class Assignment:
    """Variant ``variant`` runs ``option`` and receives ``load_rps``."""

    variant: str
    option: ResourceOption
    load_rps: float


@dataclass(frozen=True)
class ServiceSolution:
    name: str
    assignments: tuple[Assignment, ...]
    load_rps: float
    served_rps: float
    accuracy: float
    cost_cpu: float
    cost_gpu: int  # devices of every accelerator type
    transition: float
    objective: float  # the service's own objective (w = 1): what its plan reports
    weight: float = 1.0  # w_s, its share of the load
    contribution: float | None = None  # its term of the joint objective; None: ``objective`` (w = 1)
    cost: float = 0.0  # money-like: its cores and devices at the problem's prices

    @property
    def joint_term(self) -> float:
        """``w_s·(accuracy − β_s·LC_s) − α_s·cost_s``: what the service adds to ``Solution.objective``."""
        return self.objective if self.contribution is None else self.contribution


@dataclass(frozen=True)
class Solution:
    status: Status
    services: tuple[ServiceSolution, ...]
    objective: float  # the joint objective: Σ_s of each service's ``joint_term``
    solve_s: float = 0.0
    backend: str = ""  # the method that produced it: "dp", "highs", "cbc" or "exhaustive"
    notes: tuple[str, ...] = field(default_factory=tuple)

    def service(self, name: str) -> ServiceSolution:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(name)
