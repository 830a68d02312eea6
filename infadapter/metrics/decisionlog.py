"""The decision record's renderings: one human line (INFO) and one JSON line.

Every decision of every mode is one :class:`~infadapter.control.DecisionRecord` (built and classified
by the controller, :mod:`infadapter.control.record`; re-exported here). The same record feeds
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
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from infadapter.control.record import DECISION_REASONS, DecisionReason, DecisionRecord, PlanStatus, VariantRecord

__all__ = [
    "DECISION_REASONS",
    "LOGGER_NAME",
    "DecisionLog",
    "DecisionReason",
    "DecisionRecord",
    "EventFields",
    "PlanStatus",
    "VariantRecord",
    "describe_plan",
    "event_fields",
    "format_decision",
    "read_decisions",
]

LOGGER_NAME = "infadapter.decisions"


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
