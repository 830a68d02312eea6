"""SIGTERM or Ctrl-C (SIGINT) of ``infadapter run``: every child process and cgroup is gone, exit code 130."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infadapter.serving.cpulimit import CGROUP_V1_CPU, CpuCgroup
from tests.runtime.conftest import alive, descendants

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


#: SIGINT as at a terminal: a shell without job control starts background commands (a CI runner's `cmd &`) with
#: SIGINT ignored, its children inherit that, and Python then installs no Ctrl-C handler; this resets it, then
#: becomes the run (exec: the same pid, which names the run's cgroups)
_DEFAULT_SIGINT = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"


def _start_run(spec_file: Path, profile_path: Path, tmp_path: Path) -> tuple[subprocess.Popen[bytes], set[int]]:
    """``infadapter run`` in a subprocess, once its servers, router and Prometheus run and the load flows."""
    command = [
        sys.executable,
        "-c",
        _DEFAULT_SIGINT,
        "-m",
        "infadapter",
        "run",
        "-f",
        str(spec_file),
        "--profile",
        str(profile_path),
        "--duration",
        "60",
        "--scale",
        "30",
        "--no-live",
        "--report",
        str(tmp_path / "report"),
    ]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        names = [_comm(p) for p in descendants(proc.pid)]
        if names.count("tritonserver") >= 1 and "envoy" in names and "prometheus" in names:
            break
        time.sleep(0.2)
    if proc.poll() is not None:
        raise AssertionError(proc.stdout.read().decode() if proc.stdout else "exited")
    time.sleep(3.0)  # the load and the loop are running
    return proc, descendants(proc.pid)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_every_child_and_removes_every_cgroup(sig: signal.Signals, tiny_spec_file: Path, tiny_profile_path: Path, tmp_path: Path) -> None:
    proc, children = _start_run(tiny_spec_file, tiny_profile_path, tmp_path)
    try:
        groups = list(CGROUP_V1_CPU.glob(f"infadapter/run{proc.pid}x*"))
        assert groups, "the servers run in cgroups"
        client = CGROUP_V1_CPU / "infadapter" / f"run{proc.pid}xembedded-client"
        assert proc.pid in CpuCgroup(client.name).pids(), "the controller and load generator run weighted"
        proc.send_signal(sig)
        output = proc.communicate(timeout=60)[0].decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, output[-3000:]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(p) for p in children):
        time.sleep(0.1)
    assert [(p, _comm(p)) for p in children if alive(p)] == []
    assert list(CGROUP_V1_CPU.glob(f"infadapter/run{proc.pid}x*")) == []
    assert "interrupted" in output


def test_after_a_sigkill_the_next_runtime_removes_orphans_and_cgroups(tiny_spec_file: Path, tiny_profile_path: Path, tmp_path: Path) -> None:
    from infadapter.runtime.local.servers import remove_stale_cgroups

    proc, children = _start_run(tiny_spec_file, tiny_profile_path, tmp_path)
    groups = list(CGROUP_V1_CPU.glob(f"infadapter/run{proc.pid}x*"))
    assert groups
    proc.kill()  # no cleanup can run
    proc.wait()
    time.sleep(1.0)
    removed = remove_stale_cgroups()  # what LocalRuntime.start() does first
    assert {g.name for g in groups} <= set(removed)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(p) for p in children):
        time.sleep(0.1)
    leftovers = [(p, _comm(p)) for p in children if alive(p)]
    assert leftovers == [], "servers die with the run; stubs, the router and Prometheus are killed with their stale cgroup"
