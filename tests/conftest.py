"""Shared fixtures: paths to the project's examples and to ../shared/data (which may be absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

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
