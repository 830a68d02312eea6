"""Shared fixtures: one tiny demo model family (32x32 inputs) and one running tritonserver per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

TINY_IMAGE_SIZE = 32
MODEL_NAME = "resnet"


def _processes_in_group(pgid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # fields[2] = pgrp, fields[0] = state
            found.append(int(entry))
    return found


@pytest.fixture(scope="session")
def processes_in_group() -> object:
    return _processes_in_group


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """resnet18 and resnet34 exported at 32x32 (built once per session)."""
    pytest.importorskip("torch", reason="torch is needed to export the demo models")
    from infadapter.serving.models import build_family

    out = tmp_path_factory.mktemp("models")
    built = build_family(out, ["resnet18", "resnet34"], TINY_IMAGE_SIZE)
    return {m.name: m.path for m in built}


@pytest.fixture(scope="session")
def triton_available() -> None:
    from infadapter.errors import ApplyFailed
    from infadapter.serving.triton import find_triton

    try:
        find_triton()
    except ApplyFailed as exc:
        pytest.skip(f"no tritonserver: {exc}")


@pytest.fixture(scope="session")
def running_triton(tiny_models: dict[str, Path], triton_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A tritonserver serving tiny resnet18 as the public name ``resnet`` (one instance)."""
    from infadapter.serving.repository import Serving, write_repository
    from infadapter.serving.triton import TritonProcess

    repo = tmp_path_factory.mktemp("repo")
    write_repository(repo, MODEL_NAME, tiny_models["resnet18"], Serving(instance_count=1))
    server = TritonProcess(repo, log_path=repo / "triton.log", name="test-triton")
    server.start(timeout_s=120)
    yield server
    server.stop()
