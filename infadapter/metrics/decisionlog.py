"""The decision record and its two renderings: one human line (INFO) and one JSON line.

Every tick of every mode produces one :class:`DecisionRecord`. The same record feeds
the Prometheus exporter (:mod:`infadapter.metrics.exporter`), the decision log (here),
the Kubernetes event (operator: ``format_decision(record)`` is the message) and the run
report (:mod:`infadapter.metrics.report`).

The human line reads::

    plan resnet50:4c/0.60 resnet18:2c/0.40 (was resnet152:20c/1.00) reason=scale_down load=123rps forecast=140rps solve=3ms

``4c`` is cores per replica; a variant with 3 replicas of 2 cores is written ``2cx3``; the
number after ``/`` is the share of requests (weight) routed to the variant.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any, Literal

from infadapter.errors import FieldError, InvalidInput

DecisionReason = Literal["scale_up", "scale_down", "variant_change", "hold", "infeasible", "metrics_unavailable"]

#: every value :attr:`DecisionRecord.reason` may take (the exporter pre-creates one counter per reason)
DECISION_REASONS: tuple[DecisionReason, ...] = (
    "scale_up",
    "scale_down",
    "variant_change",
    "hold",
    "infeasible",
    "metrics_unavailable",
)

PlanStatus = Literal["optimal", "infeasible"]

LOGGER_NAME = "infadapter.decisions"


@dataclass(frozen=True)
class VariantRecord:
    """One variant of a plan: ``cpu_cores`` (and ``gpus``) per replica, ``weight`` = share of requests in [0, 1]."""

    cpu_cores: float
    replicas: int = 1
    weight: float = 0.0
    capacity_rps: float = 0.0
    gpus: int = 0

    @property
    def total_cpu_cores(self) -> float:
        return self.cpu_cores * self.replicas

    def to_dict(self) -> dict[str, float | int]:
        return {
            "cpu_cores": self.cpu_cores,
            "replicas": self.replicas,
            "weight": self.weight,
            "capacity_rps": self.capacity_rps,
            "gpus": self.gpus,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> VariantRecord:
        return cls(
            cpu_cores=float(raw["cpu_cores"]),
            replicas=int(raw.get("replicas", 1)),
            weight=float(raw.get("weight", 0.0)),
            capacity_rps=float(raw.get("capacity_rps", 0.0)),
            gpus=int(raw.get("gpus", 0)),
        )


def _frozen_plan(plan: Mapping[str, VariantRecord | Mapping[str, Any]]) -> Mapping[str, VariantRecord]:
    converted = {
        name: v if isinstance(v, VariantRecord) else VariantRecord.from_dict(v) for name, v in plan.items()
    }
    return MappingProxyType(converted)


@dataclass(frozen=True)
class DecisionRecord:
    """What one tick decided, for one service (``namespace``/``name``).

    ``plan`` and ``previous_plan`` map variant name -> :class:`VariantRecord` (plain dicts with the
    same keys are accepted and converted). ``now_s`` is the tick's time (Unix seconds in the operator
    and the embedded mode, trace seconds in the simulator). Loads are requests per second; NaN where
    unknown (e.g. ``metrics_unavailable``). ``accuracy`` is the expected (weight-averaged declared)
    accuracy as a fraction, ``cost_cpu`` the planned cores (all replicas), ``solve_s`` the solver's
    wall time (None when the tick solved nothing, e.g. it kept the running plan). Optional measurements taken at the router during the last interval
    (``slo_violation_ratio``, ``reconfiguration_s``) are exported when given.
    """

    namespace: str
    name: str
    now_s: float
    reason: DecisionReason
    observed_rps: float
    forecast_rps: float
    plan: Mapping[str, VariantRecord] = field(default_factory=dict)
    previous_plan: Mapping[str, VariantRecord] = field(default_factory=dict)
    accuracy: float = math.nan
    cost_cpu: float = math.nan
    objective: float = math.nan
    solve_s: float | None = None
    status: PlanStatus = "optimal"
    slo_violation_ratio: float | None = None
    reconfiguration_s: float | None = None

    def __post_init__(self) -> None:
        errors: list[FieldError] = []
        if self.reason not in DECISION_REASONS:
            errors.append(FieldError("reason", f"unknown reason {self.reason!r}", f"one of {DECISION_REASONS}"))
        if self.status not in ("optimal", "infeasible"):
            errors.append(FieldError("status", f"unknown status {self.status!r}", "'optimal' or 'infeasible'"))
        if errors:
            raise InvalidInput(errors, source="decision record")
        object.__setattr__(self, "plan", _frozen_plan(self.plan))
        object.__setattr__(self, "previous_plan", _frozen_plan(self.previous_plan))

    @property
    def changed(self) -> bool:
        """True when the plan differs from the previous one (any variant, cores, replicas or weight)."""
        return dict(self.plan) != dict(self.previous_plan)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (NaN becomes ``None``); :meth:`from_dict` reads it back."""
        return {
            "namespace": self.namespace,
            "name": self.name,
            "now_s": self.now_s,
            "reason": self.reason,
            "status": self.status,
            "observed_rps": _json_number(self.observed_rps),
            "forecast_rps": _json_number(self.forecast_rps),
            "plan": {k: v.to_dict() for k, v in self.plan.items()},
            "previous_plan": {k: v.to_dict() for k, v in self.previous_plan.items()},
            "accuracy": _json_number(self.accuracy),
            "cost_cpu": _json_number(self.cost_cpu),
            "objective": _json_number(self.objective),
            "solve_s": _json_optional(self.solve_s),
            "slo_violation_ratio": _json_optional(self.slo_violation_ratio),
            "reconfiguration_s": _json_optional(self.reconfiguration_s),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> DecisionRecord:
        def num(key: str) -> float:
            value = raw.get(key)
            return math.nan if value is None else float(value)

        def opt(key: str) -> float | None:
            value = raw.get(key)
            return None if value is None else float(value)

        return cls(
            namespace=str(raw["namespace"]),
            name=str(raw["name"]),
            now_s=float(raw["now_s"]),
            reason=raw["reason"],
            status=raw.get("status", "optimal"),
            observed_rps=num("observed_rps"),
            forecast_rps=num("forecast_rps"),
            plan=dict(raw.get("plan") or {}),
            previous_plan=dict(raw.get("previous_plan") or {}),
            accuracy=num("accuracy"),
            cost_cpu=num("cost_cpu"),
            objective=num("objective"),
            solve_s=opt("solve_s"),
            slo_violation_ratio=opt("slo_violation_ratio"),
            reconfiguration_s=opt("reconfiguration_s"),
        )


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else value


def _json_optional(value: float | None) -> float | None:
    return None if value is None else _json_number(value)


# -- rendering --


def _cores(value: float) -> str:
    return f"{value:.3g}c"


def describe_plan(plan: Mapping[str, VariantRecord]) -> str:
    """``resnet50:4c/0.60 resnet18:2cx3/0.40``: heaviest share first, then by name.

    Same notation as ``Plan.describe()``: cores per replica, ``+1g`` GPUs per replica, ``x3`` replicas.
    """
    if not plan:
        return "(none)"
    parts = []
    for name, v in sorted(plan.items(), key=lambda item: (-item[1].weight, item[0])):
        size = _cores(v.cpu_cores) + (f"+{v.gpus}g" if v.gpus else "") + (f"x{v.replicas}" if v.replicas != 1 else "")
        parts.append(f"{name}:{size}/{v.weight:.2f}")
    return " ".join(parts)


def _rate(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.0f}rps" if value >= 10 else f"{value:.3g}rps"


def _duration(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "n/a"
    milliseconds = seconds * 1000.0
    return f"{milliseconds:.0f}ms" if milliseconds >= 10 else f"{milliseconds:.2g}ms"


def format_decision(record: DecisionRecord, *, with_service: bool = False) -> str:
    """The one human-readable line (also the Kubernetes event message)."""
    head = f"{record.namespace}/{record.name} " if with_service else ""
    was = "(unchanged)" if not record.changed else f"(was {describe_plan(record.previous_plan)})"
    text = (
        f"{head}plan {describe_plan(record.plan)} {was} reason={record.reason} "
        f"load={_rate(record.observed_rps)} forecast={_rate(record.forecast_rps)} solve={_duration(record.solve_s)}"
    )
    if record.status != "optimal":
        text += f" status={record.status}"
    if record.slo_violation_ratio is not None:
        text += f" violations={record.slo_violation_ratio:.2%}"
    return text


@dataclass(frozen=True)
class EventFields:
    """A Kubernetes event for a decision: ``type`` (Normal|Warning), CamelCase ``reason``, ``message``."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


#: the API server rejects event messages longer than this
EVENT_MESSAGE_LIMIT = 1024


def event_fields(record: DecisionRecord) -> EventFields:
    """The operator's event for ``record``: Warning when infeasible or blind, the log line as message."""
    warning = record.reason in ("infeasible", "metrics_unavailable") or record.status != "optimal"
    reason = "".join(part.capitalize() for part in record.reason.split("_"))
    message = format_decision(record)
    if len(message) > EVENT_MESSAGE_LIMIT:
        message = message[: EVENT_MESSAGE_LIMIT - 1] + "…"
    return EventFields("Warning" if warning else "Normal", reason, message)


class DecisionLog:
    """Writes each record as one INFO line on ``logger`` and, when configured, one JSON line.

    ``json_path`` appends to a file (created with its parent directory); ``json_stream`` writes to an
    open text stream (e.g. ``sys.stdout`` for ``--log-format json``). Both may be given.
    """

    def __init__(
        self,
        logger: logging.Logger | None = None,
        *,
        json_path: str | Path | None = None,
        json_stream: IO[str] | None = None,
    ) -> None:
        self.logger = logger or logging.getLogger(LOGGER_NAME)
        self.json_path = Path(json_path) if json_path is not None else None
        self.json_stream = json_stream
        if self.json_path is not None:
            self.json_path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, record: DecisionRecord) -> str:
        """Emit ``record``; returns the human line."""
        line = format_decision(record, with_service=True)
        self.logger.info(line, extra={"decision": record.to_dict()})
        if self.json_path is not None or self.json_stream is not None:
            payload = json.dumps({"message": line, **record.to_dict()}, sort_keys=True, allow_nan=False)
            if self.json_path is not None:
                with self.json_path.open("a", encoding="utf-8") as handle:
                    handle.write(payload + "\n")
            if self.json_stream is not None:
                self.json_stream.write(payload + "\n")
                self.json_stream.flush()
        return line


def read_decisions(path: str | Path) -> list[DecisionRecord]:
    """Read a JSON-lines decision log written by :class:`DecisionLog`."""
    records = []
    with Path(path).open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                records.append(DecisionRecord.from_dict(json.loads(line)))
    return records
