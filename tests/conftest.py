"""Shared fixtures: paths to the project's examples and to ../shared/data (which may be absent), and one
isolated cache directory for the whole test run."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from infadapter.cache import CACHE_ENV, cache_root

#: content-addressed build outputs (keyed by a hash of every input, never changed in place) that tests may
#: reuse from the user's cache: they cannot carry state from one run to the next, and rebuilding them costs
#: tens of minutes (the Kubernetes control plane of tests/cluster, built by scripts/build-control-plane.sh), or a
#: download (the Prometheus binaries scripts/setup.sh unpacks from Debian's package)
SHARED_BUILDS = ("control-plane", "prometheus")


def _isolate_cache() -> tuple[Path, bool]:
    """Point ``INFADAPTER_CACHE_DIR`` at one new directory for this run (set at import, before any test
    module computes a cache path); xdist workers reuse their controller's. Returns (dir, whether we made it)."""
    if os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]), False
    outer = cache_root()
    session = Path(tempfile.mkdtemp(prefix="infadapter-test-cache-"))
    for name in SHARED_BUILDS:
        with contextlib.suppress(OSError):  # a read-only home: the run builds its own
            (outer / name).mkdir(parents=True, exist_ok=True)
            (session / name).symlink_to(outer / name, target_is_directory=True)
    os.environ[CACHE_ENV] = str(session)
    return session, True


TEST_CACHE_DIR, _OWN_CACHE_DIR = _isolate_cache()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _OWN_CACHE_DIR:  # the shared builds are symlinks: rmtree removes the links, not their targets
        shutil.rmtree(TEST_CACHE_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def infadapter_cache_dir() -> Path:
    """The run's cache directory (``$INFADAPTER_CACHE_DIR``): shared by every test of the run, never the user's."""
    return TEST_CACHE_DIR


ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
PAPER_PROFILE = SHARED_DATA / "capacity_result_Feb_21.csv"
TWITTER_TRACE = SHARED_DATA / "twitter_trace_2021-08_workload.tbz2"
EVAL_SEGMENT = SHARED_DATA / "infadapter_eval_segment_rps.csv"


@pytest.fixture
def paper_profile_path() -> Path:
    if not PAPER_PROFILE.is_file():
        pytest.skip(f"the paper's profile is not at {PAPER_PROFILE} (../shared/data missing)")
    return PAPER_PROFILE


@pytest.fixture
def resnet_spec_path() -> Path:
    return ROOT / "examples" / "resnet.yaml"
