"""What the embedded run shows and reports: the summary, the live table, client-side windows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from infadapter.loadgen import RequestRecord
from infadapter.planning import Plan


@dataclass(frozen=True)
class RunSummary:
    """What ``infadapter run --json`` prints (the first seven fields) plus context."""

    requests: int
    errors: int
    slo_violation_ratio: float
    avg_cpu: float
    avg_accuracy: float
    p99_latency_ms: float
    reconfigurations: int
    policy: str = "ours"
    duration_s: float = 0.0
    metrics_unavailable_ticks: int = 0
    restarts: int = 0
    accuracy_source: str = "served"

    def to_json(self) -> dict[str, Any]:
        keys = ("requests", "errors", "slo_violation_ratio", "avg_cpu", "avg_accuracy", "p99_latency_ms", "reconfigurations")
        out = {k: v for k, v in asdict(self).items() if k in keys}
        return {k: (None if isinstance(v, float) and math.isnan(v) else (round(v, 6) if isinstance(v, float) else v)) for k, v in out.items()}


@dataclass
class CoreSample:
    """Once a second: the cores the runtime holds, the plan in force, the last forecast."""

    t_s: float
    cores: float
    plan: Plan | None
    forecast_rps: float


@dataclass
class LiveState:
    """What the live view shows; written by the loop, read by the display."""

    policy: str
    total_s: float
    t_s: float = 0.0
    load_rps: float = math.nan
    forecast_rps: float = math.nan
    plan: str = "-"
    cores: float = 0.0
    p99_ms: float = math.nan
    violations_ratio: float = 0.0
    errors: int = 0
    sent: int = 0
    reconfigurations: int = 0
    lines: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.lines = [*self.lines[-5:], line]

    def __rich__(self) -> Any:
        from rich.table import Table

        table = Table(title=f"infadapter run · {self.policy} · {self.t_s:.0f}/{self.total_s:.0f} s", title_justify="left", expand=False)
        for column in ("load", "forecast", "plan", "cores", "p99 (10 s)", "violations", "errors", "reconf."):
            table.add_column(column)
        table.add_row(
            f"{self.load_rps:.0f} rps",
            f"{self.forecast_rps:.0f} rps",
            self.plan,
            f"{self.cores:.2f}",
            f"{self.p99_ms:.0f} ms",
            f"{self.violations_ratio:.1%} of {self.sent}",
            str(self.errors),
            str(self.reconfigurations),
        )
        from rich.console import Group
        from rich.text import Text

        return Group(table, *(Text(line, overflow="ellipsis", no_wrap=True) for line in self.lines))


def client_window(records: Sequence[RequestRecord], start_s: float, end_s: float, slo_ms: float) -> tuple[int, float, float]:
    """(requests, p99 ms, violation ratio) of the requests sent in ``[start_s, end_s)``."""
    chosen = [r for r in records if start_s <= r.send_s < end_s]
    if not chosen:
        return 0, math.nan, 0.0
    ok = np.array([r.latency_ms for r in chosen if r.ok])
    bad = (len(chosen) - ok.size) + int(np.count_nonzero(ok > slo_ms))
    return len(chosen), float(np.percentile(ok, 99)) if ok.size else math.nan, bad / len(chosen)
