"""Profiles: the paper's CSV, our YAML, monotone interpolation, replicas, save/load."""

from __future__ import annotations

from pathlib import Path

import pytest

from infadapter.errors import InvalidProfile
from infadapter.profiles import Profile, ProfilePoint, isotonic, load_profile, profile_from_dict, save_profile


def _profile() -> Profile:
    return Profile(
        500.0,
        {
            "small": (ProfilePoint(1, 10), ProfilePoint(2, 25), ProfilePoint(4, 40), ProfilePoint(1, 300, gpus=1)),
            "noisy": (ProfilePoint(1, 10), ProfilePoint(2, 30), ProfilePoint(3, 20), ProfilePoint(4, 50)),
        },
    )


def test_capacity_interpolates_between_measured_sizes() -> None:
    p = _profile()
    assert p.capacity_rps("small", 1) == 10
    assert p.capacity_rps("small", 1.5) == pytest.approx(17.5)
    assert p.capacity_rps("small", 3) == pytest.approx(32.5)


def test_capacity_scales_to_zero_below_and_stays_flat_above() -> None:
    p = _profile()
    assert p.capacity_rps("small", 0.25) == pytest.approx(2.5)
    assert p.capacity_rps("small", 16) == 40
    assert p.capacity_rps("small", 0) == 0


def test_replicas_multiply_capacity_and_gpu_points_are_separate() -> None:
    p = _profile()
    assert p.capacity_rps("small", 2, replicas=3) == pytest.approx(75)
    assert p.capacity_rps("small", 1, gpus=1) == 300
    assert p.gpu_counts("small") == [1]


def test_non_monotone_measurements_are_made_monotone() -> None:
    p = _profile()
    values = [p.capacity_rps("noisy", c) for c in (1, 2, 3, 4)]
    assert values == sorted(values)
    assert isotonic([10, 30, 20, 50]) == [10, 25, 25, 50]


def test_yaml_round_trip(tmp_path: Path) -> None:
    p = _profile()
    for suffix in (".yaml", ".json"):
        path = tmp_path / f"profile{suffix}"
        save_profile(p, path)
        again = load_profile(path)
        assert again.points == p.points
        assert again.slo_ms == p.slo_ms


def test_bad_profile_lists_every_error_with_its_path() -> None:
    with pytest.raises(InvalidProfile) as info:
        profile_from_dict({"kind": "Profile", "variants": {"a": [{"cpu": -1, "capacityRps": "x"}, {"cpu": 1}], "b": []}})
    paths = {e.path for e in info.value.errors}
    assert {"sloMs", "variants.a[0].cpu", "variants.a[0].capacityRps", "variants.a[1].capacityRps", "variants.b"} <= paths


def test_slo_mismatch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    save_profile(_profile(), path)
    with pytest.raises(InvalidProfile, match="re-profile"):
        load_profile(path, slo_ms=750)


def test_papers_csv_takes_the_rows_of_the_slo(paper_profile_path: Path) -> None:
    p = load_profile(paper_profile_path, slo_ms=750)
    assert p.variants == ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
    assert p.capacity_rps("resnet18", 20) == 473  # the research notes' table
    assert p.capacity_rps("resnet50", 8) == 78
    assert p.capacity_rps("resnet101", 12) == 65
    with pytest.raises(InvalidProfile, match="500, 750, 1000, 1500"):
        load_profile(paper_profile_path, slo_ms=600)


def test_csv_in_the_papers_format_without_shared_data(tmp_path: Path) -> None:
    csv = tmp_path / "cap.csv"
    csv.write_text(
        "REPLICA,HARDWARE,CPU,ARCH,SLA,p99_latency,capacity,saturation_tp\n1,cpu,1,18,750,300,19,22\n1,cpu,2,18,750,400,43,50\n1,cpu,1,18,500,300,15,22\n",
        encoding="utf-8",
    )
    p = load_profile(csv, slo_ms=750)
    assert p.capacity_rps("resnet18", 2) == 43
    assert p.p99_at_capacity_ms("resnet18", 1) == 300
