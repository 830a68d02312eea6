#!/usr/bin/env python3
"""Copy the single sources into the Helm chart and render the chart into plain manifests.

    .venv/bin/python scripts/render-manifests.py          # write
    .venv/bin/python scripts/render-manifests.py --check  # exit 1 when anything is out of date

Copies: crds/inferenceservice.yaml and crds/inferencebudget.yaml -> manifests/chart/crds/, manifests/dashboards/infadapter.json and
manifests/alerts/prometheusrule.yaml -> manifests/chart/files/. Renders (helm-python-sdk, no cluster):
manifests/rendered/infadapter.yaml (default values: CRDs + operator) and
manifests/rendered/infadapter-monitoring.yaml (ServiceMonitor, PodMonitor, PrometheusRule, dashboard).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "manifests" / "chart"
RENDERED = ROOT / "manifests" / "rendered"
COPIES = {
    ROOT / "crds" / "inferenceservice.yaml": CHART / "crds" / "inferenceservice.yaml",
    ROOT / "crds" / "inferencebudget.yaml": CHART / "crds" / "inferencebudget.yaml",
    ROOT / "manifests" / "dashboards" / "infadapter.json": CHART / "files" / "dashboard.json",
    ROOT / "manifests" / "alerts" / "prometheusrule.yaml": CHART / "files" / "prometheusrule.yaml",
}
RELEASE, NAMESPACE = "infadapter", "infadapter-system"
MONITORING = {
    "serviceMonitor": {"enabled": True},
    "podMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True},
    "dashboard": {"enabled": True},
}
HEADER = "# Rendered from manifests/chart by scripts/render-manifests.py ({what}). Do not edit: edit the chart and re-run.\n"
#: the chart requires an image (none is published): the rendered manifests name the one e2e/Dockerfile.operator
#: builds locally (docker build -f e2e/Dockerfile.operator -t infadapter:0.1.0 .); replace it with your registry's
IMAGE = {"image": {"repository": "infadapter"}}


def render(values: dict[str, Any] | None = None, *, release: str = RELEASE, namespace: str = NAMESPACE) -> dict[str, str]:
    """Template path -> rendered text (helm template, offline)."""
    import helm_python

    chart = helm_python.Chart.load(str(CHART))
    try:
        merged: dict[str, str] = chart.render(IMAGE | (values or {}), name=release, namespace=namespace, is_install=True)
    finally:
        chart.close()
    return merged


def documents(rendered: dict[str, str]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(rendered):
        if path.endswith(".yaml"):
            docs.extend(d for d in yaml.safe_load_all(rendered[path]) if isinstance(d, dict))
    return docs


def crds() -> list[dict[str, Any]]:
    return [d for p in sorted((CHART / "crds").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text(encoding="utf-8")) if d]


def outputs() -> dict[Path, str]:
    main = crds() + documents(render())
    kinds = ("ServiceMonitor", "PodMonitor", "PrometheusRule")
    monitoring = [d for d in documents(render(MONITORING)) if d["kind"] in kinds or d["metadata"]["name"].endswith("-dashboard")]
    dump = lambda docs: yaml.safe_dump_all(docs, sort_keys=False, width=200)  # noqa: E731
    return {
        RENDERED / "infadapter.yaml": HEADER.format(what="CRDs + operator, default values, image infadapter:0.1.0") + dump(main),
        RENDERED / "infadapter-monitoring.yaml": HEADER.format(what="prometheus-operator objects and the Grafana dashboard") + dump(monitoring),
    }


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale: list[str] = []
    for source, target in COPIES.items():
        text = source.read_text(encoding="utf-8")
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            stale.append(str(target.relative_to(ROOT)))
            if not check:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
    for target, text in outputs().items():
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            stale.append(str(target.relative_to(ROOT)))
            if not check:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
    if check and stale:
        print("out of date (run scripts/render-manifests.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    for path in stale:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
