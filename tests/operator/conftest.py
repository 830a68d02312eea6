"""Fixtures: an emulated cluster, a fake Prometheus, a synthetic profile (no ../shared/data needed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.operator.harness import Cluster, FakePrometheus, write_profile


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with Cluster() as running:
        yield running


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    with FakePrometheus() as running:
        yield running


@pytest.fixture
def profile_path(tmp_path: Path) -> Path:
    return write_profile(tmp_path)
