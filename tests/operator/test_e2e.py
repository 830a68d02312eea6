"""e2e on a real cluster: ``pytest -m e2e`` runs e2e/run.sh (kind + Prometheus + the chart + load)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def missing() -> str:
    for tool in ("docker", "kind", "kubectl", "helm"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (e2e needs docker, kind, kubectl and helm)"
    probe = subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=20)
    if probe.returncode != 0:
        return "no Docker daemon: kind cannot create a cluster here"
    return ""


@pytest.mark.e2e
def test_end_to_end_on_kind():
    reason = missing()
    if reason:
        pytest.skip(reason)
    result = subprocess.run([str(ROOT / "e2e" / "run.sh")], cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "e2e: OK" in result.stdout
