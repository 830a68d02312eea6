"""The resource's status, built and diffed without I/O: conditions with reasons, only-changed patches."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

CONDITION_TYPES = ("Ready", "MetricsAvailable", "PlanFeasible", "Progressing", "Degraded")


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool | None  # None = Unknown
    reason: str
    message: str = ""

    @property
    def status_text(self) -> str:
        return "Unknown" if self.status is None else ("True" if self.status else "False")


def merge_conditions(previous: Sequence[Mapping[str, Any]], updates: Sequence[Condition], now_iso: str, generation: int) -> list[dict[str, Any]]:
    """New condition list: ``lastTransitionTime`` moves only when a condition's status flips."""
    by_type = {str(c.get("type")): dict(c) for c in previous if isinstance(c, Mapping)}
    for cond in updates:
        old = by_type.get(cond.type)
        since = old.get("lastTransitionTime") if old and old.get("status") == cond.status_text else now_iso
        by_type[cond.type] = {
            "type": cond.type,
            "status": cond.status_text,
            "reason": cond.reason,
            "message": cond.message[:1024],
            "lastTransitionTime": since,
            "observedGeneration": generation,
        }
    ordered = [by_type[t] for t in CONDITION_TYPES if t in by_type]
    return ordered + [c for t, c in by_type.items() if t not in CONDITION_TYPES]


def rounded(value: float | None, digits: int = 3) -> float | None:
    if value is None or (isinstance(value, float) and (math.isnan(value) or math.isinf(value))):
        return None
    return round(float(value), digits)


def _equal_values(old: Any, new: Any) -> bool:
    """Deep equality where numbers compare by value (the API server may give back ``2`` for ``2.0``)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        return set(old) == set(new) and all(_equal_values(old[k], new[k]) for k in new)
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(_equal_values(a, b) for a, b in zip(old, new, strict=True))
    if isinstance(old, int | float) and isinstance(new, int | float) and not isinstance(old, bool) and not isinstance(new, bool):
        return float(old) == float(new)
    return bool(old == new)


def _without_times(conditions: Any) -> Any:
    if not isinstance(conditions, list):
        return conditions
    return [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conditions if isinstance(c, Mapping)]


#: measured loads move a little at every tick (counters sampled by scrapes): the status shows them to people,
#: so a change within this share (or 0.5 rps) is not worth a write; the metrics exporter has the exact values
#: status loads rewritten only past (share of the written value, rps): the observed load is the newest seconds'
#: rate (5 or 6 rps from a counter scraped each second at 5 rps), the forecast a calibrated upper quantile of the
#: next interval's peak that moves with every second of history; the plan they drive is written whenever it
#: changes, and the exporter's gauges carry every value
NOISY: dict[str, tuple[float, float]] = {"observedLoadRps": (0.25, 1.0), "predictedLoadRps": (0.25, 1.0)}


def _close(old: Any, new: Any, band: tuple[float, float]) -> bool:
    if not isinstance(old, int | float) or not isinstance(new, int | float):
        return False
    share, floor = band
    return abs(float(old) - float(new)) <= max(floor, share * abs(float(old)))


def status_changes(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``desired`` whose value differs from ``current`` (a merge patch; {} = write nothing).

    Conditions compare without their timestamps, so an unchanged condition set is never rewritten; measured
    loads compare within :data:`NOISY`, so a steady service causes no writes.
    """
    changes: dict[str, Any] = {}
    for key, value in desired.items():
        old = current.get(key)
        if key in NOISY and _close(old, value, NOISY[key]):
            continue
        if key == "conditions":
            if _equal_values(_without_times(old), _without_times(value)):
                continue
        elif _equal_values(old, value):
            continue
        changes[key] = value
    return changes
