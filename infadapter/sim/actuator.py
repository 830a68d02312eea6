"""The simulated servers as the controller's actuator: actions become instances on a :class:`Timeline`.

It executes an :class:`~infadapter.control.Action` with the :class:`~infadapter.control.Latencies` it is
given (the same the controller plans with) and reports what runs as an
:class:`~infadapter.control.ActuatorState`, like the local and Kubernetes actuators:

* a new replica costs from the action and serves ``load_time_s + startup_s`` later, or as long after it as
  a start of its variant was measured to take (``ready_s``: the servers' real start, not the one planned);
* an in-place resize takes effect ``in_place_s`` later (the instance, its queue and backlog stay);
* a resize that is not in place replaces the variant's replicas: the old ones serve until every new
  one is ready (a rolling update with maxUnavailable 0), then go;
* a replica never changes GPUs: a target on other hardware (another GPU count) replaces it, like a
  size change that is not in place;
* a variant absent from the action, or a replica beyond the wanted count, stops at once;
* a new split reaches the router ``weights_s`` later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from infadapter.control import Action, ActuatorState, Latencies, VariantState, VariantTarget, same_weights
from infadapter.planning import Plan
from infadapter.sim.engine import SimInstance, Timeline
from infadapter.spec import InferenceServiceSpec

#: times within this are the same instant (the controller wakes at the times this actuator computes)
EPS_S = 1e-6


class SimActuator:
    """Simulated instances of one service (see the module docstring)."""

    def __init__(self, spec: InferenceServiceSpec, latencies: Latencies, timeline: Timeline, ready_s: Mapping[str, float] | None = None) -> None:
        self.spec = spec
        self.latencies = latencies
        self.ready_s = dict(ready_s or {})
        self.timeline = timeline
        self.accuracy = {v.name: v.accuracy for v in spec.units}
        self._targets: dict[str, VariantTarget] = {}
        self._next_id = 0

    def deploy(self, plan: Plan) -> None:
        """What already runs when the window begins: ``plan``'s instances, ready and routed at t = 0."""
        for v in plan.variants:
            for _ in range(v.replicas):
                self._new(v.name, v.cpu_cores, v.gpus, 0.0, 0.0)
            self._targets[v.name] = VariantTarget(v.name, v.cpu_cores, v.replicas, v.gpus)
        self.timeline.splits.append((0.0, plan.weights()))

    def _new(self, variant: str, cores: float, gpus: int, cost_from_s: float, serve_from_s: float) -> SimInstance:
        inst = SimInstance(self._next_id, variant, self.accuracy[variant], [(cost_from_s, cores)], cost_from_s, serve_from_s, gpus=gpus)
        self.timeline.instances[inst.id] = inst
        self._next_id += 1
        return inst

    def _alive(self, variant: str, t_s: float) -> list[SimInstance]:
        return [i for i in self.timeline.instances.values() if i.variant == variant and i.end_s > t_s + EPS_S]

    def state(self, t_s: float) -> ActuatorState:
        """What runs at ``t_s``: wanted sizes and replicas, the cores of every serving replica, the router's split."""
        variants = []
        names = set(self._targets) | {i.variant for i in self.timeline.instances.values() if i.end_s > t_s + EPS_S}
        for name in sorted(names):
            alive = [i for i in self._alive(name, t_s) if i.serve_from_s <= t_s + EPS_S]
            target = self._targets.get(name)
            gpus = target.gpus if target is not None else (alive[0].gpus if alive else 0)
            # replicas on other hardware (being replaced) are left out: the state has one GPU count per
            # variant, and counting a CPU replica at the GPU's capacity would end make-before-break early
            ready = tuple(i.cores_at(t_s + EPS_S) for i in alive if i.gpus == gpus)
            if target is None and not ready:
                continue
            cores = target.cpu_cores if target is not None else ready[0]
            variants.append(VariantState(name, cores, target.replicas if target is not None else 0, ready, gpus))
        return ActuatorState(tuple(variants), dict(self.timeline.split_at(t_s + EPS_S)))

    def execute(self, action: Action, t_s: float) -> None:
        """Make ``action`` real from ``t_s`` on."""
        for target in action.variants:
            self._converge(target, t_s)
            self._targets[target.name] = target
        for name in [n for n in self._targets if action.variant(n) is None]:
            for inst in self._alive(name, t_s):
                inst.end_s = t_s
            del self._targets[name]
        scheduled = self.timeline.splits[-1][1] if self.timeline.splits else {}
        if not same_weights(action.weights, scheduled):
            self.timeline.splits.append((t_s + self.latencies.weights_s, dict(action.weights)))

    def _converge(self, target: VariantTarget, t_s: float) -> None:
        kept: list[SimInstance] = []
        replaced: list[SimInstance] = []
        for inst in self._alive(target.name, t_s):
            if math.isfinite(inst.end_s):  # already being replaced
                continue
            if inst.gpus != target.gpus:  # other hardware: never in place
                replaced.append(inst)
            elif abs(inst.final_cores - target.cpu_cores) <= 1e-9:
                kept.append(inst)
            elif target.in_place:
                self._resize(inst, target.cpu_cores, t_s + self.latencies.in_place_s)
                kept.append(inst)
            else:
                replaced.append(inst)
        # fewer replicas: the newest go first (those still starting before those that serve)
        for inst in sorted(kept, key=lambda i: (i.serve_from_s <= t_s, -i.id))[: max(0, len(kept) - target.replicas)]:
            inst.end_s = t_s
            kept.remove(inst)
        ready_s = t_s
        for _ in range(target.replicas - len(kept)):
            ready_s = max(ready_s, t_s + self.cold_start_s(target.name))
            self._new(target.name, target.cpu_cores, target.gpus, t_s, ready_s)
        for inst in replaced:
            inst.end_s = ready_s

    def cold_start_s(self, variant: str) -> float:
        """How long a new replica of ``variant`` takes to serve: as measured where known, else as planned."""
        measured = self.ready_s.get(variant)
        return measured if measured is not None else self.latencies.cold_start_s(self.spec, variant)

    @staticmethod
    def _resize(inst: SimInstance, cores: float, at_s: float) -> None:
        """From ``at_s`` on, ``inst`` has ``cores`` (a resize not yet in effect is superseded)."""
        inst.sizes = [s for s in inst.sizes if s[0] < at_s - EPS_S or s is inst.sizes[0]]
        if abs(inst.sizes[-1][1] - cores) > 1e-9:
            inst.sizes.append((max(at_s, inst.sizes[-1][0]), cores))
