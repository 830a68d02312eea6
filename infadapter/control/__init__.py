"""The one controller step of every mode (pure): observations and what runs in, what to apply and record out.

The operator, the embedded mode and the simulator each only wire a :class:`Controller` to their clock,
their observer and their actuator::

    controller = Controller(spec, profile, make_policy(name, spec, profile), latencies=Latencies(startup_s=4.0),
                            namespace="default", name="resnet")
    state = controller.initial_state()                      # or controller.state_from_dict(checkpoint)
    while running:                                          # every second, or at step.wake_s
        step, state = controller.step(state, now_s, history_rps, actuator.state())
        if step.action is not None:
            actuator.execute(step.action)                   # sizes, replicas, router split
        if step.record is not None:
            report(step.record)                             # log line, metrics, status, event

Inputs:

* ``now_s``: the mode's clock (seconds; Unix time, monotonic or trace time: only differences matter);
* ``history_rps``: arrivals per second at the router, oldest first, the last element the second that
  ends at ``now_s``; NaN = unknown (a gap; an empty array when the observer failed);
* :class:`ActuatorState`: per variant (:class:`VariantState`) the size and replicas the actuator
  converges to and the effective cores of each ready replica; the split the router applies;
  whether sizes can change in place.

Outputs (:class:`Step`): the :class:`Action` to apply or None (act only on change) — every variant that
should run (:class:`VariantTarget`: cores, replicas, gpus, in place or replaced) and the router's split
(a variant absent is drained and removed); the :class:`DecisionRecord` of the decision taken, if any;
whether it changed the configuration; ``wake_s``, when the next change is expected.

The budget is a cap (:mod:`~infadapter.control.budget`): what an action makes the actuator hold, counted as
a ResourceQuota counts pods, stays within ``budget · (1 + surge)``; a make-before-break that would not is staged.

The actuator's :class:`Latencies` (cold start = the variant's ``load_time_s`` + ``startup_s``, in-place
resize, split propagation) are parameters the controller plans with. The rules (schedule, cold start,
holding, make-before-break, the reason classifier) are in :mod:`~infadapter.control.controller` and
:mod:`~infadapter.control.actuation`; ``docs/INTERFACES.md`` has the contract.
"""

from infadapter.control.actuation import (
    Action,
    ActuatorState,
    VariantState,
    VariantTarget,
    actuation,
    converged,
    covered,
    plan_of_state,
    provisioned_capacity_rps,
    same_weights,
    split,
)
from infadapter.control.budget import DEFAULT_SURGE_RATIO, Cap, footprint, within_cap
from infadapter.control.controller import Controller, ControlState, StartsOnAPlan, Step, policy_options
from infadapter.control.record import (
    DECISION_REASONS,
    DecisionReason,
    DecisionRecord,
    PlanStatus,
    VariantRecord,
    classify,
    plan_variants,
    record_from_plan,
)
from infadapter.latencies import MODE_LATENCIES, Latencies

__all__ = [
    "DECISION_REASONS",
    "DEFAULT_SURGE_RATIO",
    "MODE_LATENCIES",
    "Action",
    "ActuatorState",
    "Cap",
    "ControlState",
    "Controller",
    "DecisionReason",
    "DecisionRecord",
    "Latencies",
    "PlanStatus",
    "StartsOnAPlan",
    "Step",
    "VariantRecord",
    "VariantState",
    "VariantTarget",
    "actuation",
    "classify",
    "converged",
    "covered",
    "footprint",
    "plan_of_state",
    "plan_variants",
    "policy_options",
    "provisioned_capacity_rps",
    "record_from_plan",
    "same_weights",
    "split",
    "within_cap",
]
