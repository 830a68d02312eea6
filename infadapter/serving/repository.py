"""Triton model repositories: one per variant instance, the model served under the public name.

Every variant is served as ``<repo>/<model_name>/`` with ``model_name`` = the service's public
model name (``spec.model_name``), so a router can split traffic by weight with no path rewrite.
Two backends:

* ``python`` (here: the ``nvidia-pytriton`` tritonserver has only the python backend): a generated
  ``model.py`` runs ONNX Runtime (:mod:`infadapter.serving.model_py`);
* ``onnxruntime`` (the official Triton image, for the operator): the native backend.

Instances and threads: one single-threaded ONNX Runtime instance per core (:func:`instances_for_cpu`);
every server of a variant gets the instances of the variant's largest size (:func:`serving_for`), so an
in-place resize only changes the CPU quota and never needs a restart. The profiler, the embedded runtime
and the operator's Deployments all use :func:`serving_for`: the deployed stack is the profiled stack.
Config texts are pure functions of their arguments; :func:`write_repository` does the file I/O.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from infadapter.errors import FieldError, InvalidInput
from infadapter.serving.model_py import MODEL_PY
from infadapter.serving.models import read_manifest

Backend = Literal["python", "onnxruntime"]

_TRITON_TYPES = {"FP32": "TYPE_FP32", "FP16": "TYPE_FP16", "INT64": "TYPE_INT64", "INT32": "TYPE_INT32", "UINT8": "TYPE_UINT8"}
_ONNX_TYPES = {1: "FP32", 10: "FP16", 7: "INT64", 6: "INT32", 2: "UINT8"}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str  # Triton datatype: FP32, INT64…
    shape: tuple[int, ...]  # with the batch axis first (-1 = any)


@dataclass(frozen=True)
class ModelIO:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


@dataclass(frozen=True)
class Serving:
    """How one Triton server runs its model: instance count and ONNX Runtime threads per instance."""

    instance_count: int = 1
    intra_op_threads: int = 1
    max_batch_size: int = 0  # 0: no batching in Triton (each request runs alone)
    max_queue_delay_us: int = 0
    inter_op_threads: int = 1  # sequential execution: ORT uses no inter-op pool
    instance_kind: str = "CPU"  # Triton's instance group kind: CPU, or GPU (one instance on the pod's GPUs)

    def env(self) -> dict[str, str]:
        """The server's environment: OpenMP pools (MKL, OpenBLAS, torch) no larger than ORT's intra-op pool.

        Without it a library sizes its pool from the node's cores, not from the CPU quota.
        """
        return {"OMP_NUM_THREADS": str(self.intra_op_threads)}

    def record(self, backend: Backend | str) -> dict[str, Any]:
        """What a profile records of the servers it measured (its ``serving`` section, per size)."""
        return {
            "tool": "infadapter",
            "backend": "python+onnxruntime" if backend == "python" else backend,
            "instanceGroup": f"{self.instance_count}:{self.instance_kind}",
            "intraOpThreads": self.intra_op_threads,
            "interOpThreads": self.inter_op_threads,
            "ompThreads": self.intra_op_threads,
            "maxBatchSize": self.max_batch_size,
            "dynamicBatching": self.max_batch_size > 0,
        }


def instances_for_cpu(cpu_cores: float, threads_per_instance: int = 1) -> Serving:
    """The plan's CPU -> instances: one single-threaded instance per (started) core.

    One intra-op thread per instance is the fastest on a small machine (measured); fractional
    cores get one instance, the cgroup quota does the limiting.
    """
    if cpu_cores <= 0:
        raise ValueError(f"cpu_cores must be > 0, got {cpu_cores}")
    count = max(1, math.ceil(cpu_cores / threads_per_instance - 1e-9))
    return Serving(instance_count=count, intra_op_threads=threads_per_instance)


def serving_for(largest_cpu_cores: float, available_cores: float | None = None) -> Serving:
    """The serving configuration of every server of a variant, whatever its size: the instances of its
    largest size (capped at ``available_cores``, the machine's cores where known).

    Fixed for the variant, so a resize is a quota change only (no restart, no reload). Measured in the
    embedded mode (docs/serving.md): ResNet-50 with 2 instances, resized in place to 0.5 and 1 core,
    served within 3 % and 4 % of what a lone server with the same configuration served; the size's own
    count (1 instance) served ~14 % less at 1 core, where one instance leaves the quota idle between
    requests.
    """
    cores = largest_cpu_cores if available_cores is None else min(largest_cpu_cores, available_cores)
    return instances_for_cpu(max(cores, 1e-9))


def read_model_io(onnx_path: str | os.PathLike[str]) -> ModelIO:
    """Inputs/outputs of an ONNX file: from its manifest when built by us, else from the graph."""
    path = Path(onnx_path)
    manifest = read_manifest(path)
    if manifest and isinstance(manifest.get("input"), dict) and isinstance(manifest.get("output"), dict):
        i, o = manifest["input"], manifest["output"]
        return ModelIO((TensorSpec(i["name"], i["datatype"], tuple(i["shape"])),), (TensorSpec(o["name"], o["datatype"], tuple(o["shape"])),))
    import onnx  # only for foreign models

    graph = onnx.load(str(path), load_external_data=False).graph
    initialisers = {t.name for t in graph.initializer}

    def spec(value: onnx.ValueInfoProto) -> TensorSpec:
        tensor = value.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
        dtype = _ONNX_TYPES.get(tensor.elem_type)
        if dtype is None:
            raise InvalidInput([FieldError("source", f"{path}: tensor {value.name} has unsupported type {tensor.elem_type}", "use float32 inputs")], "model")
        return TensorSpec(value.name, dtype, dims)

    return ModelIO(tuple(spec(v) for v in graph.input if v.name not in initialisers), tuple(spec(v) for v in graph.output))


def _tensor_block(kind: str, tensors: Sequence[TensorSpec], batched: bool) -> str:
    items = []
    for t in tensors:
        dims = t.shape[1:] if batched else t.shape
        items.append(f'  {{ name: "{t.name}" data_type: {_TRITON_TYPES[t.datatype]} dims: [ {", ".join(str(d) for d in dims)} ] }}')
    return f"{kind} [\n" + ",\n".join(items) + "\n]\n"


def _common(model_name: str, io: ModelIO, serving: Serving) -> str:
    batched = serving.max_batch_size > 0
    text = f'name: "{model_name}"\n'
    text += f"max_batch_size: {serving.max_batch_size}\n"
    text += _tensor_block("input", io.inputs, batched)
    text += _tensor_block("output", io.outputs, batched)
    text += f"instance_group [ {{ count: {serving.instance_count} kind: KIND_{serving.instance_kind} }} ]\n"
    if batched:
        text += f"dynamic_batching {{ max_queue_delay_microseconds: {serving.max_queue_delay_us} }}\n"
    return text


def _parameter(key: str, value: str) -> str:
    return f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}\n'


def python_backend_config(model_name: str, io: ModelIO, serving: Serving, onnx_file: str = "model.onnx") -> str:
    """config.pbtxt for the python-backend model that runs ONNX Runtime."""
    text = _common(model_name, io, serving).replace(f'name: "{model_name}"\n', f'name: "{model_name}"\nbackend: "python"\n', 1)
    text += _parameter("onnx_file", onnx_file)
    text += _parameter("intra_op_threads", str(serving.intra_op_threads))
    text += _parameter("inter_op_threads", str(serving.inter_op_threads))
    return text


def onnxruntime_backend_config(model_name: str, io: ModelIO, serving: Serving) -> str:
    """config.pbtxt for Triton's native ONNX Runtime backend (the official image; used by the operator)."""
    text = _common(model_name, io, serving).replace(
        f'name: "{model_name}"\n', f'name: "{model_name}"\nplatform: "onnxruntime_onnx"\nbackend: "onnxruntime"\n', 1
    )
    text += _parameter("intra_op_thread_count", str(serving.intra_op_threads))
    text += _parameter("inter_op_thread_count", str(serving.inter_op_threads))
    return text


def onnxruntime_autocomplete_config(model_name: str, serving: Serving) -> str:
    """config.pbtxt for the native ONNX Runtime backend without inputs and outputs (the operator's servers).

    Triton's auto-complete reads them from the model file. ``max_batch_size: 0`` survives only when the
    server runs with ``--backend-config=onnxruntime,default-max-batch-size=0`` (else auto-complete turns
    on batching, which the profile did not measure).
    """
    text = f'name: "{model_name}"\nplatform: "onnxruntime_onnx"\nbackend: "onnxruntime"\n'
    text += f"max_batch_size: {serving.max_batch_size}\n"
    text += f"instance_group [ {{ count: {serving.instance_count} kind: KIND_{serving.instance_kind} }} ]\n"
    if serving.max_batch_size > 0:
        text += f"dynamic_batching {{ max_queue_delay_microseconds: {serving.max_queue_delay_us} }}\n"
    text += _parameter("intra_op_thread_count", str(serving.intra_op_threads))
    text += _parameter("inter_op_thread_count", str(serving.inter_op_threads))
    return text


def write_repository(
    repo_dir: str | os.PathLike[str],
    model_name: str,
    onnx_path: str | os.PathLike[str],
    serving: Serving = Serving(),
    *,
    backend: Backend = "python",
    link: bool = True,
) -> Path:
    """Write ``<repo_dir>/<model_name>/{config.pbtxt,1/model.onnx[,1/model.py]}``; return the model dir.

    ``link`` symlinks the ONNX file instead of copying it (ResNet-152 is 240 MB). Rewriting an
    existing repository replaces its config (used to change instances before a reload).
    """
    source = Path(onnx_path).resolve()
    if not source.is_file():
        raise InvalidInput([FieldError("source.uri", f"no model file at {source}", "run `infadapter models build`")], "model")
    io = read_model_io(source)
    model_dir = Path(repo_dir) / model_name
    version_dir = model_dir / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    target = version_dir / "model.onnx"
    if target.is_symlink() or target.exists():
        target.unlink()
    if link:
        target.symlink_to(source)
    else:
        shutil.copyfile(source, target)
    if backend == "python":
        (version_dir / "model.py").write_text(MODEL_PY, encoding="utf-8")
        config = python_backend_config(model_name, io, serving)
    else:
        config = onnxruntime_backend_config(model_name, io, serving)
    (model_dir / "config.pbtxt").write_text(config, encoding="utf-8")
    return model_dir


def update_serving(model_dir: str | os.PathLike[str], serving: Serving, *, backend: Backend = "python") -> str:
    """Rewrite only ``config.pbtxt`` of an existing model dir for new instances/threads; return the text."""
    directory = Path(model_dir)
    io = read_model_io(directory / "1" / "model.onnx")
    name = directory.name
    config = python_backend_config(name, io, serving) if backend == "python" else onnxruntime_backend_config(name, io, serving)
    (directory / "config.pbtxt").write_text(config, encoding="utf-8")
    return config
