"""Shadow mode (pure): what a service the operator did not create runs now, beside what the operator recommends.

A platform team adopts the operator this way: the InferenceService names the service's load query and its current
configuration (``spec.shadow``), runs in Recommend mode, and the status, an event and the metrics say what the
operator would run instead — its cost and accuracy against the current configuration's at the predicted load, and
whether the current configuration serves that load at the SLO at all (by the profile).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from infadapter.errors import InvalidInput
from infadapter.planning import Plan, static_plan
from infadapter.profiles import Profile
from infadapter.spec import InferenceServiceSpec


@dataclass(frozen=True)
class Comparison:
    """The current configuration at the predicted load, beside the recommendation."""

    current: Plan | None  # None: the profile cannot price it (see ``problem``)
    recommended: Plan
    load_rps: float
    problem: str = ""

    @property
    def serves(self) -> bool:
        return self.current is not None and self.current.capacity_rps >= self.load_rps - 1e-9

    def status(self) -> dict[str, Any]:
        """The ``status.shadow`` block."""
        out: dict[str, Any] = {"predictedLoadRps": _round(self.load_rps, 1), "recommended": self.recommended.describe()}
        if self.current is None:
            return out | {"problem": self.problem}
        cur, rec = self.current, self.recommended
        return out | {
            "current": cur.describe(),
            "currentCapacityRps": _round(cur.capacity_rps, 1),
            "currentServesPredictedLoad": self.serves,
            "currentCostCpu": _round(cur.cost_cpu, 3),
            "currentCostGpu": int(cur.cost_gpu),
            "currentAccuracy": _round(cur.accuracy, 4),
            "costCpuDifference": _round(rec.cost_cpu - cur.cost_cpu, 3),
            "accuracyDifference": _round(rec.accuracy - cur.accuracy, 4),
        }

    def message(self) -> str:
        """One line for the event."""
        if self.current is None:
            return f"recommend {self.recommended.describe()} at {self.load_rps:.1f} rps; the current configuration: {self.problem}"
        cur, rec = self.current, self.recommended
        serves = "serves" if self.serves else f"does not serve (capacity {cur.capacity_rps:.1f} rps)"
        return (
            f"at {self.load_rps:.1f} rps the current {cur.describe()} {serves}: recommend {rec.describe()}, "
            f"{rec.cost_cpu - cur.cost_cpu:+.2f} cores, accuracy {100 * (rec.accuracy - cur.accuracy):+.2f} pt"
        )


def compare(spec: InferenceServiceSpec, profile: Profile, recommended: Plan, load_rps: float) -> Comparison | None:
    """The comparison for ``spec.shadow`` (None without one, or before a first forecast)."""
    if spec.shadow is None or math.isnan(load_rps):
        return None
    running = spec.shadow.current
    try:
        current = static_plan(
            spec,
            profile,
            {v.variant: v.cpu for v in running},
            load_rps,
            replicas={v.variant: v.replicas for v in running},
            gpus={v.variant: v.gpus for v in running},
        )
    except (InvalidInput, KeyError, ValueError) as exc:  # e.g. a size or device count the profile never measured
        return Comparison(None, recommended, load_rps, str(exc).replace("\n", " ")[:500])
    return Comparison(current, recommended, load_rps)


def _round(value: float, digits: int) -> float | None:
    return round(value, digits) if math.isfinite(value) else None
