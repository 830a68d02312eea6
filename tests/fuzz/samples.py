"""Valid inputs that set every field (so that every field can be mutated), shared by the fuzz tests."""

from __future__ import annotations

import csv
import io
from typing import Any

from tests.fuzz.strategies import leaf_paths

#: a valid spec that sets every field, so every field can be mutated
FULL_SPEC: dict[str, Any] = {
    "modelName": "resnet",
    "variants": [
        {
            "name": "resnet18",
            "accuracy": 0.69758,
            "loadTimeSeconds": 6.4,
            "source": {"uri": "pvc://models/resnet18", "format": "onnx"},
            "resources": {"minCpu": "500m", "maxCpu": 4, "maxReplicas": 3, "minReplicas": 0, "memory": "1Gi"},
            "gpu": False,
        },
        {"name": "resnet50", "accuracy": 0.7613, "accelerators": ["t4"], "batchSizes": [4]},
    ],
    "slo": {"latencyMs": 750, "percentile": 99},
    "objective": {"costWeight": 0.05, "transitionWeight": 0.001},
    "budget": {"cpu": 20, "gpu": 0, "cpuPrice": 0.04, "gpuPrice": 0.4},
    "accelerators": [
        {"name": "t4", "count": 2, "price": 0.35, "resource": "nvidia.com/gpu", "nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}}
    ],
    "resources": {"cpuStep": 1, "minCpu": 1, "maxCpu": 20, "maxReplicas": 1, "gpusPerReplica": [1]},
    "forecast": {"model": "ours", "windowSeconds": 600, "horizonSeconds": 60, "quantile": 0.95},
    "adaptation": {"intervalSeconds": 30, "scaleDownStabilizationSeconds": 120, "resizePolicy": "InPlaceOrRecreate", "burstReplan": True},
    "mode": "Auto",
    "routing": {"kind": "Envoy", "gatewayRef": None},
}
SPEC_PATHS = [p for p in leaf_paths(FULL_SPEC) if p]


FULL_PROFILE: dict[str, Any] = {
    "kind": "Profile",
    "sloMs": 750,
    "percentile": 99,
    "source": "fuzz",
    "variants": {
        "resnet18": [{"cpu": 1, "capacityRps": 19, "p50Ms": 120.5, "p99Ms": 389.1, "saturationRps": 22}, {"cpu": 2, "capacityRps": 43}],
        "resnet50": [
            {"cpu": 1, "capacityRps": 7},
            {"cpu": 1, "gpus": 1, "capacityRps": 900},
            {"cpu": 2, "gpus": 1, "accelerator": "t4", "capacityRps": 420},
            {"cpu": 2, "gpus": 1, "accelerator": "t4", "maxBatchSize": 4, "capacityRps": 700},
        ],
    },
}
PROFILE_PATHS = [p for p in leaf_paths(FULL_PROFILE) if p]

#: the paper CSV's header, as in ../shared/data/capacity_result_Feb_21.csv
PAPER_COLUMNS = [
    "REPLICA",
    "HARDWARE",
    "CPU",
    "MEM",
    "ARCH",
    "BATCH",
    "NUM_BATCH_THREADS",
    "MAX_ENQUEUED_BATCHES",
    "INTRA_OP_PARALLELISM",
    "INTER_OP_PARALLELISM",
    "SLA",
    "p99_latency",
    "capacity",
    "saturation_tp",
    "timestamp",
]


def synthetic_paper_rows() -> list[dict[str, str]]:
    """A small CSV in the paper's format: 3 ResNets x 3 CPU sizes x SLAs 500 and 750 ms."""
    rows = []
    for arch, per_core in (("18", 19), ("50", 7), ("152", 3)):
        for cpu in (1, 2, 4):
            for sla in (500, 750):
                rows.append(
                    dict(
                        zip(
                            PAPER_COLUMNS,
                            [
                                "1",
                                "cpu",
                                str(cpu),
                                "1G",
                                arch,
                                "1",
                                "1",
                                "1000000",
                                "1",
                                "1",
                                str(sla),
                                f"{sla * 0.5:.2f}",
                                str(per_core * cpu * sla // 750),
                                str(per_core * cpu + 3),
                                "2023-02-21T08:00:00",
                            ],
                            strict=True,
                        )
                    )
                )
    return rows


def csv_text(rows: list[dict[str, str]], columns: list[str] = PAPER_COLUMNS) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
