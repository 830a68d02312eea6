"""PrometheusProcess: a real Prometheus as a child process, targets added live, nothing left behind."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from infadapter.cache import CACHE_ENV
from infadapter.errors import MetricsUnavailable
from infadapter.metrics.prometheus import Observer
from infadapter.runtime.local.prometheus import PrometheusProcess, find_prometheus

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_prometheus() is None, reason="the prometheus binary is absent (apt-get install prometheus)"),
]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"  # a zombie is dead too
    except (ProcessLookupError, FileNotFoundError):
        return False


def test_targets_added_while_running_are_scraped_with_their_labels_and_stop_cleans_up() -> None:
    registry = CollectorRegistry()
    Gauge("demo_value", "a value", registry=registry).set(42)
    server, thread = start_http_server(0, "127.0.0.1", registry=registry)
    prom = PrometheusProcess()
    try:
        with prom:
            assert requests.get(f"{prom.url}/-/ready", timeout=5).status_code == 200
            assert prom.process is not None
            pid, workdir = prom.process.pid, prom.workdir
            assert workdir is not None
            prom.set_targets("triton", "svc-v1", [f"127.0.0.1:{server.server_port}"], {"namespace": "ns", "variant": "v1"})
            prom.wait_for_targets("triton", timeout_s=20)
            deadline = time.monotonic() + 10
            samples = []
            while not samples and time.monotonic() < deadline:
                samples = Observer(prom.url).query('demo_value{job="triton"}')
                time.sleep(0.2)
            assert samples and samples[0].value == 42
            assert samples[0].labels["namespace"] == "ns" and samples[0].labels["variant"] == "v1"
            prom.remove_targets("triton", "svc-v1")
            assert not list((workdir / "targets" / "triton").glob("*.json"))
        assert not _alive(pid)
        assert not workdir.exists()
        assert prom.process is None
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_generated_config_has_file_sd_per_job_and_the_envoy_variant_relabelling(tmp_path) -> None:  # type: ignore[no-untyped-def]
    prom = PrometheusProcess(workdir=tmp_path, scrape_interval_s=2.5)
    config = prom.config()
    assert config["global"]["scrape_interval"] == "2500ms"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"infadapter", "envoy", "triton"}
    assert jobs["envoy"]["metrics_path"] == "/stats/prometheus"
    assert jobs["envoy"]["metric_relabel_configs"][0]["target_label"] == "variant"
    assert jobs["infadapter"]["honor_labels"] is True and "honor_labels" not in jobs["triton"]
    assert jobs["triton"]["file_sd_configs"][0]["files"] == [str(tmp_path / "targets" / "triton" / "*.json")]


def test_lifecycle_reload_rereads_the_configuration(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with PrometheusProcess(workdir=tmp_path) as prom:
        prom.scrape_interval_s = 3.0
        prom.reload()
        loaded = requests.get(f"{prom.url}/api/v1/status/config", timeout=5).json()["data"]["yaml"]
        assert yaml.safe_load(loaded)["global"]["scrape_interval"] == "3s"
    assert (tmp_path / "prometheus.yml").exists()  # a given workdir is kept


def test_a_busy_fixed_port_is_reported_with_prometheus_own_words(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        prom = PrometheusProcess(workdir=tmp_path, port=busy.getsockname()[1])
        with pytest.raises(MetricsUnavailable, match="address already in use"):
            prom.start(timeout_s=10)
    assert prom.process is None


def test_a_missing_binary_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # neither on the PATH nor in the cache, where scripts/setup.sh unpacks Debian's package on a fresh machine
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    prom = PrometheusProcess(workdir=tmp_path / "work", binary=None)
    with pytest.raises(MetricsUnavailable, match="apt-get install"):
        prom.start()


_CHILD = """
import os, signal, sys
from infadapter.runtime.local.prometheus import PrometheusProcess
prom = PrometheusProcess().start()
print(prom.process.pid, prom.workdir, flush=True)
if sys.argv[1] == "killed":
    os.kill(os.getpid(), signal.SIGKILL)
# "exits": leave without stop(): the finaliser stops it
"""


@pytest.mark.parametrize("how", ["exits", "killed"])
def test_no_prometheus_outlives_its_parent(how: str) -> None:
    result = subprocess.run([sys.executable, "-c", _CHILD, how], capture_output=True, text=True, timeout=60, check=False)
    pid, workdir = int(result.stdout.split()[0]), Path(result.stdout.split()[1])
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), f"prometheus {pid} outlived its parent ({how})"
    if how == "exits":
        assert not workdir.exists()  # the finaliser removed the temporary TSDB
    else:
        shutil.rmtree(workdir, ignore_errors=True)  # nobody could: SIGKILL runs no Python
