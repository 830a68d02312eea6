"""The real traces of ../shared/data (skipped when that folder is absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from infadapter.traces import load_trace
from tests.conftest import EVAL_SEGMENT, TWITTER_TRACE


def test_the_paper_segment_csv_has_its_documented_requests() -> None:
    if not EVAL_SEGMENT.is_file():
        pytest.skip(f"{EVAL_SEGMENT} is missing (../shared/data absent)")
    series = load_trace(EVAL_SEGMENT, cache_dir=False)
    assert series.size == 21 * 60 and np.nansum(series) == 121_697


def test_the_twitter_trace_masks_its_daily_collection_gap(tmp_path: Path) -> None:
    if not TWITTER_TRACE.is_file():
        pytest.skip(f"{TWITTER_TRACE} is missing (../shared/data absent)")
    series = load_trace(TWITTER_TRACE, cache_dir=tmp_path)
    assert series.size == 1_899_061
    assert np.isnan(series[84_661 : 84_661 + 1739]).all()  # day 0's hole
    assert np.isnan(series[15 * 86400 + 84_661]).all()
    assert np.nanmean(series) == pytest.approx(63.6 * series.size / np.count_nonzero(~np.isnan(series)), rel=0.01)
    segment = load_trace(TWITTER_TRACE, 15 * 86400 + 82 * 60, 21 * 60, cache_dir=tmp_path)
    assert np.nansum(segment) == 121_697  # the paper's window, as in infadapter_eval_segment_rps.csv
