"""Run every panel query of a Grafana dashboard against a real Prometheus (Grafana itself cannot run here).

``check_dashboard(prom_url, dashboard_path, {"namespace": "default", "name": "resnet"})`` substitutes
the dashboard variables (``$x``, ``${x}``, ``${x:fmt}``, ``[[x]]``, Grafana's ``$__rate_interval`` …),
runs each target as a range query over the last ``range_s`` seconds — as Grafana would — and returns
one failure line per query that errors or returns no finite value. An empty list means every panel
would show data. Used by the synthetic test and by the embedded run's end-to-end test.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infadapter.errors import MetricsUnavailable
from infadapter.metrics.prometheus import Observer

# ${x} / ${x:fmt}, [[x]], $x — not $1 (a regex back-reference in label_replace)
_VARIABLE = re.compile(r"\$\{([A-Za-z_]\w*)(?::[^}]*)?\}|\[\[([A-Za-z_]\w*)\]\]|\$([A-Za-z_]\w*)")


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    ref_id: str
    expr: str


def load_dashboard(path: str | Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return data


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def panel_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    """Every Prometheus target of every panel (hidden targets included)."""
    found = []
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if expr:
                found.append(PanelQuery(str(panel.get("title", "")), str(target.get("refId", "")), str(expr)))
    return found


def builtin_variables(range_s: float, step_s: float) -> dict[str, str]:
    """Grafana's built-in variables, as it would set them for a ``range_s`` window at ``step_s`` resolution."""
    rate_interval = max(4 * step_s, 60.0)  # Grafana: max(interval + scrape interval, 4 x scrape interval)
    return {
        "__rate_interval": f"{rate_interval:g}s",
        "__interval": f"{step_s:g}s",
        "__interval_ms": f"{step_s * 1000:g}",
        "__range": f"{range_s:g}s",
        "__range_s": f"{range_s:g}",
        "__range_ms": f"{range_s * 1000:g}",
    }


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """Replace Grafana variables; unknown ones are left as written (and then fail the check)."""

    def replace(match: re.Match[str]) -> str:
        key = match.group(1) or match.group(2) or match.group(3)
        return variables.get(key, match.group(0))

    return _VARIABLE.sub(replace, expr)


def check_dashboard(
    prom_url: str,
    dashboard_path: str | Path,
    variables: Mapping[str, str],
    *,
    range_s: float = 300.0,
    step_s: float = 5.0,
    end_s: float | None = None,
) -> list[str]:
    """Failures (``"<panel> [<refId>]: <why>: <query>"``) of the dashboard's queries; empty = all return data."""
    dashboard = load_dashboard(dashboard_path)
    values = {**builtin_variables(range_s, step_s), **variables}
    end = time.time() if end_s is None else end_s
    observer = Observer(prom_url)
    failures = []
    try:
        for query in panel_queries(dashboard):
            promql = substitute(query.expr, values)
            where = f"{query.panel} [{query.ref_id}]"
            leftover = _VARIABLE.search(promql)
            if leftover:
                failures.append(f"{where}: unresolved variable {leftover.group(0)}: {promql}")
                continue
            try:
                series = observer.query_range(promql, end - range_s, end, step_s)
            except MetricsUnavailable as exc:
                failures.append(f"{where}: query failed ({exc}): {promql}")
                continue
            if not any(any(math.isfinite(v) for v in values_) for _labels, _t, values_ in series):
                failures.append(f"{where}: no data: {promql}")
    finally:
        observer.close()
    return failures


def check_expressions(prom_url: str, expressions: Mapping[str, str]) -> dict[str, int]:
    """Run instant queries (e.g. alert expressions): name -> number of series; raises on a failing query."""
    observer = Observer(prom_url)
    try:
        return {name: len(observer.query(expr)) for name, expr in expressions.items()}
    finally:
        observer.close()


def alert_expressions(rules_path: str | Path) -> dict[str, str]:
    """``{alert name: expr}`` of a Prometheus rules file (``manifests/alerts/rules.yaml``)."""
    import yaml

    groups = yaml.safe_load(Path(rules_path).read_text(encoding="utf-8"))["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"] if "alert" in rule}


def main(argv: list[str] | None = None) -> int:
    """``python -m infadapter.metrics.dashboard_check --prometheus URL --var namespace=default --var name=resnet``."""
    import argparse

    root = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--prometheus", required=True, help="Prometheus base URL")
    parser.add_argument("--dashboard", default=str(root / "manifests" / "dashboards" / "infadapter.json"))
    parser.add_argument("--rules", default=str(root / "manifests" / "alerts" / "rules.yaml"), help="'' to skip")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE", help="dashboard variable")
    parser.add_argument("--range-s", type=float, default=300.0)
    args = parser.parse_args(argv)
    variables = dict(item.split("=", 1) for item in args.var)
    failures = check_dashboard(args.prometheus, args.dashboard, variables, range_s=args.range_s)
    for failure in failures:
        print(f"FAIL {failure}")
    total = len(panel_queries(load_dashboard(args.dashboard)))
    print(f"{total - len(failures)}/{total} panel queries return data")
    if args.rules:
        try:
            for alert, series in check_expressions(args.prometheus, alert_expressions(args.rules)).items():
                print(f"alert {alert}: {series} series {'(firing or pending)' if series else ''}")
        except MetricsUnavailable as exc:
            print(f"FAIL alert expression: {exc}")
            return 1
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
