"""The demo model family: real ResNet architectures with random weights, built idempotently."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from infadapter.cli import app
from infadapter.errors import InvalidInput
from infadapter.serving.models import DEMO_VARIANTS, build_family, read_manifest

from .conftest import TINY_IMAGE_SIZE


def test_declared_accuracies_are_torchvision_top1() -> None:
    assert {n: v.accuracy for n, v in DEMO_VARIANTS.items()} == {
        "resnet18": 0.69758,
        "resnet34": 0.73314,
        "resnet50": 0.7613,
        "resnet101": 0.77374,
        "resnet152": 0.78312,
    }


def test_built_models_run_in_onnxruntime_with_declared_io(tiny_models: dict[str, Path]) -> None:
    import onnxruntime as ort

    for name, path in tiny_models.items():
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        batch = np.random.default_rng(0).random((2, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE)).astype(np.float32)
        (out,) = session.run(["output"], {"input": batch})
        assert out.shape == (2, 1000)
        manifest = read_manifest(path)
        assert manifest is not None
        assert manifest["imageSize"] == TINY_IMAGE_SIZE and manifest["accuracy"] == DEMO_VARIANTS[name].accuracy
        assert "random weights" in manifest["weights"]


def test_deeper_variant_has_more_parameters(tiny_models: dict[str, Path]) -> None:
    assert tiny_models["resnet34"].stat().st_size > 1.5 * tiny_models["resnet18"].stat().st_size


def test_rebuild_is_skipped_when_up_to_date(tiny_models: dict[str, Path]) -> None:
    path = tiny_models["resnet18"]
    before = path.stat().st_mtime_ns
    (again,) = build_family(path.parent, ["resnet18"], TINY_IMAGE_SIZE)
    assert not again.built
    assert path.stat().st_mtime_ns == before


def test_changed_config_or_corrupt_file_rebuilds(tmp_path: Path) -> None:
    (first,) = build_family(tmp_path, ["resnet18"], 24)
    assert first.built
    (other_size,) = build_family(tmp_path, ["resnet18"], 32)
    assert other_size.built and read_manifest(other_size.path)["imageSize"] == 32  # type: ignore[index]
    other_size.path.write_bytes(b"corrupt")
    (repaired,) = build_family(tmp_path, ["resnet18"], 32)
    assert repaired.built and repaired.sha256 == other_size.sha256  # seeded: the same bytes again


def test_unknown_variant_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="resnet19"):
        build_family(tmp_path, ["resnet19"], 32)


def test_models_build_cli_reports_json_and_exit_code_2_on_bad_input(tiny_models: dict[str, Path]) -> None:
    runner = CliRunner()
    out_dir = tiny_models["resnet18"].parent
    result = runner.invoke(app, ["models", "build", "--out", str(out_dir), "--variants", "resnet18", "--image-size", str(TINY_IMAGE_SIZE), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["models"][0]["name"] == "resnet18" and data["models"][0]["built"] is False
    bad = runner.invoke(app, ["models", "build", "--out", str(out_dir), "--variants", "vgg16"])
    assert bad.exit_code == 2


def test_models_build_into_a_file_is_refused_naming_out(tmp_path: Path) -> None:
    occupied = tmp_path / "a-file"
    occupied.write_text("x")
    result = CliRunner().invoke(app, ["models", "build", "--out", str(occupied), "--variants", "resnet18"])
    assert result.exit_code == 2 and "--out" in result.output
