"""The fidelity benchmark's measured starts: how long a simulated server takes to serve (``benchmarks/fidelity_measure.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from fidelity_measure import ready_seconds


def test_each_variant_starts_in_the_median_of_the_batchs_measured_starts() -> None:
    rows = [
        {"cold_starts_s": {"resnet18": [1.8, 2.7], "resnet50": [2.1]}},
        {"cold_starts_s": {"resnet18": [2.0]}},
        {"cold_starts_s": {}},
        {},  # a run that started nothing
    ]
    assert ready_seconds(rows) == {"resnet18": 2.0, "resnet50": 2.1}
    assert ready_seconds([{"cold_starts_s": {"resnet152": []}}]) == {}  # never started: as the controller plans
