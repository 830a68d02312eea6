"""Serving: the demo model family, Triton model repositories and the tritonserver process.

Heavy libraries (torch, onnx, tritonclient) are imported only where used.
"""

from __future__ import annotations

from infadapter.serving.cpulimit import CpuCgroup, cgroup_v1_writable, taskset_prefix
from infadapter.serving.models import (
    DEFAULT_IMAGE_SIZE,
    DEMO_VARIANTS,
    build_family,
    default_models_dir,
    ensure_demo_models,
    resolve_model_uri,
)
from infadapter.serving.repository import (
    Serving,
    instances_for_cpu,
    onnxruntime_backend_config,
    python_backend_config,
    read_model_io,
    update_serving,
    write_repository,
)
from infadapter.serving.triton import TritonProcess
from infadapter.serving.triton_install import find_triton

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "DEMO_VARIANTS",
    "CpuCgroup",
    "Serving",
    "TritonProcess",
    "build_family",
    "cgroup_v1_writable",
    "default_models_dir",
    "ensure_demo_models",
    "find_triton",
    "instances_for_cpu",
    "onnxruntime_backend_config",
    "python_backend_config",
    "read_model_io",
    "resolve_model_uri",
    "taskset_prefix",
    "update_serving",
    "write_repository",
]
