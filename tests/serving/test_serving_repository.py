"""Model repositories: every variant under the public name, instances/threads from the plan's CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from infadapter.errors import InvalidInput
from infadapter.serving.models import resolve_model_uri
from infadapter.serving.repository import (
    ModelIO,
    Serving,
    TensorSpec,
    instances_for_cpu,
    onnxruntime_backend_config,
    python_backend_config,
    read_model_io,
    update_serving,
    write_repository,
)

IO = ModelIO((TensorSpec("input", "FP32", (-1, 3, 64, 64)),), (TensorSpec("output", "FP32", (-1, 1000)),))


@pytest.mark.parametrize(("cores", "instances"), [(0.25, 1), (0.5, 1), (1.0, 1), (1.25, 2), (1.5, 2), (2.0, 2), (3.0, 3)])
def test_one_single_threaded_instance_per_started_core(cores: float, instances: int) -> None:
    serving = instances_for_cpu(cores)
    assert serving.instance_count == instances
    assert serving.intra_op_threads == 1


def test_instances_for_cpu_rejects_zero() -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        instances_for_cpu(0)


def test_python_backend_config_serves_public_name_with_plan_instances() -> None:
    text = python_backend_config("resnet", IO, Serving(instance_count=3, intra_op_threads=2))
    assert text.startswith('name: "resnet"\nbackend: "python"\n')
    assert "max_batch_size: 0" in text
    assert "dims: [ -1, 3, 64, 64 ]" in text
    assert "instance_group [ { count: 3 kind: KIND_CPU } ]" in text
    assert 'key: "intra_op_threads" value: { string_value: "2" }' in text
    assert 'key: "onnx_file" value: { string_value: "model.onnx" }' in text
    assert "dynamic_batching" not in text


def test_onnxruntime_backend_config_for_the_official_image() -> None:
    text = onnxruntime_backend_config("resnet", IO, Serving(instance_count=4, intra_op_threads=1, max_batch_size=8, max_queue_delay_us=500))
    assert 'platform: "onnxruntime_onnx"' in text
    assert 'backend: "onnxruntime"' in text
    assert "python" not in text
    assert "max_batch_size: 8" in text
    assert "dims: [ 3, 64, 64 ]" in text  # the batch axis is implicit when batching
    assert "dynamic_batching { max_queue_delay_microseconds: 500 }" in text
    assert "count: 4 kind: KIND_CPU" in text
    assert 'key: "intra_op_thread_count" value: { string_value: "1" }' in text


def test_write_repository_links_model_and_writes_python_model(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    model_dir = write_repository(tmp_path, "resnet", tiny_models["resnet18"], instances_for_cpu(1.5))
    assert model_dir == tmp_path / "resnet"
    onnx = model_dir / "1" / "model.onnx"
    assert onnx.is_symlink() and onnx.resolve() == tiny_models["resnet18"].resolve()
    assert "class TritonPythonModel" in (model_dir / "1" / "model.py").read_text()
    config = (model_dir / "config.pbtxt").read_text()
    assert 'name: "resnet"' in config and "count: 2 kind: KIND_CPU" in config
    assert "dims: [ -1, 3, 32, 32 ]" in config

    update_serving(model_dir, Serving(instance_count=1))
    assert "count: 1 kind: KIND_CPU" in (model_dir / "config.pbtxt").read_text()


def test_write_repository_can_copy_for_the_native_backend(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    model_dir = write_repository(tmp_path, "svc", tiny_models["resnet18"], Serving(), backend="onnxruntime", link=False)
    onnx = model_dir / "1" / "model.onnx"
    assert onnx.is_file() and not onnx.is_symlink()
    assert not (model_dir / "1" / "model.py").exists()
    assert 'platform: "onnxruntime_onnx"' in (model_dir / "config.pbtxt").read_text()


def test_model_io_read_from_the_graph_without_manifest(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    bare = tmp_path / "foreign.onnx"
    bare.write_bytes(tiny_models["resnet18"].read_bytes())
    io = read_model_io(bare)
    assert io.inputs[0].name == "input" and io.inputs[0].shape == (-1, 3, 32, 32)
    assert io.outputs[0].shape == (-1, 1000)


def test_model_uris_resolve_to_local_files(tiny_models: dict[str, Path]) -> None:
    path = tiny_models["resnet18"]
    assert resolve_model_uri("models://resnet18", path.parent) == path
    assert resolve_model_uri(f"file://{path}") == path
    assert resolve_model_uri(str(path)) == path


def test_unservable_or_missing_model_uris_say_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot be served locally"):
        resolve_model_uri("pvc://models/resnet18")
    with pytest.raises(InvalidInput, match="infadapter models build --variants resnet50"):
        resolve_model_uri("models://resnet50", tmp_path)
