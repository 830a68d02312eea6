"""One decision, pure: spec + profile + predicted load + current plan -> :class:`Plan`.

This package turns the user's spec and a capacity profile into the solver's
:class:`~infadapter.solver.Problem` (:mod:`~infadapter.planning.problem`), solves it exactly and returns a
:class:`Plan` (:mod:`~infadapter.planning.solve`): which variants serve, their CPU/GPU per replica, replicas
and traffic weights. :mod:`~infadapter.planning.gaps` says what the profile does not cover. It never reads
the clock, the environment, the cluster or Prometheus; the policies that call it (``infadapter.policies``)
pass time and history in.

The names most modules use are importable from here.
"""

from infadapter.planning.plan import Plan, VariantPlan
from infadapter.planning.problem import cpu_grid, service_problem
from infadapter.planning.solve import plan_for_load, static_plan

__all__ = ["Plan", "VariantPlan", "cpu_grid", "plan_for_load", "service_problem", "static_plan"]
