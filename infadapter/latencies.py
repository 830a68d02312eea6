"""Each mode's actuation latencies: how long a change takes to be effective, and the simulator's arrival
modes (pure data, light to import).

The controller plans with them (:mod:`infadapter.control`, which re-exports both names); the CLI's help
is written from :data:`MODE_LATENCIES`, so it cannot drift from what the modes use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from infadapter.spec import InferenceServiceSpec


@dataclass(frozen=True)
class Latencies:
    """How long the actuator takes to make a change effective (seconds): the controller plans with them.

    A new replica serves ``load_time_s`` (the variant's, from the spec) + ``startup_s`` after it is
    asked for; an in-place resize takes ``in_place_s``; a new split reaches the router in ``weights_s``.
    ``observe_s`` is the loop's other delay: the load the observer reports lags the real one by it (the
    metrics' scrape interval and rate window); the simulator gives its controllers history that late (a
    fraction of a second too: its loop then steps that long after each second ends). ``step_s`` is how often
    the loop steps: between its steps a mode sees nothing, so a change of load waits for the next one too.
    """

    startup_s: float = 4.0
    in_place_s: float = 1.0
    weights_s: float = 0.0
    observe_s: float = 0.0
    step_s: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.step_s) and self.step_s >= 1.0):
            raise ValueError(f"Latencies.step_s: {self.step_s} must be at least 1 second (the loop reads whole seconds)")

    def cold_start_s(self, spec: InferenceServiceSpec, variant: str) -> float:
        return spec.variant(variant).load_time_s + self.startup_s


#: each mode's actuation latencies: what its actuator tells the controller, and the simulator's parameters
#: (``simulate --latencies MODE``), so a simulation can describe the mode a service will run in:
#:
#: * ``simulator``: the simulator's own default (the paper scenario's figures are computed with it);
#: * ``embedded``: the local runtime. A tritonserver answers ready about 1 s after its model's load time
#:   (process start, readiness polled every 0.1 s; ``benchmarks/fidelity.py`` reports the measured starts);
#:   a cgroup quota write and Envoy's ``/runtime_modify`` act at once; Prometheus scrapes the router every
#:   second and the load is the rate between its last two samples, which holds the second before the one that
#:   just ended: the controller, stepping every second at a phase of 0.2-0.8 s, sees each second 1.2-1.8 s after
#:   it ends, 1.5 s on average (fidelity batches X and Y, 2026-12-05: its decisions came 0.8 s after those of a
#:   simulated controller given the same readings 0.5 s late, which had been the figure here);
#: * ``kubernetes``: the operator. A new pod serves its variant's load time plus scheduling and container
#:   start (~15 s with the image present); the kubelet acknowledges a ``pods/resize`` in about 2 s; new
#:   weights reach Envoy once the kubelet projects the router's ConfigMap volume — at once, because the
#:   operator then annotates the router pods (a pod update makes the kubelet sync it), else at its next
#:   periodic sync, up to a minute later — plus the sidecar's 2 s poll: 3 s is used here, and the controller
#:   waits for Envoy to confirm them before a leaving variant goes. The chart's PodMonitor scrapes every 5 s and
#:   the operator steps once a scrape interval, just after each scrape lands (``step_s``): a change of load is in
#:   its history 5.5 s after the end of its second on average (2.4-8.2 s, by where it falls between two scrapes;
#:   ``benchmarks/observation.py``, real Prometheus and the operator's own reading of it, 2026-12-06). The
#:   simulator's loop steps every 5 s on a grid of whole seconds, so a second waits 0-4 s, 2 s on average, for
#:   the step that sees it: 3.5 s of ``observe_s`` give the measured 5.5.
MODE_LATENCIES: Mapping[str, Latencies] = {
    "simulator": Latencies(),
    "embedded": Latencies(startup_s=1.0, in_place_s=0.0, weights_s=0.0, observe_s=1.5),
    "kubernetes": Latencies(startup_s=15.0, in_place_s=2.0, weights_s=3.0, observe_s=3.5, step_s=5.0),
}


#: the simulator's arrival modes (``simulate --arrivals``), each with what it sends every second of the trace
ARRIVAL_MODES: Mapping[str, str] = {
    "poisson": "the trace's count, uniformly in the second (the default)",
    "paper": "the trace's count, packed into about the second's first 0.67 s (the paper's generator)",
    "loadgen": "a Poisson count of the trace's rate, uniformly in the second (the load generator of `infadapter run`)",
}
ARRIVALS_HELP = "how requests arrive each second: " + "; ".join(f"{k}: {v}" for k, v in ARRIVAL_MODES.items())
