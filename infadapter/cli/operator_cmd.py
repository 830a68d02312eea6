"""``infadapter operator``: run the Kubernetes operator (kopf) in the cluster or against a kubeconfig."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from infadapter.cli._app import app, fail


@app.command("operator")
def operator(
    namespace: Annotated[list[str] | None, typer.Option("--namespace", "-n", help="watch only this namespace (repeatable); default: all")] = None,
    peering: Annotated[str, typer.Option("--peering", help="kopf peering name: leader election between replicas")] = "",
    standalone: Annotated[bool, typer.Option("--standalone", help="no peering (one replica)")] = False,
    priority: Annotated[int | None, typer.Option("--priority", help="peering priority (default: random, so one replica leads)")] = None,
    metrics_port: Annotated[int, typer.Option("--metrics-port", help="serve infadapter_* metrics on this port (0: off)")] = 0,
    liveness: Annotated[str, typer.Option("--liveness", help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")] = "",
    log_format: Annotated[str, typer.Option("--log-format", help="plain or json")] = "plain",
    prometheus_url: Annotated[str, typer.Option("--prometheus-url", help="Prometheus base URL (default: $INFADAPTER_PROMETHEUS_URL)")] = "",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
) -> None:
    """Reconcile InferenceService resources: observe, forecast, plan, act, report at every interval."""
    if log_format not in ("plain", "json"):
        raise fail(f"--log-format: unknown format {log_format!r} (hint: use plain or json)")
    if peering and standalone:
        raise fail("--peering and --standalone exclude each other (hint: peering for >1 replica, standalone for one)")
    if not 0 <= metrics_port <= 65535:
        raise fail(f"--metrics-port: {metrics_port} is not a port (hint: 1024-65535, or 0 for none)")
    if metrics_port:
        os.environ["INFADAPTER_METRICS_PORT"] = str(metrics_port)
    if prometheus_url:
        os.environ["INFADAPTER_PROMETHEUS_URL"] = prometheus_url
    from infadapter.errors import InfAdapterError
    from infadapter.operator.settings import OperatorConfig

    try:
        OperatorConfig.from_env()
    except InfAdapterError as exc:
        raise fail(str(exc), exc.exit_code) from None
    from infadapter.operator import handlers  # registers the kopf handlers (only the operator package imports kopf)

    handlers.run(list(namespace or []), peering=peering, priority=priority, liveness=liveness, log_format=log_format, verbose=verbose)
