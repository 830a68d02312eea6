"""SIGTERM or Ctrl-C (SIGINT) of ``infadapter run``: every child process and cgroup is gone, exit code 130."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infadapter.serving.cpulimit import CGROUP_V1_CPU
from tests.runtime.conftest import alive, descendants

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_every_child_and_removes_every_cgroup(sig: signal.Signals, tiny_spec_file: Path, tiny_profile_path: Path,
                                                           tmp_path: Path) -> None:  # fmt: skip
    command = [sys.executable, "-m", "infadapter", "run", "-f", str(tiny_spec_file), "--profile", str(tiny_profile_path),
               "--duration", "60", "--scale", "30", "--no-live", "--report", str(tmp_path / "report")]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        children: set[int] = set()
        while time.monotonic() < deadline and proc.poll() is None:
            children = descendants(proc.pid)
            names = [_comm(p) for p in children]
            if names.count("tritonserver") >= 1 and "envoy" in names and "prometheus" in names:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        time.sleep(3.0)  # the load and the loop are running
        children = descendants(proc.pid)
        groups = list(CGROUP_V1_CPU.glob(f"infadapter/run{proc.pid}x*"))
        assert groups, "the servers run in cgroups"
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
