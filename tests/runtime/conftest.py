"""Real tritonserver + Envoy + Prometheus on this machine, serving tiny ResNets (32x32 input) so tests are fast.

The models are built once into ``<cache root>/models-test32`` (seconds; reused afterwards). Tests skip
with a reason when a server binary is missing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infadapter.cache import cache_root
from infadapter.planning import Plan, VariantPlan
from infadapter.spec import InferenceServiceSpec, parse_spec

TINY_DIR = cache_root() / "models-test32"
TINY_SIZE = 32
VARIANTS = ("resnet18", "resnet34")


def _missing_binaries() -> str | None:
    try:
        from infadapter.runtime.local.envoy import find_envoy
        from infadapter.serving.triton import find_triton

        find_triton()
        find_envoy()
    except Exception as exc:
        return str(exc)
    from infadapter.runtime.local.prometheus import find_prometheus

    if find_prometheus() is None:
        return "prometheus is missing (scripts/setup.sh unpacks Debian's into the cache)"
    return None


@pytest.fixture(scope="session")
def tiny_models() -> dict[str, Path]:
    why = _missing_binaries()
    if why:
        pytest.skip(f"real servers unavailable: {why}")
    from infadapter.serving.models import build_family

    built = build_family(TINY_DIR, list(VARIANTS), image_size=TINY_SIZE)
    return {b.name: b.path for b in built}


def tiny_spec_dict(models: dict[str, Path], **overrides: object) -> dict[str, object]:
    raw: dict[str, object] = {
        "modelName": "resnet",
        "variants": [
            {"name": "resnet18", "accuracy": 0.69758, "loadTimeSeconds": 2, "source": {"uri": str(models["resnet18"]), "format": "onnx"}},
            {"name": "resnet34", "accuracy": 0.73314, "loadTimeSeconds": 2, "source": {"uri": str(models["resnet34"]), "format": "onnx"}},
        ],
        "slo": {"latencyMs": 200, "percentile": 99},
        "budget": {"cpu": 2},
        "resources": {"cpuStep": 0.25, "minCpu": 0.25, "maxCpu": 1.0, "maxReplicas": 2},
        "forecast": {"model": "ours", "windowSeconds": 60, "horizonSeconds": 10, "quantile": 0.95},
        "adaptation": {"intervalSeconds": 3, "scaleDownStabilizationSeconds": 6, "resizePolicy": "InPlaceOrRecreate"},
    }
    raw.update(overrides)
    return raw


@pytest.fixture(scope="session")
def tiny_spec(tiny_models: dict[str, Path]) -> InferenceServiceSpec:
    return parse_spec(tiny_spec_dict(tiny_models))


def make_plan(**variants: tuple[float, int, float]) -> Plan:
    """``make_plan(resnet18=(cores, replicas, weight), ...)``."""
    return Plan(tuple(VariantPlan(name, cores, replicas, weight=weight) for name, (cores, replicas, weight) in variants.items()))


def services_group(rt: Any) -> Path | None:
    """The runtime's services cgroup (Envoy and Prometheus), None where it has none."""
    found = [g for g in rt.servers.cgroups() if g.name.endswith("-services")]
    return found[0] if found else None


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def descendants(pid: int) -> set[int]:
    """Every process whose parent chain leads to ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(") ", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


@pytest.fixture
def runtime_factory(tiny_spec: InferenceServiceSpec, tiny_models: dict[str, Path]) -> Iterator[object]:
    from infadapter.runtime.local.actuator import LocalRuntime

    made: list[LocalRuntime] = []

    def make(**kwargs: object) -> LocalRuntime:
        rt = LocalRuntime(tiny_spec, tiny_models, **kwargs)  # type: ignore[arg-type]
        made.append(rt)
        return rt.start()

    yield make
    for rt in made:
        rt.stop()


def infer_body(size: int = TINY_SIZE) -> bytes:
    """A KServe v2 JSON inference request for one 3 x size x size image."""
    import json

    data = [0.5] * (3 * size * size)
    return json.dumps({"inputs": [{"name": "input", "shape": [1, 3, size, size], "datatype": "FP32", "data": data}]}).encode()


def served_count(metrics_url: str) -> float:
    """Successful inferences a tritonserver counted (its ``nv_inference_request_success``)."""
    import requests

    text = requests.get(metrics_url, timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("nv_inference_request_success{"))


def closed_loop_rps(url: str, seconds: float, threads: int = 4, model: str = "resnet") -> tuple[float, int]:
    """Throughput (ok/s) of ``threads`` clients sending back-to-back; returns (rps, errors)."""
    import threading
    import time

    import requests

    body = infer_body()
    ok = [0] * threads
    errors = [0] * threads
    deadline = time.monotonic() + seconds

    def worker(k: int) -> None:
        with requests.Session() as session:
            while time.monotonic() < deadline:
                try:
                    r = session.post(f"http://{url}/v2/models/{model}/infer", data=body, timeout=10)
                    if r.status_code == 200:
                        ok[k] += 1
                    else:
                        errors[k] += 1
                except requests.RequestException:
                    errors[k] += 1

    started = time.monotonic()
    workers = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(ok) / (time.monotonic() - started), sum(errors)
