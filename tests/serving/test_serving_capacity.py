"""The deployed stack keeps the profiled capacity (docs/serving.md, "One serving configuration").

A measurement, not a unit test: minutes of real Triton under CPU quotas, whose figures move with the
machine's other work. It runs only when asked::

    INFADAPTER_MEASURE=1 .venv/bin/pytest tests/serving/test_serving_capacity.py -s -p no:cacheprovider

For ResNet-50 (the demo's, 112 px, p99 <= 200 ms) at two planned sizes it measures, interleaved and
``INFADAPTER_MEASURE_ROUNDS`` times (default 5): the capacity of a lone server in a cgroup quota with the
serving configuration of the variant's largest size (what the profiler measures), and right after it the
capacity through the embedded runtime's router of a server started at the largest size and resized in
place to the planned size (what runs). It prints one JSON line per measurement and asserts that the
median ratio of the back-to-back pairs is within 10 % (single runs move by +-20 % with the machine's
other work, which the pairs and the median absorb).
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

import pytest

from infadapter.loadgen import LoadGenerator
from infadapter.planning import Plan, VariantPlan, cpu_grid
from infadapter.serving.cpulimit import CpuCgroup, cgroup_v1_writable, weighted_self
from infadapter.serving.models import ensure_demo_models, resolve_model_uri
from infadapter.serving.profiler import search_capacity
from infadapter.serving.repository import serving_for, write_repository
from infadapter.serving.triton import TritonProcess
from infadapter.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
VARIANT, SIZES, SLO_MS = "resnet50", (0.5, 1.0), 200.0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("INFADAPTER_MEASURE") != "1", reason="a measurement of several minutes: set INFADAPTER_MEASURE=1 to run it"),
]


def capacity(url: str, guess_rps: float) -> float:
    gen = LoadGenerator(url, "resnet", slo_ms=SLO_MS, timeout_s=10.0)
    found, _, _ = search_capacity(lambda rate: gen.run_constant(rate, 3.0), guess_rps, 99.0, max_steps=6, tolerance=0.1)
    return round(found, 2)


def test_a_server_resized_in_place_serves_what_the_profile_measured(tmp_path: Path) -> None:
    from infadapter.runtime.local.actuator import LocalRuntime

    if not cgroup_v1_writable():
        pytest.skip("needs a writable cgroup v1 cpu controller (quotas)")
    spec = load_spec(ROOT / "examples" / "demo.yaml")
    ensure_demo_models([v.source.uri for v in spec.variants])
    models = {v.name: resolve_model_uri(v.source.uri) for v in spec.variants}
    largest = max(cpu_grid(spec, VARIANT))
    serving = serving_for(largest, float(os.cpu_count() or 1))
    rounds = int(os.environ.get("INFADAPTER_MEASURE_ROUNDS", "5"))
    found: dict[tuple[float, str], list[float]] = {}
    with weighted_self(f"measure-{os.getpid()}"):
        for round_ in range(rounds):
            for cpu in SIZES:
                repo = tmp_path / f"repo-{round_}-{cpu:g}"
                write_repository(repo, spec.model_name, models[VARIANT], serving)
                cgroup = CpuCgroup(f"measure-{os.getpid()}-{round_}-{cpu:g}").create(cpu)
                server = TritonProcess(repo, cgroup=cgroup.path, allow_grpc=False, env=serving.env(), name="measure")
                try:
                    server.start(timeout_s=180)
                    profiled = capacity(server.url, 10.0 * cpu)
                finally:
                    server.close()
                    cgroup.remove()
                with LocalRuntime(spec, models, with_prometheus=False) as runtime:
                    runtime.apply(Plan((VariantPlan(VARIANT, largest, weight=1.0),)), in_place=True, timeout_s=180)
                    pid = runtime.instances[0].triton.pid
                    runtime.apply(Plan((VariantPlan(VARIANT, cpu, weight=1.0),)), in_place=True, timeout_s=60)
                    assert runtime.instances[0].triton.pid == pid  # resized in place, not restarted
                    deployed = capacity(runtime.url, max(2.0, 0.9 * profiled))
                for mode, value in (("profile", profiled), ("embedded", deployed)):
                    found.setdefault((cpu, mode), []).append(value)
                    print(json.dumps({"round": round_, "cpu": cpu, "mode": mode, "instances": serving.instance_count, "capacity_rps": value}), flush=True)
    for cpu in SIZES:
        profiled, deployed = found[(cpu, "profile")], found[(cpu, "embedded")]
        ratio = statistics.median(d / p for p, d in zip(profiled, deployed, strict=True) if p > 0)
        summary = {"cpu": cpu, "profile_mean_rps": round(statistics.mean(profiled), 1), "embedded_mean_rps": round(statistics.mean(deployed), 1)}
        print(json.dumps({**summary, "median_pair_ratio": round(ratio, 3)}))
        assert abs(ratio - 1.0) <= 0.1, (cpu, found)
