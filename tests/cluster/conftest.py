"""The real-control-plane tier: one control plane for the whole test run, the chart installed once.

Without Go on the machine the control plane cannot be built: every test here is skipped with that reason.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infadapter.runtime.local.prometheus import PrometheusProcess, ScrapeJob, find_prometheus
from tests.cluster.controlplane import ControlPlane, ControlPlaneUnavailable, running_control_plane
from tests.cluster.kube import CHART, RELEASE, RELEASE_NAMESPACE, Admin, ArrivalExporter, OperatorProcess, chart_values, helm_config


@pytest.fixture(scope="package")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    try:
        with running_control_plane(tmp_path_factory.mktemp("control-plane")) as plane:
            yield plane
    except ControlPlaneUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="package")
def admin(control_plane: ControlPlane) -> Admin:
    admin = Admin(control_plane)
    admin.create_fake_nodes()
    return admin


@pytest.fixture(scope="package")
def release(control_plane: ControlPlane, admin: Admin) -> Iterator[dict[str, Any]]:
    """The chart installed with helm-python-sdk, as a user would (CRDs from crds/ first)."""
    config = helm_config(control_plane)
    installed = config.install(str(CHART), RELEASE, chart_values(), namespace=RELEASE_NAMESPACE, create_namespace=True, timeout=120)
    try:
        yield installed
    finally:
        with contextlib.suppress(Exception):
            config.uninstall(RELEASE, ignore_not_found=True)
        config.close()


@pytest.fixture(scope="package")
def exporter() -> Iterator[ArrivalExporter]:
    running = ArrivalExporter()
    yield running
    running.close()


@pytest.fixture(scope="package")
def prometheus(exporter: ArrivalExporter) -> Iterator[PrometheusProcess]:
    """A real Prometheus scraping the router-shaped exporter every second."""
    if find_prometheus() is None:
        pytest.skip("prometheus is not installed (scripts/setup.sh installs Debian's)")
    with PrometheusProcess(jobs=(ScrapeJob("router", honor_labels=True),), scrape_interval_s=1.0, die_with_parent=False) as prom:
        prom.set_targets("router", "exporter", [exporter.address], {})
        prom.wait_for_targets("router")
        yield prom


@pytest.fixture
def namespace(admin: Admin) -> Iterator[str]:
    name = admin.namespace()
    yield name
    with contextlib.suppress(Exception):
        admin.core.delete_namespace(name)


@pytest.fixture
def start_operator(
    control_plane: ControlPlane, admin: Admin, release: dict[str, Any], prometheus: PrometheusProcess, tmp_path: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    """Start operator processes as the chart's ServiceAccount; all are stopped at the end of the test."""
    started: list[OperatorProcess] = []

    def start(*args: str, **env: str) -> OperatorProcess:
        process = OperatorProcess(control_plane, admin, prometheus.url, tmp_path, args=args or ("--standalone",), **env)
        started.append(process.start())
        return process

    yield start
    for process in started:
        process.stop()
