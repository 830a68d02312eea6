"""One cache root for every module, isolated for the test run, and ``infadapter cache path|clear``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from infadapter.cache import CACHE_ENV, cache_root
from infadapter.cli import main


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main([*argv])
        raise SystemExit(0)
    out = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 0), out.out, out.err


def test_the_root_is_the_variable_else_xdg_else_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "mine"
    monkeypatch.delenv(CACHE_ENV)
    assert cache_root() == tmp_path / "xdg" / "infadapter"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # invalid per the XDG spec: ignored
    assert cache_root() == tmp_path / "home" / ".cache" / "infadapter"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_root() == tmp_path / "home" / ".cache" / "infadapter"


def test_the_test_run_uses_one_isolated_directory(infadapter_cache_dir: Path) -> None:
    assert Path(os.environ[CACHE_ENV]) == infadapter_cache_dir == cache_root()
    assert not infadapter_cache_dir.resolve().is_relative_to(Path.home().resolve() / ".cache")


def test_every_module_builds_its_cache_paths_under_the_root(infadapter_cache_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from infadapter.serving.models import default_models_dir
    from infadapter.sim import service
    from infadapter.sim.scenario import DEFAULT_LSTM
    from infadapter.traces import read_trace
    from tests.runtime.conftest import TINY_DIR

    monkeypatch.delenv("INFADAPTER_MODELS_DIR", raising=False)
    assert default_models_dir() == infadapter_cache_dir / "models"
    assert service._cache_file() == infadapter_cache_dir / "sim-calibration.json"
    assert DEFAULT_LSTM.parent == infadapter_cache_dir  # computed at import: the run's directory was set before
    assert TINY_DIR.parent == infadapter_cache_dir
    trace = tmp_path / "t.txt"
    trace.write_text("1 2 3", encoding="utf-8")
    read_trace(trace)
    assert any((infadapter_cache_dir / "traces").glob("t.txt.*.npy"))


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    root = tmp_path / "cache"
    for name in ("traces", "profiles"):
        (root / name).mkdir(parents=True)
        (root / name / "x.bin").write_bytes(b"0" * 1000)
    (root / "sim-calibration.json").write_text("{}", encoding="utf-8")
    monkeypatch.setenv(CACHE_ENV, str(root))
    return root


def test_cache_path_prints_the_root(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "cache", "path") == (0, f"{cache}\n", "")


def test_cache_clear_yes_empties_the_root_and_keeps_it(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "cache", "clear", "--yes")
    assert code == 0 and "removed 3 entries" in err
    assert cache.is_dir() and not any(cache.iterdir())
    assert cli(capsys, "cache", "clear", "--yes")[2].endswith("nothing to clear\n")


def test_cache_clear_names_only_those_entries(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "cache", "clear", "traces", "-y")[0] == 0
    assert sorted(p.name for p in cache.iterdir()) == ["profiles", "sim-calibration.json"]
    code, _, err = cli(capsys, "cache", "clear", "models", "-y")
    assert code == 2 and "not in" in err and "profiles" in err


def test_cache_clear_without_yes_and_no_terminal_deletes_nothing(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "cache", "clear")
    assert code == 2 and "--yes" in err
    assert len(list(cache.iterdir())) == 3


def test_cache_clear_leaves_what_a_link_points_to(cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere = tmp_path / "builds"
    elsewhere.mkdir()
    (elsewhere / "kube-apiserver").write_bytes(b"binary")
    (cache / "control-plane").symlink_to(elsewhere, target_is_directory=True)
    assert cli(capsys, "cache", "clear", "--yes")[0] == 0
    assert (elsewhere / "kube-apiserver").is_file() and not (cache / "control-plane").exists()


@pytest.mark.parametrize("where", ["home", "repository"])
def test_cache_clear_refuses_a_root_that_is_not_a_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    root = tmp_path / where
    root.mkdir()
    (root / "precious.txt").write_text("keep", encoding="utf-8")
    if where == "home":  # INFADAPTER_CACHE_DIR=~ by mistake
        monkeypatch.setenv("HOME", str(root))
    else:
        (root / ".git").mkdir()
    monkeypatch.setenv(CACHE_ENV, str(root))
    code, _, err = cli(capsys, "cache", "clear", "--yes")
    assert code == 2 and "refusing to empty" in err and "INFADAPTER_CACHE_DIR" in err
    assert ("home directory" if where == "home" else "git repository") in err
    assert (root / "precious.txt").is_file()


def test_prometheus_is_found_on_the_path_else_where_setup_unpacked_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from infadapter.runtime.local.prometheus import find_prometheus, find_promtool

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    assert find_prometheus() is None and find_promtool() is None
    unpacked = tmp_path / "cache" / "prometheus" / "2.42.0+ds-5+deb12u1" / "bin"
    unpacked.mkdir(parents=True)
    for name in ("prometheus", "promtool"):
        (unpacked / name).write_text("#!/bin/sh\n")
        (unpacked / name).chmod(0o755)
    assert find_prometheus() == str(unpacked / "prometheus") and find_promtool() == str(unpacked / "promtool")
    on_path = tmp_path / "bin"
    on_path.mkdir()
    (on_path / "prometheus").write_text("#!/bin/sh\n")
    (on_path / "prometheus").chmod(0o755)
    monkeypatch.setenv("PATH", str(on_path))
    assert find_prometheus() == str(on_path / "prometheus"), "the PATH comes first"
