"""A local Prometheus as a plain child process (embedded mode and tests).

Starts the Debian ``prometheus`` binary (on the PATH, or unpacked into the cache by ``scripts/setup.sh``)
with a generated configuration: one scrape job per kind of target (our exporter, Envoy, Triton),
each reading its targets from ``file_sd_configs`` so targets are added and removed live by
rewriting a JSON file (Prometheus watches the directory), ``--web.enable-lifecycle`` for
``/-/reload`` and ``/-/quit``, a temporary TSDB directory, and a free port on 127.0.0.1.

    with PrometheusProcess() as prom:
        prom.set_targets("envoy", "default-resnet", ["127.0.0.1:9901"], {"namespace": "default", "name": "resnet"})
        prom.wait_for_targets("envoy")
        print(prom.url)
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import requests
import yaml

from infadapter.cache import cache_root
from infadapter.errors import MetricsUnavailable
from infadapter.processes import die_with_parent, free_port

INSTALL_HINT = (
    "run scripts/setup.sh (it unpacks Debian's prometheus package into the cache, nothing system-wide) "
    "or install it: apt-get install -y --no-install-recommends prometheus"
)


@dataclass(frozen=True)
class ScrapeJob:
    """One scrape job; its targets live in ``<workdir>/targets/<name>/*.json``."""

    name: str
    metrics_path: str = "/metrics"
    metric_relabel_configs: tuple[Mapping[str, Any], ...] = ()
    scrape_interval_s: float | None = None
    honor_labels: bool = False


#: our exporter's ``namespace``/``name`` are the InferenceService's: they win over target labels
INFADAPTER_JOB = ScrapeJob("infadapter", honor_labels=True)
#: Envoy's admin endpoint; the cluster of a variant is named after it: copy the name into ``variant``
ENVOY_JOB = ScrapeJob(
    "envoy",
    metrics_path="/stats/prometheus",
    metric_relabel_configs=({"source_labels": ["envoy_cluster_name"], "regex": "(.+)", "target_label": "variant", "replacement": "$1"},),
)
TRITON_JOB = ScrapeJob("triton")
DEFAULT_JOBS: tuple[ScrapeJob, ...] = (INFADAPTER_JOB, ENVOY_JOB, TRITON_JOB)


def _find(name: str) -> str | None:
    """``name`` on the PATH, else the newest copy scripts/setup.sh unpacked from Debian's package into the
    cache (``prometheus/<package version>/bin``: nothing installed system-wide), else None."""
    found = shutil.which(name)
    if found is not None:
        return found
    unpacked = sorted((cache_root() / "prometheus").glob(f"*/bin/{name}"), key=lambda p: p.stat().st_mtime)
    return str(unpacked[-1]) if unpacked and os.access(unpacked[-1], os.X_OK) else None


def find_prometheus() -> str | None:
    """Path of the ``prometheus`` binary, or None."""
    return _find("prometheus")


def find_promtool() -> str | None:
    return _find("promtool")


def _duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def _cleanup(process: subprocess.Popen[bytes], workdir: Path | None) -> None:
    """The finaliser of a PrometheusProcess that was never stopped (garbage-collected or interpreter exit)."""
    _terminate(process, 5.0)
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)


def _terminate(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@dataclass
class PrometheusProcess:
    """A Prometheus child process; use as a context manager or call :meth:`start` / :meth:`stop`."""

    jobs: Sequence[ScrapeJob] = DEFAULT_JOBS
    scrape_interval_s: float = 1.0
    evaluation_interval_s: float = 1.0
    rule_files: Sequence[str | Path] = ()
    workdir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 0
    binary: str | None = None
    retention: str = "1d"
    extra_args: Sequence[str] = ()
    #: Linux: Prometheus gets SIGTERM when the *thread* that called start() exits — start it from the
    #: main thread (or one that lives as long as it should), or set False and rely on stop()/the finaliser
    die_with_parent: bool = True
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _own_workdir: bool = field(default=False, init=False, repr=False)
    _finalizer: weakref.finalize[Any, Any] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self._dir / "prometheus.yml"

    @property
    def log_path(self) -> Path:
        return self._dir / "prometheus.log"

    @property
    def _dir(self) -> Path:
        """The working directory, created (temporary, removed by :meth:`stop`) on first use."""
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="infadapter-prometheus-"))
            self._own_workdir = True
        return self.workdir

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- configuration --

    def config(self) -> dict[str, Any]:
        """The generated prometheus.yml (as a dict)."""
        scrape_configs = []
        for job in self.jobs:
            entry: dict[str, Any] = {
                "job_name": job.name,
                "metrics_path": job.metrics_path,
                "file_sd_configs": [{"files": [str(self._dir / "targets" / job.name / "*.json")], "refresh_interval": "1s"}],
            }
            if job.honor_labels:
                entry["honor_labels"] = True
            if job.scrape_interval_s is not None:
                entry["scrape_interval"] = _duration(job.scrape_interval_s)
            if job.metric_relabel_configs:
                entry["metric_relabel_configs"] = [dict(rc) for rc in job.metric_relabel_configs]
            scrape_configs.append(entry)
        return {
            "global": {
                "scrape_interval": _duration(self.scrape_interval_s),
                "scrape_timeout": _duration(min(self.scrape_interval_s, 10.0)),
                "evaluation_interval": _duration(self.evaluation_interval_s),
            },
            "rule_files": [str(Path(p).resolve()) for p in self.rule_files],
            "scrape_configs": scrape_configs,
        }

    def _write_config(self) -> None:
        for job in self.jobs:
            (self._dir / "targets" / job.name).mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False), encoding="utf-8")

    # -- targets (live) --

    def set_targets(self, job: str, group: str, targets: Sequence[str], labels: Mapping[str, str] | None = None) -> None:
        """Scrape ``targets`` (``host:port``) in ``job`` with extra target ``labels``; replaces ``group``.

        May be called before :meth:`start` (the first scrape then happens at once); later changes
        reach the scrape loop within ~5 s (Prometheus batches discovery updates). Written atomically (temp file + rename): Prometheus never reads half a file.
        """
        if job not in {j.name for j in self.jobs}:
            raise ValueError(f"unknown scrape job {job!r}; jobs: {[j.name for j in self.jobs]}")
        directory = self._dir / "targets" / job
        directory.mkdir(parents=True, exist_ok=True)
        content = [{"targets": list(targets), "labels": dict(labels or {})}]
        tmp = directory / f".{group}.json.tmp"
        tmp.write_text(json.dumps(content), encoding="utf-8")
        os.replace(tmp, directory / f"{group}.json")

    def remove_targets(self, job: str, group: str) -> None:
        (self._dir / "targets" / job / f"{group}.json").unlink(missing_ok=True)

    # -- lifecycle --

    def start(self, timeout_s: float = 30.0) -> PrometheusProcess:
        binary = self.binary or find_prometheus()
        if binary is None:
            raise MetricsUnavailable(f"the prometheus binary is not on PATH; {INSTALL_HINT}")
        self._dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        fixed_port = self.port != 0
        for _attempt in range(1 if fixed_port else 3):
            if not fixed_port:
                self.port = free_port(self.host)
            self._launch(binary)
            if self._wait_ready(timeout_s):
                return self
            in_use = "address already in use" in self._log_tail().lower()
            self._kill()
            if not in_use:
                break
        raise MetricsUnavailable(f"prometheus did not become ready on {self.url}:\n{self._log_tail()}")

    def _launch(self, binary: str) -> None:
        args = [
            binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self._dir / 'data'}",
            f"--storage.tsdb.retention.time={self.retention}",
            f"--web.listen-address={self.host}:{self.port}",
            "--web.enable-lifecycle",
            f"--web.console.templates={self._dir}",
            f"--web.console.libraries={self._dir}",
            *self.extra_args,
        ]
        with self.log_path.open("ab") as log:
            # own session: a terminal's Ctrl-C reaches us, and we stop Prometheus in order
            self.process = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                # SIGTERM, not SIGKILL: an orphaned Prometheus still closes its TSDB cleanly
                preexec_fn=functools.partial(die_with_parent, signal.SIGTERM) if self.die_with_parent else None,  # noqa: PLW1509 (prctl only)
            )
        own = self.workdir if self._own_workdir else None
        self._finalizer = weakref.finalize(self, _cleanup, self.process, own)

    def _wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running:
                return False
            try:
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return True
            except requests.RequestException:
                pass  # not listening yet
            time.sleep(0.1)
        return False

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _kill(self, timeout_s: float = 10.0) -> None:
        if self.process is not None:
            _terminate(self.process, timeout_s)
            self.process = None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None

    def stop(self, timeout_s: float = 10.0, *, keep_data: bool = False) -> None:
        """SIGTERM (clean TSDB shutdown), SIGKILL after ``timeout_s``; removes a temporary workdir."""
        self._kill(timeout_s)
        if self._own_workdir and not keep_data and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
            self._own_workdir = False

    def reload(self) -> None:
        """Re-read the configuration (targets need no reload: file_sd is watched)."""
        self._write_config()
        response = requests.post(f"{self.url}/-/reload", timeout=10)
        if response.status_code != 200:
            raise MetricsUnavailable(f"prometheus reload failed: {response.status_code} {response.text}")

    def targets(self) -> list[dict[str, Any]]:
        """Active targets as Prometheus reports them (``labels``, ``health``, ``lastError``, ...)."""
        response = requests.get(f"{self.url}/api/v1/targets", params={"state": "active"}, timeout=5)
        response.raise_for_status()
        active: list[dict[str, Any]] = response.json()["data"]["activeTargets"]
        return active

    def wait_for_targets(self, job: str | None = None, count: int = 1, timeout_s: float = 20.0) -> None:
        """Block until ``count`` targets (of ``job``) are up and scraped at least once. A poll Prometheus does not
        answer (busy, hung, restarting) is one more poll, not the end of the wait."""
        deadline = time.monotonic() + timeout_s
        up: list[dict[str, Any]] = []
        last: object = "no answer yet"  # what the last poll got, for the error
        while time.monotonic() < deadline:
            try:
                last = active = self.targets()
            except requests.RequestException as exc:
                last = f"no answer: {exc}"
            else:
                up = [t for t in active if t.get("health") == "up" and (job is None or t.get("labels", {}).get("job") == job)]
                if len(up) >= count:
                    return
            time.sleep(0.2)
        raise MetricsUnavailable(f"only {len(up)} of {count} {job or ''} targets up after {timeout_s:g}s: {last}")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
