"""A short real embedded run on tiny models (32x32 ResNets) with a hand-written profile (no profiling step)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from infadapter.profiles import Profile, load_profile
from infadapter.spec import InferenceServiceSpec, parse_spec
from tests.runtime.conftest import tiny_models, tiny_spec_dict  # noqa: F401  (fixture re-exported)

#: roughly what the 32x32 models do here under the SLO (the loop only needs a plausible shape)
TINY_PROFILE = {
    "kind": "Profile",
    "sloMs": 200,
    "percentile": 99,
    "variants": {
        "resnet18": [{"cpu": 0.25, "capacityRps": 30}, {"cpu": 0.5, "capacityRps": 60}, {"cpu": 1.0, "capacityRps": 120}],
        "resnet34": [{"cpu": 0.25, "capacityRps": 15}, {"cpu": 0.5, "capacityRps": 30}, {"cpu": 1.0, "capacityRps": 60}],
    },
}


@pytest.fixture
def embedded_spec(tiny_models: dict[str, Path]) -> InferenceServiceSpec:  # noqa: F811
    return parse_spec(tiny_spec_dict(tiny_models))


@pytest.fixture
def tiny_profile_path(tmp_path: Path) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(TINY_PROFILE), encoding="utf-8")
    return path


@pytest.fixture
def tiny_profile(tiny_profile_path: Path) -> Profile:
    return load_profile(tiny_profile_path)


@pytest.fixture
def tiny_spec_file(tmp_path: Path, tiny_models: dict[str, Path]) -> Path:  # noqa: F811
    path = tmp_path / "service.yaml"
    resource = {
        "apiVersion": "infadapter.io/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": "tiny", "namespace": "default"},
        "spec": tiny_spec_dict(tiny_models),
    }
    path.write_text(yaml.safe_dump(resource), encoding="utf-8")
    return path


def bursty_rates(seconds: int, low: float = 15.0, high: float = 60.0) -> np.ndarray:
    """Calm, a burst in the middle third, calm again."""
    rates = np.full(seconds, low)
    rates[seconds // 3 : 2 * seconds // 3] = high
    return rates
