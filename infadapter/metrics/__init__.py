"""Observe (PromQL against Prometheus) and report (our own metrics, the decision log, run reports).

Public names: :class:`DecisionRecord` / :class:`VariantRecord` (one tick's decision),
:class:`DecisionLog` and :func:`format_decision` (the INFO line, JSON lines), :class:`InfAdapterMetrics`
(the prometheus_client exporter), :class:`Observer` (PromQL queries). Submodules ``report`` and
``dashboard_check`` import matplotlib / read files and are imported explicitly.
"""

from infadapter.metrics.decisionlog import (
    DECISION_REASONS,
    DecisionLog,
    DecisionRecord,
    VariantRecord,
    event_fields,
    format_decision,
)
from infadapter.metrics.exporter import METRICS, InfAdapterMetrics
from infadapter.metrics.plan_records import PlanLike, infer_reason, record_from_decision, record_from_plan
from infadapter.metrics.prometheus import Observer

__all__ = [
    "DECISION_REASONS",
    "METRICS",
    "DecisionLog",
    "DecisionRecord",
    "InfAdapterMetrics",
    "Observer",
    "PlanLike",
    "VariantRecord",
    "event_fields",
    "format_decision",
    "infer_reason",
    "record_from_decision",
    "record_from_plan",
]
