"""Run the bare ``tritonserver`` binary of the ``nvidia-pytriton`` wheel as a child process.

Its install and environment (the fixes of ``ENVIRONMENT.md``) are :mod:`infadapter.serving.triton_install`'s.

HTTP and gRPC (which also carry the model-control API) listen on 127.0.0.1 unless told otherwise;
when they listen elsewhere the model-repository API is restricted to a header only this wrapper
knows. The metrics port (Prometheus text format at ``/metrics``) may listen on any address.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import secrets
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from infadapter.errors import ApplyFailed
from infadapter.processes import die_with_parent, free_port, port_in_use, processes_in_group
from infadapter.serving.triton_install import backends_dir, find_triton, triton_env

log = logging.getLogger(__name__)

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_RESTRICT_HEADER = "infadapter-admin"
_SHM_PREFIX = b"triton_python_backend_shm_region_"


def _join_cgroup(procs_file: str) -> Callable[[], None]:
    def join() -> None:
        with open(procs_file, "w") as fh:
            fh.write(str(os.getpid()))

    return join


class TritonProcess:
    """One ``tritonserver`` on its own ports, with start / wait-ready / stop / restart / reload.

    ``cgroup`` is a cgroup directory (or its ``cgroup.procs`` file) the server joins before it
    starts, so it and every model stub it forks are limited by that group's quota; ``preexec`` is any
    other callable to run in the child before exec (``cpu_prefix`` e.g. ``["taskset", "-c", "0"]``
    wraps the command instead). With ``die_with_parent`` the kernel kills the server if the *thread*
    that started it exits (start servers from a long-lived thread).
    """

    def __init__(
        self,
        model_repository: str | os.PathLike[str],
        *,
        http_port: int | None = None,
        grpc_port: int | None = None,
        metrics_port: int | None = None,
        address: str = "127.0.0.1",
        metrics_address: str = "127.0.0.1",
        model_control_mode: str = "explicit",
        load_models: Sequence[str] = ("*",),
        allow_grpc: bool = True,
        cgroup: str | os.PathLike[str] | None = None,
        preexec: Callable[[], None] | None = None,
        cpu_prefix: Sequence[str] = (),
        log_path: str | os.PathLike[str] | None = None,
        log_verbose: int = 0,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        die_with_parent: bool = True,
        exit_timeout_s: int = 3,
        name: str = "triton",
    ) -> None:
        self.install = find_triton()
        self.model_repository = Path(model_repository)
        self._auto_ports = {n for n, p in (("http_port", http_port), ("grpc_port", grpc_port), ("metrics_port", metrics_port)) if not p}
        self._log_offset = 0
        self.http_port = http_port or free_port()
        self.grpc_port = (grpc_port or free_port()) if allow_grpc else 0
        self.metrics_port = metrics_port or free_port()
        self.address = address
        self.metrics_address = metrics_address
        self.model_control_mode = model_control_mode
        self.load_models = tuple(load_models)
        self.allow_grpc = allow_grpc
        self.cgroup = Path(cgroup) if cgroup is not None else None
        self.preexec = preexec
        self.cpu_prefix = list(cpu_prefix)
        self.log_verbose = log_verbose
        self.extra_args = list(extra_args)
        self.env = dict(env or {})  # on top of triton_env(), e.g. Serving.env()
        self.die_with_parent = die_with_parent
        self.exit_timeout_s = exit_timeout_s
        self.name = name
        self._own_log = not log_path
        if log_path:
            self.log_path = Path(log_path)
        else:
            fd, temp = tempfile.mkstemp(prefix=f"{name}-", suffix=".log")
            os.close(fd)
            self.log_path = Path(temp)
        self._admin_token = secrets.token_hex(16) if address not in _LOOPBACK else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh: IO[bytes] | None = None
        self._shm_regions: set[str] = set()
        self.started_at: float | None = None

    # ------------------------------------------------------------------ addresses
    @property
    def url(self) -> str:
        """``host:port`` of the HTTP endpoint (the form tritonclient takes)."""
        return f"127.0.0.1:{self.http_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # ------------------------------------------------------------------ lifecycle
    def command(self) -> list[str]:
        backends = backends_dir(self.install)
        args = [
            str(self.install.binary),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backends}",
            f"--model-control-mode={self.model_control_mode}",
            f"--http-address={self.address}",
            f"--http-port={self.http_port}",
            f"--allow-grpc={'true' if self.allow_grpc else 'false'}",
            "--allow-metrics=true",
            "--allow-gpu-metrics=false",
            "--allow-cpu-metrics=true",
            f"--metrics-address={self.metrics_address}",
            f"--metrics-port={self.metrics_port}",
            "--strict-readiness=true",
            "--exit-on-error=true",
            f"--log-verbose={self.log_verbose}",
            f"--exit-timeout-secs={self.exit_timeout_s}",
        ]
        if self.allow_grpc:
            args += [f"--grpc-address={self.address}", f"--grpc-port={self.grpc_port}"]
        if self.model_control_mode == "explicit":
            args += [f"--load-model={m}" for m in self.load_models]
        if self._admin_token is not None:
            restricted = f"model-repository,model-config,shared-memory,trace,logging:{_RESTRICT_HEADER}={self._admin_token}"
            args.append(f"--http-restricted-api={restricted}")
            if self.allow_grpc:
                args.append(f"--grpc-restricted-protocol={restricted}")
        return self.cpu_prefix + args + self.extra_args

    def _preexec(self) -> None:
        if self.die_with_parent:
            die_with_parent()
        if self.cgroup is not None:
            procs = self.cgroup if self.cgroup.name == "cgroup.procs" else self.cgroup / "cgroup.procs"
            _join_cgroup(str(procs))()
        if self.preexec is not None:
            self.preexec()

    def start(self, timeout_s: float = 120.0, wait: bool = True) -> float:
        """Start the server; with ``wait``, block until ready and return the seconds it took."""
        if self.is_alive():
            raise ApplyFailed(f"{self.name} is already running (pid {self.pid})")
        self._check_ports()
        self._log_fh = self.log_path.open("ab")
        self._log_offset = self._log_fh.tell()
        started = time.monotonic()
        self._proc = subprocess.Popen(
            self.command(),
            env=triton_env(self.install) | self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() reaches the model stubs too
            # the child only writes its pid to a file and calls prctl: no locks taken after fork
            preexec_fn=self._preexec,  # noqa: PLW1509
        )
        self.started_at = started
        self._shm_regions.clear()
        log.debug("%s started pid %d on http %d", self.name, self._proc.pid, self.http_port)
        if not wait:
            return 0.0
        self.wait_ready(timeout_s)
        return time.monotonic() - started

    def is_alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def is_ready(self) -> bool:
        try:
            status, _ = self._request("GET", "/v2/health/ready", timeout_s=2.0)
        except OSError:
            return False
        return status == 200

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.is_alive():
                raise ApplyFailed(f"{self.name} exited with code {self.returncode()} before ready:\n{self.log_tail()}")
            # another server on our port would answer the health check: also wait for OUR bind
            if self._http_started() and self.is_ready():
                self._note_shm_regions()
                return
            time.sleep(0.05)
        raise ApplyFailed(f"{self.name} not ready after {timeout_s:.0f} s:\n{self.log_tail()}")

    def _check_ports(self) -> None:
        for attr in ("http_port", "grpc_port", "metrics_port"):
            port = getattr(self, attr)
            if port and port_in_use(port, self.metrics_address if attr == "metrics_port" else self.address):
                if attr not in self._auto_ports:
                    raise ApplyFailed(f"{self.name}: port {port} ({attr}) is already in use")
                setattr(self, attr, free_port())

    def _http_started(self) -> bool:
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(self._log_offset)
                text = fh.read()
        except OSError:
            return False
        return f"Started HTTPService at {self.address}:{self.http_port}".encode() in text

    def stop(self, timeout_s: float | None = None) -> int | None:
        """SIGTERM the server's process group, SIGKILL it after ``timeout_s``; return the exit code.

        Triton finishes in-flight requests for up to ``exit_timeout_s`` (drain first by routing).
        """
        timeout_s = self.exit_timeout_s + 5.0 if timeout_s is None else timeout_s
        proc = self._proc
        if proc is None:
            return None
        self._note_shm_regions()
        if proc.poll() is None:
            self._signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s: SIGKILL", self.name, timeout_s)
                self._signal_group(proc.pid, signal.SIGKILL)
                proc.wait(5.0)
        # stubs left behind by a crashed server still carry its group id
        self._signal_group(proc.pid, signal.SIGKILL)
        self._remove_shm_regions(proc.pid)
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None
        return proc.returncode

    def close(self) -> None:
        """Stop, and delete the log file if the wrapper created it (pass ``log_path`` to keep logs)."""
        self.stop()
        if self._own_log:
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    def _note_shm_regions(self) -> None:
        """Remember the python-backend shared-memory regions of our stubs (named on their command lines)."""
        if self._proc is None:
            return
        for pid in processes_in_group(self._proc.pid):
            try:
                args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            self._shm_regions.update(a.decode() for a in args if a.startswith(_SHM_PREFIX))

    def _remove_shm_regions(self, pgid: int) -> None:
        # a server killed before its stubs cleaned up leaves 1 MiB+ files in /dev/shm
        deadline = time.monotonic() + 2.0
        while processes_in_group(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        for name in self._shm_regions:
            with contextlib.suppress(OSError):
                (Path("/dev/shm") / name).unlink()
        self._shm_regions.clear()

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    def restart(self, timeout_s: float = 120.0) -> float:
        self.stop()
        return self.start(timeout_s)

    def __enter__(self) -> TritonProcess:
        if not self.is_alive():
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.stop()  # keep the log of a failed run

    # ------------------------------------------------------------------ model control (explicit mode)
    def load_model(self, name: str, config: str | None = None, timeout_s: float = 120.0) -> float:
        """(Re)load ``name`` from the repository (after its config.pbtxt changed); return the seconds taken.

        ``config`` optionally overrides the model config with a JSON string. Triton keeps serving the
        old version until the new one is ready.
        """
        body: dict[str, Any] = {"parameters": {"config": config}} if config else {}
        started = time.monotonic()
        status, text = self._request("POST", f"/v2/repository/models/{name}/load", json.dumps(body).encode(), timeout_s)
        if status != 200:
            raise ApplyFailed(f"{self.name}: loading model {name!r} failed ({status}): {text}")
        self._note_shm_regions()
        return time.monotonic() - started

    def unload_model(self, name: str, timeout_s: float = 60.0) -> float:
        started = time.monotonic()
        status, text = self._request("POST", f"/v2/repository/models/{name}/unload", b"{}", timeout_s)
        if status != 200:
            raise ApplyFailed(f"{self.name}: unloading model {name!r} failed ({status}): {text}")
        return time.monotonic() - started

    def model_ready(self, name: str) -> bool:
        try:
            status, _ = self._request("GET", f"/v2/models/{name}/ready", timeout_s=2.0)
        except OSError:
            return False
        return status == 200

    def _request(self, method: str, path: str, body: bytes | None = None, timeout_s: float = 5.0) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout_s)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if self._admin_token is not None:
            headers[_RESTRICT_HEADER] = self._admin_token
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
