"""The run report (simulator and embedded run): PNG plots + ``report.md``.

The plots carry the Grafana dashboard's panel titles (:data:`~infadapter.metrics.dashboard.PANEL_TITLES`),
so a user without Grafana sees the same story. Input: one :class:`PolicySeries` per policy (a run of
the simulator compares several policies on one trace; the embedded run has one), a table of summary rows,
and optionally the decision records.

    from infadapter.metrics.report import PolicySeries, write_report
    series = {"ours": PolicySeries(t_s=t, load_rps=load, forecast_rps=fc, capacity_rps=cap,
                                   cpu_cores=cores, accuracy=acc, p99_ms=p99)}
    write_report("reports/run1", series, rows=[{"policy": "ours", "violations": 0.004, "avg_cpu": 7.5}],
                 slo_ms=750)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from infadapter.errors import FieldError, InvalidInput
from infadapter.metrics.dashboard import PANEL_TITLES
from infadapter.metrics.decisionlog import DecisionRecord, format_decision

if TYPE_CHECKING:
    from matplotlib.axes import Axes

Array = npt.NDArray[np.float64]
#: the GPU cost plot (the dashboard has no GPU panel yet)
GPU_TITLE = "GPUs allocated"
_SERIES = ("t_s", "load_rps", "forecast_rps", "capacity_rps", "cpu_cores", "accuracy", "p99_ms")


def _array(values: Sequence[float] | Array) -> Array:
    return np.asarray(values, dtype=float)


@dataclass(frozen=True)
class PolicySeries:
    """One policy's time series, all sampled at ``t_s`` (seconds since the start of the run).

    ``load_rps``: arrivals; ``forecast_rps``: the load the plan was sized for; ``capacity_rps``: the
    plan's capacity at the SLO; ``cpu_cores``: allocated cores (cost); ``accuracy``: served (or expected)
    accuracy as a fraction; ``p99_ms``: p99 latency over the interval. Optional: ``p50_ms``,
    ``violation_ratio`` (per interval), ``gpus`` (allocated GPUs: GPU cost, in its own unit),
    ``variant_cores`` and ``variant_weights`` (variant -> series).
    NaN marks an unknown value (a gap in the plot).
    """

    t_s: Array
    load_rps: Array
    forecast_rps: Array
    capacity_rps: Array
    cpu_cores: Array
    accuracy: Array
    p99_ms: Array
    p50_ms: Array | None = None
    violation_ratio: Array | None = None
    gpus: Array | None = None
    variant_cores: Mapping[str, Array] = field(default_factory=dict)
    variant_weights: Mapping[str, Array] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("variant_cores", "variant_weights"):
                object.__setattr__(self, f.name, {k: _array(v) for k, v in value.items()})
            elif value is not None:
                object.__setattr__(self, f.name, _array(value))
        self.validate()

    def validate(self) -> None:
        size = self.t_s.size
        errors = []
        for f in fields(self):
            value = getattr(self, f.name)
            items = value.items() if isinstance(value, dict) else [(f.name, value)]
            for key, array in items:
                if array is not None and array.shape != (size,):
                    path = f.name if key == f.name else f"{f.name}.{key}"
                    errors.append(FieldError(path, f"has shape {array.shape}, t_s has ({size},)", "sample all series at t_s"))
        if errors:
            raise InvalidInput(errors, source="report series")


def is_ratio(column: str) -> bool:
    """A column holding a fraction of 1 (shown as a percentage): ``*_ratio``, ``*accuracy``, ``violations``."""
    return column.endswith(("_ratio", "accuracy")) or column in ("violations", "dropped")


def percent(ratio: float) -> str:
    """``0.0006 -> '0.06 %'``, ``7.395e-05 -> '0.0074 %'``: fixed notation, enough digits to be non-zero."""
    if math.isnan(ratio):
        return "n/a"
    value = 100.0 * ratio
    if value == 0.0 or abs(value) >= 0.01:
        return f"{value:.2f} %"
    if abs(value) >= 0.0001:
        return f"{value:.4f} %"
    return "< 0.0001 %" if value > 0 else "> -0.0001 %"


def format_cell(column: str, value: Any) -> str:
    """A table cell: ratios as percentages, NaN as n/a, no exponent notation for ordinary magnitudes."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if is_ratio(column):
        return percent(float(value))
    if isinstance(value, int) or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}" if abs(value) >= 0.001 else f"{value:.6f}"


def _inputs_table(inputs: Mapping[str, Any]) -> str:
    """What the report was computed from: ``{name: value}``, nested dicts flattened as ``name.key``."""

    def flat(prefix: str, value: Any) -> list[tuple[str, Any]]:
        if isinstance(value, Mapping):
            return [item for key, inner in value.items() for item in flat(f"{prefix}.{key}" if prefix else str(key), inner)]
        if isinstance(value, (list, tuple)):
            return [(prefix, ", ".join(str(v) for v in value))]
        return [(prefix, value)]

    lines = ["| input | value |", "|---|---|"]
    lines += [f"| {name} | {'n/a' if value is None else format_cell(name, value)} |" for name, value in flat("", inputs)]
    return "\n".join(lines) + "\n"


def decision_entries(decisions: Mapping[str, Sequence[DecisionRecord]], *, offset_s: float = 0.0) -> list[dict[str, Any]]:
    """One JSON-safe entry per decision per policy, in time order: when (``t_s`` into the run, ``trace_s``
    = ``offset_s + t_s``), what (the plan, the one-line ``message``) and why (``reason``, the loads)."""
    entries = [
        {"policy": policy, "t_s": record.now_s, "trace_s": offset_s + record.now_s, "message": format_decision(record), **record.to_dict()}
        for policy, records in decisions.items()
        for record in records
    ]
    entries.sort(key=lambda e: (e["t_s"], e["policy"]))
    return entries


def write_decisions(path: str | Path, decisions: Mapping[str, Sequence[DecisionRecord]], *, offset_s: float = 0.0) -> Path:
    """``decisions.jsonl``: :func:`decision_entries`, one JSON object a line."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        for entry in decision_entries(decisions, offset_s=offset_s):
            handle.write(json.dumps(entry, sort_keys=True, allow_nan=False) + "\n")
    return out


def _markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "_no rows_\n"
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(format_cell(c, row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _per_policy(series: Mapping[str, PolicySeries], title: str, path: Path, draw: Any, ylabel: str) -> Path:
    """One subplot per policy, shared axes, the panel title on top."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(series), 1, figsize=(10, 2.6 * len(series) + 0.6), sharex=True, squeeze=False)
    for ax, (policy, s) in zip(axes[:, 0], series.items(), strict=True):
        draw(ax, s)
        ax.set_title(policy, fontsize=9, loc="left")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _overlay(
    series: Mapping[str, PolicySeries], title: str, path: Path, attribute: str, ylabel: str, hline: float | None = None, hline_label: str = ""
) -> Path:
    """All policies on one axis (cost, accuracy, latency)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.6))
    for policy, s in series.items():
        ax.plot(s.t_s, getattr(s, attribute), label=policy, linewidth=1.2)
    if hline is not None:
        ax.axhline(hline, color="red", linestyle="--", linewidth=1, label=hline_label)
    ax.set_title(title)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _draw_load(ax: Axes, s: PolicySeries) -> None:
    ax.plot(s.t_s, s.load_rps, color="black", linewidth=1, label="load")
    ax.plot(s.t_s, s.forecast_rps, color="tab:orange", linestyle="--", linewidth=1.2, label="forecast")
    ax.step(s.t_s, s.capacity_rps, where="post", color="tab:green", linewidth=1.2, label="provisioned capacity")


def _draw_stacked(attribute: str, colors: Mapping[str, Any]) -> Any:
    """Stacked per-variant areas; a variant keeps its colour in every policy's subplot."""

    def draw(ax: Axes, s: PolicySeries) -> None:
        per_variant: Mapping[str, Array] = getattr(s, attribute)
        names = sorted(per_variant)
        ax.stackplot(s.t_s, *[np.nan_to_num(per_variant[n]) for n in names], labels=names, step="post", alpha=0.8, colors=[colors[n] for n in names])

    return draw


def _variant_colors(series: Mapping[str, PolicySeries]) -> dict[str, Any]:
    import matplotlib as mpl

    names = sorted({n for s in series.values() for n in (*s.variant_cores, *s.variant_weights)})
    cmap = mpl.colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def write_report(
    directory: str | Path,
    series: Mapping[str, PolicySeries],
    rows: Sequence[Mapping[str, Any]],
    *,
    title: str = "InfAdapter run",
    slo_ms: float | None = None,
    decisions: Sequence[DecisionRecord] | Mapping[str, Sequence[DecisionRecord]] = (),
    notes: str = "",
    max_decisions: int = 200,
    inputs: Mapping[str, Any] | None = None,
    budget_cores: float | None = None,
) -> Path:
    """Write ``<directory>/report.md`` and its PNG plots; returns the path of ``report.md``.

    ``inputs`` (files and their hashes, window, SLO, budget, seed, version) open the report; ``budget_cores``
    is drawn on the cost plot; ``decisions`` is one run's records or ``{policy: records}``.
    """
    import matplotlib

    matplotlib.use("Agg")
    if not series:
        raise InvalidInput([FieldError("series", "is empty", "give at least one policy's series")], source="report")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    plots = _plots(out, series, slo_ms, budget_cores)
    lines = [f"# {title}", ""]
    if notes:
        lines += [notes.strip(), ""]
    if inputs:
        lines += ["## Inputs", "", _inputs_table(inputs)]
    lines += ["## Summary", "", _markdown_table(rows)]
    for panel_title, path in plots:
        lines += [f"## {panel_title}", "", f"![{panel_title}]({path.name})", ""]
    per_policy = decisions if isinstance(decisions, Mapping) else {"": decisions}
    if any(per_policy.values()):
        lines += [f"## {PANEL_TITLES['decisions']}", ""]
        for policy, records in per_policy.items():
            lines += ([f"### {policy}", ""] if policy else []) + _decision_lines(records, max_decisions)
    report = out / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return report


def _plots(out: Path, series: Mapping[str, PolicySeries], slo_ms: float | None, budget_cores: float | None) -> list[tuple[str, Path]]:
    """Draw the report's plots into ``out``: (title, PNG) in reading order, leaving out what no run has."""
    colors = _variant_colors(series)
    plots = [(PANEL_TITLES["load"], _per_policy(series, PANEL_TITLES["load"], out / "load.png", _draw_load, "req/s"))]
    for key, attribute, ylabel in (("cores", "variant_cores", "cores"), ("weights", "variant_weights", "share")):
        having = {p: s for p, s in series.items() if getattr(s, attribute)}
        if having:
            plots.append((PANEL_TITLES[key], _per_policy(having, PANEL_TITLES[key], out / f"{key}.png", _draw_stacked(attribute, colors), ylabel)))
    plots.append((PANEL_TITLES["cost"], _overlay(series, PANEL_TITLES["cost"], out / "cost.png", "cpu_cores", "cores", budget_cores, "budget")))
    with_gpus = {p: s for p, s in series.items() if s.gpus is not None}
    if any(np.nansum(s.gpus) > 0 for s in with_gpus.values() if s.gpus is not None):  # GPU cost only where GPUs ran
        plots.append((GPU_TITLE, _overlay(with_gpus, GPU_TITLE, out / "gpus.png", "gpus", "GPUs")))
    plots.append((PANEL_TITLES["accuracy"], _overlay(series, PANEL_TITLES["accuracy"], out / "accuracy.png", "accuracy", "accuracy")))
    plots.append((PANEL_TITLES["latency"], _overlay(series, PANEL_TITLES["latency"], out / "latency.png", "p99_ms", "p99 latency (ms)", slo_ms, "SLO")))
    if all(s.violation_ratio is not None for s in series.values()):
        plots.append((PANEL_TITLES["violations"], _overlay(series, PANEL_TITLES["violations"], out / "violations.png", "violation_ratio", "ratio")))
    return plots


def _decision_lines(records: Sequence[DecisionRecord], max_decisions: int) -> list[str]:
    """Counts by reason, then the last ``max_decisions`` human lines (``t=12s plan ... reason=...``)."""
    counts: dict[str, int] = {}
    for record in records:
        counts[record.reason] = counts.get(record.reason, 0) + 1
    lines = [", ".join(f"{reason}: {n}" for reason, n in sorted(counts.items())), "", "```"]
    shown = records if len(records) <= max_decisions else records[-max_decisions:]
    if len(shown) < len(records):
        lines.append(f"... {len(records) - len(shown)} earlier decisions omitted")
    lines += [f"t={record.now_s:.0f}s {format_decision(record)}" for record in shown]
    return [*lines, "```", ""]


def series_from_columns(columns: Mapping[str, Array]) -> PolicySeries:
    """A :class:`PolicySeries` from the simulator's per-second columns (one ``cores:<variant>`` per variant)."""
    cores = {key.split(":", 1)[1]: value for key, value in columns.items() if key.startswith("cores:")}
    return PolicySeries(
        t_s=columns["t_s"],
        load_rps=columns["load_rps"],
        forecast_rps=columns["forecast_rps"],
        capacity_rps=columns["capacity_rps"],
        cpu_cores=columns["cpu_cores"],
        accuracy=columns["accuracy"],
        p99_ms=columns["p99_ms"],
        violation_ratio=columns.get("violation_ratio"),
        gpus=columns.get("gpus"),
        variant_cores=cores,
    )
