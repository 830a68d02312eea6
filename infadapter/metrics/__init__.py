"""Observe (PromQL against Prometheus) and report (our own metrics, the decision log, run reports).

Public names: :class:`DecisionRecord` / :class:`VariantRecord` (one tick's decision),
:class:`DecisionLog` and :func:`format_decision` (the INFO line, JSON lines), :class:`InfAdapterMetrics`
(the prometheus_client exporter), :class:`Observer` (PromQL queries). Submodules ``report`` and
``dashboard_check`` import matplotlib / read files and are imported explicitly.
"""

from infadapter.control.record import record_from_plan
from infadapter.metrics.decisionlog import (
    DECISION_REASONS,
    DecisionLog,
    DecisionRecord,
    VariantRecord,
    event_fields,
    format_decision,
)
from infadapter.metrics.exporter import METRICS, InfAdapterMetrics
from infadapter.metrics.prometheus import Observer

__all__ = [
    "DECISION_REASONS",
    "METRICS",
    "DecisionLog",
    "DecisionRecord",
    "InfAdapterMetrics",
    "Observer",
    "VariantRecord",
    "event_fields",
    "format_decision",
    "record_from_plan",
]
