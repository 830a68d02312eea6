"""One serving configuration for the profiler, the embedded runtime and the operator: the instances of the
variant's largest size, single-threaded ONNX Runtime, OpenMP pools of one thread."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from infadapter.serving.repository import (
    ModelIO,
    Serving,
    TensorSpec,
    instances_for_cpu,
    onnxruntime_autocomplete_config,
    python_backend_config,
    serving_for,
)
from infadapter.spec import parse_spec

IO = ModelIO((TensorSpec("input", "FP32", (-1, 3, 64, 64)),), (TensorSpec("output", "FP32", (-1, 1000)),))


@pytest.mark.parametrize(("largest", "available", "instances"), [(1.5, None, 2), (1.5, 8.0, 2), (20.0, None, 20), (20.0, 2.0, 2), (0.25, None, 1)])
def test_every_size_of_a_variant_gets_the_instances_of_its_largest_size(largest: float, available: float | None, instances: int) -> None:
    serving = serving_for(largest, available)
    assert serving == instances_for_cpu(min(largest, available or largest))
    assert (serving.instance_count, serving.intra_op_threads, serving.inter_op_threads) == (instances, 1, 1)


def test_openmp_pools_are_as_small_as_the_ort_pool() -> None:
    assert Serving().env() == {"OMP_NUM_THREADS": "1"}
    assert Serving(intra_op_threads=2).env() == {"OMP_NUM_THREADS": "2"}


def test_both_backends_get_the_thread_counts_of_the_serving_configuration() -> None:
    serving = Serving(instance_count=3, intra_op_threads=1, inter_op_threads=1)
    python = python_backend_config("resnet", IO, serving)
    assert 'key: "inter_op_threads" value: { string_value: "1" }' in python
    native = onnxruntime_autocomplete_config("resnet", serving)
    assert native.startswith('name: "resnet"\nplatform: "onnxruntime_onnx"\nbackend: "onnxruntime"\n')
    assert "count: 3 kind: KIND_CPU" in native and "max_batch_size: 0" in native and "dynamic_batching" not in native
    assert 'key: "intra_op_thread_count" value: { string_value: "1" }' in native
    assert 'key: "inter_op_thread_count" value: { string_value: "1" }' in native
    assert "input" not in native and "output" not in native  # auto-completed by Triton from the model
    batched = onnxruntime_autocomplete_config("resnet", Serving(max_batch_size=8, max_queue_delay_us=100))
    assert "dynamic_batching { max_queue_delay_microseconds: 100 }" in batched


def test_the_embedded_runtime_sizes_its_servers_by_the_same_rule(tmp_path: Path) -> None:
    from infadapter.runtime.local.actuator import LocalRuntime

    spec = parse_spec(
        {
            "modelName": "resnet",
            "variants": [{"name": "a", "accuracy": 0.7}, {"name": "b", "accuracy": 0.8, "resources": {"maxCpu": 1}}],
            "budget": {"cpu": 2},
            "resources": {"cpuStep": 0.25, "minCpu": 0.25, "maxCpu": 1.5},
        }
    )
    runtime = LocalRuntime(spec, {"a": tmp_path / "a.onnx", "b": tmp_path / "b.onnx"}, work_dir=tmp_path / "run", with_prometheus=False)
    try:
        cores = float(os.cpu_count() or 1)
        assert runtime.servers.serving("a") == serving_for(1.5, cores)
        assert runtime.servers.serving("b") == serving_for(1.0, cores)
    finally:
        runtime.stop()


@pytest.mark.slow
def test_a_local_triton_runs_with_openmp_pools_of_one_thread(running_triton: object) -> None:
    pid = running_triton.pid  # type: ignore[attr-defined]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert b"OMP_NUM_THREADS=1" in environ


def test_a_profile_records_the_serving_configuration_it_was_measured_with(tmp_path: Path) -> None:
    from infadapter.profiles import Profile, ProfilePoint, load_profile, save_profile

    record = {"cpu": 0.5, "gpus": 0, **serving_for(1.5, 2.0).record("python")}
    assert record["instanceGroup"] == "2:CPU" and record["backend"] == "python+onnxruntime"
    assert (record["intraOpThreads"], record["interOpThreads"], record["ompThreads"], record["dynamicBatching"]) == (1, 1, 1, False)
    profile = Profile(200.0, {"r18": (ProfilePoint(0.5, 30.0), ProfilePoint(1.0, 55.0))}, serving={"r18": (record,)})
    path = tmp_path / "profile.yaml"
    save_profile(profile, path)
    again = load_profile(path)
    assert again.serving_at("r18", 0.5) == record
    assert again.serving_at("r18", 1.0) is None  # not recorded: not invented
    assert again.restricted(["r18"]).serving_at("r18", 0.5) == record
    assert again.restricted(["other"]).serving == {}


def test_profiles_without_a_serving_section_still_load(tmp_path: Path) -> None:
    from infadapter.profiles import load_profile

    path = tmp_path / "old.yaml"
    path.write_text("kind: Profile\nsloMs: 200\nvariants:\n  r18:\n  - {cpu: 1, capacityRps: 50}\n")
    old = load_profile(path)
    assert old.serving == {} and old.serving_at("r18", 1.0) is None and "serving" not in old.to_dict()
    path.write_text("kind: Profile\nsloMs: 200\nvariants:\n  r18:\n  - {cpu: 1, capacityRps: 50}\nserving: {r18: [oops, {gpus: 1}], r50: 3}\n")
    assert load_profile(path).serving == {}  # a malformed record loses itself, never the profile
