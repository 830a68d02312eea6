"""Fuzzing capacity profiles: YAML/JSON/CSV text, corrupted cells of the paper's CSV, atomic writes."""

from __future__ import annotations

import copy
import csv
import errno
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import assume, given
from hypothesis import strategies as st

from infadapter.errors import ApplyFailed, InvalidInput, InvalidProfile
from infadapter.profiles import Profile, load_profile, profile_from_dict, save_profile
from tests.conftest import PAPER_PROFILE
from tests.fuzz.samples import FULL_PROFILE, PAPER_COLUMNS, PROFILE_PATHS, csv_text, synthetic_paper_rows
from tests.fuzz.strategies import assert_clear, dotted, fuzz, nasty_scalars, nested, related, replaced, same_data


def check_profile(profile: Profile) -> None:
    """What the solver relies on: finite, positive sizes and non-negative capacities."""
    assert profile.slo_ms > 0 and math.isfinite(profile.slo_ms)
    assert 0 < profile.percentile < 100
    assert profile.points
    for name, points in profile.points.items():
        assert isinstance(name, str) and name
        for p in points:
            assert math.isfinite(p.cpu_cores) and p.cpu_cores > 0
            assert math.isfinite(p.capacity_rps) and p.capacity_rps >= 0
            assert p.gpus >= 0
            assert profile.capacity_rps(name, p.cpu_cores, gpus=p.gpus) >= 0


def _from_dict_or_refuse(raw: Any) -> Profile | InvalidProfile:
    before = copy.deepcopy(raw)
    try:
        result: Profile | InvalidProfile = profile_from_dict(raw)
    except InvalidProfile as exc:
        assert_clear(exc)
        result = exc
    else:
        check_profile(result)
    assert same_data(raw, before), "profile_from_dict changed its input"
    return result


# --------------------------------------------------------------------------- the project's YAML/JSON


@fuzz(150)
@given(raw=nested(16))
def test_arbitrary_data_is_a_profile_or_refused(raw: Any) -> None:
    _from_dict_or_refuse(raw)


@fuzz(250)
@given(path=st.sampled_from(PROFILE_PATHS), value=st.one_of(nasty_scalars, nested(4)))
def test_a_wrong_value_at_any_field_is_reported_at_that_field(path: tuple[Any, ...], value: Any) -> None:
    result = _from_dict_or_refuse(replaced(FULL_PROFILE, path, value))
    if isinstance(result, InvalidProfile):
        field = dotted(path)
        assert any(related(e.path, field) for e in result.errors), f"mutating {field} gave {[e.path for e in result.errors]}"


@fuzz(100)
@given(text=st.text(max_size=300), suffix=st.sampled_from([".yaml", ".yml", ".json", ".csv", ""]))
def test_any_text_file_loads_or_is_refused(tmp_path: Path, text: str, suffix: str) -> None:
    _load_or_refuse(tmp_path / f"profile{suffix}", text.encode("utf-8", "surrogatepass"))


@fuzz(80)
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".yaml", ".json", ".csv"]))
def test_any_bytes_load_or_are_refused(tmp_path: Path, data: bytes, suffix: str) -> None:
    _load_or_refuse(tmp_path / f"profile{suffix}", data)


@fuzz(60)
@given(path=st.sampled_from(PROFILE_PATHS), value=nasty_scalars, as_json=st.booleans())
def test_a_mutated_file_is_refused_at_the_field(tmp_path: Path, path: tuple[Any, ...], value: Any, as_json: bool) -> None:
    raw = replaced(FULL_PROFILE, path, value)
    if as_json:
        text = json.dumps(raw, default=str)  # NaN/Infinity are written as JSON's non-standard literals
        file = tmp_path / "profile.json"
    else:
        text = yaml.safe_dump(raw, allow_unicode=True)
        file = tmp_path / "profile.yaml"
    result = _load_or_refuse(file, text.encode())
    if isinstance(result, InvalidProfile) and result.errors[0].path:
        assert any(related(e.path, dotted(path)) for e in result.errors), [e.path for e in result.errors]


def _load_or_refuse(file: Path, data: bytes, slo_ms: float | None = None) -> Profile | InvalidProfile:
    file.write_bytes(data)
    try:
        result: Profile | InvalidProfile = load_profile(file, slo_ms=slo_ms)
    except InvalidProfile as exc:
        assert_clear(exc)
        result = exc
    else:
        check_profile(result)
    assert file.read_bytes() == data, "loading a profile changed the file"
    return result


@pytest.mark.parametrize(
    ("name", "text", "expect"),
    [
        ("p.json", '{"sloMs": ' + "9" * 5000 + "}", "4300 digits"),
        ("p.json", "[" * 100_000 + "]" * 100_000, "too deep"),
        ("p.yaml", "[" * 3000 + "]" * 3000, "too deep"),
        ("p.yaml", "sloMs: " + "9" * 400 + "\nvariants: {a: [{cpu: 1, capacityRps: 1}]}", "too large"),
        ("p.yaml", "sloMs: 750\npercentile: 500\nvariants: {a: [{cpu: 1, capacityRps: 1}]}", "< 100"),
        ("p.yaml", "sloMs: 750\nvariants: {null: [{cpu: 1, capacityRps: 1}]}", "non-empty strings"),
        ("p.yaml", "sloMs: 750\nvariants: {a: [{cpu: .nan, capacityRps: 1}]}", "finite"),
        ("p.yaml", "kind: Profile\n---\nkind: Profile\n", "2 YAML documents"),
        ("p.yaml", "sloMs: 750\nvariants: {'[/red]': [{cpu: x, capacityRps: 1}]}", "expected a number"),
        ("p.yaml", "sloMs: 750\nvariants: {a: [{cpu: 1, capacityRps: 1, p50Ms: 0}]}", "a[0].p50Ms: must be > 0"),
    ],
    ids=["json-huge-int", "json-deep", "yaml-deep", "yaml-huge-int", "percentile", "null-name", "nan-cpu", "two-docs", "markup-name", "zero-median"],
)
def test_bad_profile_files_get_a_clear_error(tmp_path: Path, name: str, text: str, expect: str) -> None:
    result = _load_or_refuse(tmp_path / name, text.encode())
    assert isinstance(result, InvalidProfile)
    assert expect in str(result)


# --------------------------------------------------------------------------- the paper's CSV


@fuzz(200)
@given(
    row=st.integers(0, len(synthetic_paper_rows()) - 1),
    column=st.sampled_from(PAPER_COLUMNS),
    value=st.one_of(nasty_scalars.map(str), st.sampled_from(["", "0", "-3", "1e400", "nan", "gpu", "GPU", "tpu", "2"])),
    slo_ms=st.sampled_from([None, 500.0, 750.0, 600.0]),
)
def test_a_corrupted_cell_of_the_paper_csv_is_named_by_row_and_column(tmp_path: Path, row: int, column: str, value: str, slo_ms: float | None) -> None:
    rows = synthetic_paper_rows()
    rows[row][column] = value
    result = _load_or_refuse(tmp_path / "capacity.csv", csv_text(rows).encode(), slo_ms)
    if isinstance(result, InvalidProfile):
        paths = [e.path for e in result.errors]
        assert any(p in (f"row {row + 2}.{column}", f"row {row + 2}", "sloMs", "") for p in paths), paths


@fuzz(60)
@given(
    drop=st.sets(st.sampled_from(PAPER_COLUMNS), max_size=4),
    cut=st.integers(0, 3000),
)
def test_missing_columns_and_truncated_csv_are_refused_or_read(tmp_path: Path, drop: set[str], cut: int) -> None:
    columns = [c for c in PAPER_COLUMNS if c not in drop]
    rows = [{c: r[c] for c in columns} for r in synthetic_paper_rows()]
    result = _load_or_refuse(tmp_path / "capacity.csv", csv_text(rows, columns)[:cut].encode())
    if drop & {"ARCH", "CPU", "SLA", "capacity"} and isinstance(result, Profile):
        pytest.fail(f"a CSV without {sorted(drop)} was accepted")


@pytest.mark.parametrize(
    ("column", "value", "expect"),
    [
        ("SLA", "abc", "row 2.SLA"),
        ("REPLICA", "0", "row 2.REPLICA"),
        ("capacity", "nan", "row 2.capacity"),
        ("CPU", "-1", "row 2.CPU"),
        ("HARDWARE", "tpu", "row 2.HARDWARE"),
    ],
)
def test_cells_that_used_to_crash_or_pass_are_refused(tmp_path: Path, column: str, value: str, expect: str) -> None:
    rows = synthetic_paper_rows()
    rows[0][column] = value
    result = _load_or_refuse(tmp_path / "c.csv", csv_text(rows).encode(), 500.0)
    assert isinstance(result, InvalidProfile)
    assert expect in [e.path for e in result.errors]


def test_a_short_row_names_the_missing_cell(tmp_path: Path) -> None:
    text = csv_text(synthetic_paper_rows()) + "1,cpu,1,1G,18,1,1,1000000,1,1,750\n"
    result = _load_or_refuse(tmp_path / "c.csv", text.encode(), 750.0)
    assert isinstance(result, InvalidProfile)
    assert any(e.path.endswith(".capacity") and e.message == "missing" for e in result.errors)


@pytest.mark.skipif(not PAPER_PROFILE.is_file(), reason=f"the paper's CSV is not at {PAPER_PROFILE}")
@fuzz(40)
@given(row=st.integers(0, 399), column=st.sampled_from(["CPU", "SLA", "capacity", "ARCH", "REPLICA", "p99_latency"]), value=nasty_scalars.map(str))
def test_the_real_paper_csv_with_a_corrupted_cell(tmp_path: Path, row: int, column: str, value: str) -> None:
    rows = list(csv.DictReader(io.StringIO(PAPER_PROFILE.read_text(encoding="utf-8"))))
    assume(row < len(rows))
    rows[row][column] = value
    result = _load_or_refuse(tmp_path / "capacity.csv", csv_text(rows, list(rows[0])).encode(), 750.0)
    if isinstance(result, InvalidProfile):
        assert any(e.path in (f"row {row + 2}.{column}", f"row {row + 2}", "sloMs") for e in result.errors)


# --------------------------------------------------------------------------- writing: all or nothing


@fuzz(40)
@given(
    raw=st.fixed_dictionaries(
        {
            "sloMs": st.floats(0.001, 1e6),
            "percentile": st.floats(0.1, 99.9),
            "variants": st.dictionaries(
                st.text(min_size=1, max_size=8).filter(str.strip),
                st.lists(
                    st.fixed_dictionaries(
                        {"cpu": st.floats(0.01, 512), "capacityRps": st.floats(0, 1e6)},
                        optional={"gpus": st.integers(0, 8), "p99Ms": st.floats(0, 1e5), "p50Ms": st.floats(0.001, 1e5)},
                    ),
                    min_size=1,
                    max_size=3,
                    unique_by=lambda r: (r["cpu"], r.get("gpus", 0)),
                ),
                min_size=1,
                max_size=3,
            ),
        }
    ),
    suffix=st.sampled_from([".yaml", ".json"]),
)
def test_saved_profiles_load_back_equal(tmp_path: Path, raw: dict[str, Any], suffix: str) -> None:
    profile = profile_from_dict(raw)
    out_dir = Path(tempfile.mkdtemp(dir=tmp_path))
    path = out_dir / f"out{suffix}"
    save_profile(profile, path)
    again = load_profile(path)
    assert again.points == profile.points and again.slo_ms == profile.slo_ms
    assert os.listdir(out_dir) == [path.name], "a temporary file was left behind"


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "profile.yaml"
    path.write_text("previous\n", encoding="utf-8")

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(ApplyFailed, match="No space left"):
        save_profile(profile_from_dict(FULL_PROFILE), path)
    assert path.read_text(encoding="utf-8") == "previous\n"
    assert os.listdir(tmp_path) == ["profile.yaml"]


def test_an_interrupted_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "profile.json"

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_profile(profile_from_dict(FULL_PROFILE), path)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("target", ["dir", "under-a-file"])
def test_an_unwritable_out_path_is_invalid_input(tmp_path: Path, target: str) -> None:
    (tmp_path / "file").write_text("x", encoding="utf-8")
    path = tmp_path if target == "dir" else tmp_path / "file" / "profile.yaml"
    with pytest.raises(InvalidInput) as info:
        save_profile(profile_from_dict(FULL_PROFILE), path)
    assert_clear(info.value)
    assert "--out" in info.value.errors[0].hint
