"""The tritonserver wrapper: starts, serves the public model name, reloads, limits CPU, stops clean."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from infadapter.errors import ApplyFailed
from infadapter.serving.cpulimit import CpuCgroup, cgroup_v1_writable, taskset_cpus
from infadapter.serving.repository import Serving, update_serving, write_repository
from infadapter.serving.triton import TritonProcess

from .conftest import MODEL_NAME, TINY_IMAGE_SIZE


def _infer(url: str) -> np.ndarray:
    from tritonclient import http

    client = http.InferenceServerClient(url)
    try:
        x = np.random.default_rng(0).random((1, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE)).astype(np.float32)
        tensor = http.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        result: np.ndarray = client.infer(MODEL_NAME, [tensor]).as_numpy("output")
        return result
    finally:
        client.close()


def test_control_apis_listen_on_loopback_only(tmp_path: Path, triton_available: None) -> None:
    local = TritonProcess(tmp_path).command()
    assert "--http-address=127.0.0.1" in local and "--grpc-address=127.0.0.1" in local
    assert not any(a.startswith("--http-restricted-api") for a in local)
    exposed = TritonProcess(tmp_path, address="0.0.0.0", metrics_address="0.0.0.0").command()
    restricted = next(a for a in exposed if a.startswith("--http-restricted-api="))
    assert "model-repository" in restricted and "infadapter-admin=" in restricted
    assert "--metrics-address=0.0.0.0" in exposed


@pytest.mark.slow
def test_triton_serves_the_public_name_and_exposes_metrics(running_triton: TritonProcess) -> None:
    assert running_triton.is_ready() and running_triton.model_ready(MODEL_NAME)
    out = _infer(running_triton.url)
    assert out.shape == (1, 1000) and np.isfinite(out).all()
    metrics = urllib.request.urlopen(running_triton.metrics_url, timeout=5).read().decode()
    assert f'nv_inference_request_success{{model="{MODEL_NAME}",version="1"}}' in metrics


@pytest.mark.slow
def test_start_reload_stop_leaves_no_process(
    tiny_models: dict[str, Path], tmp_path: Path, processes_in_group: Callable[[int], list[int]], triton_available: None
) -> None:
    model_dir = write_repository(tmp_path / "repo", MODEL_NAME, tiny_models["resnet34"], Serving(instance_count=1))
    server = TritonProcess(tmp_path / "repo", log_path=tmp_path / "t.log")
    start_s = server.start(timeout_s=120)
    assert start_s < 60
    pid = server.pid
    assert pid is not None
    stubs_before = len(processes_in_group(pid)) - 1
    assert stubs_before >= 1  # the python-backend stub of the one instance

    update_serving(model_dir, Serving(instance_count=2))
    reload_s = server.load_model(MODEL_NAME)
    assert reload_s < 60 and server.model_ready(MODEL_NAME)
    deadline = time.monotonic() + 10  # the old instance's stub exits after the new ones are ready
    while len(processes_in_group(pid)) - 1 != stubs_before + 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(processes_in_group(pid)) - 1 == stubs_before + 1
    assert _infer(server.url).shape == (1, 1000)

    server.stop()
    assert not server.is_alive()
    deadline = time.monotonic() + 5
    while processes_in_group(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_in_group(pid) == []

    assert server.restart(timeout_s=120) > 0 and server.is_ready()
    server.stop()
    assert not server.is_alive()


@pytest.mark.slow
def test_failed_model_load_is_reported_with_the_log(tmp_path: Path, triton_available: None) -> None:
    broken = tmp_path / "repo" / MODEL_NAME
    (broken / "1").mkdir(parents=True)
    (broken / "config.pbtxt").write_text(f'name: "{MODEL_NAME}"\nbackend: "python"\n')
    (broken / "1" / "model.py").write_text("raise RuntimeError('boom')\n")
    server = TritonProcess(tmp_path / "repo")
    try:
        with pytest.raises(ApplyFailed, match="exited with code"):
            server.start(timeout_s=60)
    finally:
        server.stop()


@pytest.mark.slow
def test_server_and_its_stubs_run_inside_the_cgroup(
    tiny_models: dict[str, Path], tmp_path: Path, processes_in_group: Callable[[int], list[int]], triton_available: None
) -> None:
    if not cgroup_v1_writable():
        pytest.skip("cgroup v1 cpu controller not writable here")
    write_repository(tmp_path / "repo", MODEL_NAME, tiny_models["resnet18"], Serving(instance_count=1))
    group = CpuCgroup(f"test-{time.monotonic_ns()}").create(0.5)
    server = TritonProcess(tmp_path / "repo", cgroup=group.path)
    try:
        server.start(timeout_s=120)
        assert server.pid is not None
        assert group.cores == 0.5
        assert set(processes_in_group(server.pid)) <= set(group.pids())
        assert len(group.pids()) >= 2
        group.set_cores(1.0)  # live resize
        assert group.cores == 1.0
        assert _infer(server.url).shape == (1, 1000)
    finally:
        server.stop()
        group.remove()
    assert not group.path.exists()


def test_taskset_fallback_pins_whole_cores() -> None:
    assert taskset_cpus(0.25) == "0"
    assert taskset_cpus(1.5, first_cpu=0).count(",") == min(1, (__import__("os").cpu_count() or 1) - 1)


def test_cgroup_weight_follows_quota_and_removal_is_clean() -> None:
    if not cgroup_v1_writable():
        pytest.skip("cgroup v1 cpu controller not writable here")
    from infadapter.serving.cpulimit import PARENT_SHARES

    group = CpuCgroup(f"test-w-{time.monotonic_ns()}").create(1.5)
    try:
        assert (group.path / "cpu.cfs_quota_us").read_text().strip() == "150000"
        assert (group.path / "cpu.shares").read_text().strip() == "1536"
        assert int((group.path.parent / "cpu.shares").read_text()) >= PARENT_SHARES
        group.set_cores(0.25)
        assert group.cores == 0.25 and (group.path / "cpu.shares").read_text().strip() == "256"
    finally:
        group.remove()
    assert not group.path.exists()
    group.remove()  # idempotent

    weighted = CpuCgroup(f"test-s-{time.monotonic_ns()}").create(None, shares=3000)
    try:
        assert (weighted.path / "cpu.shares").read_text().strip() == "3000" and weighted.cores == float("inf")
    finally:
        weighted.remove()

    nested = CpuCgroup("leaf", parent=f"infadapter/test-nest-{time.monotonic_ns()}").create(0.5)
    try:
        assert int((nested.path.parent / "cpu.shares").read_text()) >= PARENT_SHARES
        assert int((nested.path.parent.parent / "cpu.shares").read_text()) >= PARENT_SHARES
    finally:
        nested.remove()
        nested.path.parent.rmdir()


def test_weighted_self_moves_this_process_and_back() -> None:
    if not cgroup_v1_writable():
        pytest.skip("cgroup v1 cpu controller not writable here")
    import os

    from infadapter.serving.cpulimit import SERVICE_SHARES, weighted_self

    with weighted_self(f"test-self-{os.getpid()}") as group:
        assert group is not None and os.getpid() in group.pids()
        assert int((group.path / "cpu.shares").read_text()) == SERVICE_SHARES and group.cores == float("inf"), "a weight, no quota"
        path = group.path
    assert not path.exists()
    assert os.getpid() not in CpuCgroup(path.name).pids()


@pytest.mark.slow
def test_a_crashed_server_leaves_no_stub_and_no_shared_memory(
    tiny_models: dict[str, Path], tmp_path: Path, processes_in_group: Callable[[int], list[int]], triton_available: None
) -> None:
    import os
    import signal

    write_repository(tmp_path / "repo", MODEL_NAME, tiny_models["resnet18"], Serving(instance_count=1))
    server = TritonProcess(tmp_path / "repo")
    server.start(timeout_s=120)
    pid = server.pid
    assert pid is not None
    regions = [
        p
        for p in Path("/dev/shm").iterdir()
        if any(p.name in " ".join(Path(f"/proc/{q}/cmdline").read_bytes().decode(errors="replace").split("\0")) for q in processes_in_group(pid))
    ]
    assert regions, "the python backend stub names its shared-memory region on its command line"
    os.kill(pid, signal.SIGKILL)  # the server crashes; its stub may linger
    server.stop()
    assert processes_in_group(pid) == []
    assert not any(p.exists() for p in regions)


@pytest.mark.slow
def test_a_taken_port_is_refused_or_replaced_never_shared(running_triton: TritonProcess, tmp_path: Path) -> None:
    repo = running_triton.model_repository
    pinned = TritonProcess(repo, http_port=running_triton.http_port)
    with pytest.raises(ApplyFailed, match="already in use"):
        pinned.start(timeout_s=60)
    auto = TritonProcess(repo, log_path=tmp_path / "auto.log")
    auto.http_port = running_triton.http_port  # as if another process took our free port meanwhile
    try:
        auto.start(timeout_s=120)
        assert auto.http_port != running_triton.http_port and auto.is_ready()
    finally:
        auto.close()
    assert running_triton.is_ready()
