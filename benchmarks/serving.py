"""Serving figures on this machine, printed as one JSON object (never asserted in tests).

    .venv/bin/python benchmarks/serving.py [--variants resnet18,resnet50] [--image-size 112]

Per variant: ONNX Runtime inferences/s on one thread (bare, no server), tritonserver start to ready,
reload with 2 instances, stop; and the load generator's client CPU per 100 rps.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def ort_rate(path: Path, image_size: int, seconds: float = 2.0) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, image_size, image_size)).astype(np.float32)
    for _ in range(3):
        session.run(None, {"input": x})
    count, started = 0, time.monotonic()
    while time.monotonic() - started < seconds:
        session.run(None, {"input": x})
        count += 1
    return count / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", default="resnet18,resnet34,resnet50,resnet101,resnet152")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--models-dir", default=None)
    args = parser.parse_args()

    from infadapter.loadgen import LoadGenerator
    from infadapter.serving.models import build_family
    from infadapter.serving.repository import Serving, update_serving, write_repository
    from infadapter.serving.triton import TritonProcess

    built = build_family(args.models_dir, args.variants.split(","), args.image_size)
    out: dict[str, object] = {"cores": os.cpu_count(), "image_size": args.image_size, "variants": {}}
    for model in built:
        row: dict[str, float] = {"ort_inferences_per_s_1thread": round(ort_rate(model.path, args.image_size), 1)}
        with tempfile.TemporaryDirectory() as repo:
            model_dir = write_repository(repo, "model", model.path, Serving(instance_count=1))
            server = TritonProcess(repo)
            row["triton_start_s"] = round(server.start(), 2)
            update_serving(model_dir, Serving(instance_count=2))
            row["triton_reload_2_instances_s"] = round(server.load_model("model"), 2)
            stopped = time.monotonic()
            server.stop()
            row["triton_stop_s"] = round(time.monotonic() - stopped, 2)
        out["variants"][model.name] = row  # type: ignore[index]

    with tempfile.TemporaryDirectory() as repo:
        write_repository(repo, "model", built[0].path, Serving(instance_count=1))
        with TritonProcess(repo) as server:
            gen = LoadGenerator(server.url, "model", slo_ms=1000)
            cpu, wall = time.process_time(), time.monotonic()
            report = gen.run_constant(50.0, 5)
            out["loadgen_client_cores_per_100rps"] = round((time.process_time() - cpu) / (time.monotonic() - wall) * 100 / report.achieved_rps, 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
