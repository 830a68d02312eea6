"""Small hand-made inputs: the paper's service (spec) and its profile at the five fitted core counts."""

from __future__ import annotations

from pathlib import Path

from infadapter.profiles import Profile, ProfilePoint
from infadapter.spec import InferenceServiceSpec, load_spec

ROOT = Path(__file__).resolve().parents[2]

#: capacity at SLA 750 ms of the paper's profile at CPU 1, 2, 4, 8, 16 (research notes §4 table)
PAPER_POINTS = {
    "resnet18": (19, 43, 90, 190, 385),
    "resnet34": (12, 25, 54, 94, 210),
    "resnet50": (8, 17, 36, 78, 162),
    "resnet101": (5, 10, 22, 39, 82),
    "resnet152": (1, 5, 15, 27, 59),
}
CPUS = (1.0, 2.0, 4.0, 8.0, 16.0)


def paper_spec() -> InferenceServiceSpec:
    return load_spec(ROOT / "examples" / "resnet.yaml")


def paper_profile() -> Profile:
    points = {name: tuple(ProfilePoint(c, float(k)) for c, k in zip(CPUS, caps, strict=True)) for name, caps in PAPER_POINTS.items()}
    return Profile(750.0, points)


def linear_profile(per_core: dict[str, float], slo_ms: float = 750.0, max_cpu: int = 20) -> Profile:
    """Capacity = per_core x cores, measured at 1..max_cpu cores."""
    points = {n: tuple(ProfilePoint(float(c), k * c) for c in range(1, max_cpu + 1)) for n, k in per_core.items()}
    return Profile(slo_ms, points)
