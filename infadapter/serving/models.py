"""The demo model family: ResNet-18/34/50/101/152 exported to ONNX, and model URI resolution.

The architectures are the real ones (so compute per variant differs as in the paper), the
**weights are random** (seeded, ``torch.manual_seed``): predictions are meaningless. The accuracies
the demo spec declares are the published torchvision ImageNet top-1 accuracies of the V1 weights
(https://pytorch.org/vision/stable/models.html), *not* measured on these models.

Layout of a models directory (default ``~/.cache/infadapter/models``, or ``$INFADAPTER_MODELS_DIR``)::

    resnet18.onnx    input "input" FP32 [N,3,S,S] -> output "output" FP32 [N,1000]
    resnet18.json    manifest: depth, imageSize, seed, opset, sha256, declared accuracy

Building is idempotent: a variant whose manifest matches the requested config and whose file
hash matches the manifest is skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from infadapter.cache import cache_root
from infadapter.errors import FieldError, InvalidInput
from infadapter.processes import atomic_write

#: the default input side: ResNet-18 ~90 inferences/s on one core here, ResNet-152 ~6x fewer
DEFAULT_IMAGE_SIZE = 112
OPSET = 17
SEED = 0
WEIGHTS_NOTE = "random weights (seeded); accuracy is torchvision's published ImageNet top-1 (V1 weights)"


@dataclass(frozen=True)
class DemoVariant:
    name: str
    depth: int
    accuracy: float  # declared: torchvision ImageNet top-1 of the V1 weights


DEMO_VARIANTS: dict[str, DemoVariant] = {
    v.name: v
    for v in (
        DemoVariant("resnet18", 18, 0.69758),
        DemoVariant("resnet34", 34, 0.73314),
        DemoVariant("resnet50", 50, 0.7613),
        DemoVariant("resnet101", 101, 0.77374),
        DemoVariant("resnet152", 152, 0.78312),
    )
}


@dataclass(frozen=True)
class BuiltModel:
    name: str
    path: Path
    image_size: int
    sha256: str
    built: bool  # False when an up-to-date file was already there
    seconds: float


def default_models_dir() -> Path:
    env = os.environ.get("INFADAPTER_MODELS_DIR")
    return Path(env) if env else cache_root() / "models"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _config(variant: DemoVariant, image_size: int) -> dict[str, Any]:
    return {"name": variant.name, "depth": variant.depth, "imageSize": image_size, "seed": SEED, "opset": OPSET}


def read_manifest(onnx_path: Path) -> dict[str, Any] | None:
    """The manifest beside ``onnx_path`` (``<name>.json``), or None."""
    manifest = onnx_path.with_suffix(".json")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _up_to_date(path: Path, config: dict[str, Any]) -> str | None:
    manifest = read_manifest(path)
    if manifest is None or not path.is_file():
        return None
    if any(manifest.get(k) != v for k, v in config.items()):
        return None
    digest = sha256_file(path)
    return digest if manifest.get("sha256") == digest else None


def parse_variant_names(names: Sequence[str] | None) -> list[DemoVariant]:
    if not names:
        return list(DEMO_VARIANTS.values())
    unknown = [n for n in names if n not in DEMO_VARIANTS]
    if unknown:
        raise InvalidInput(
            [FieldError("variants", f"unknown demo variant {n!r}", f"use some of {', '.join(DEMO_VARIANTS)}") for n in unknown],
            "models build",
        )
    return [DEMO_VARIANTS[n] for n in names]


def build_family(
    out_dir: str | os.PathLike[str] | None = None,
    variants: Sequence[str] | None = None,
    image_size: int = DEFAULT_IMAGE_SIZE,
    *,
    force: bool = False,
) -> list[BuiltModel]:
    """Export the demo variants to ``out_dir`` (default :func:`default_models_dir`); skip up-to-date ones."""
    if not 16 <= image_size <= 512:
        raise InvalidInput([FieldError("image_size", f"{image_size} is outside 16..512", "use e.g. 64 or 112")], "models build")
    chosen = parse_variant_names(variants)
    directory = Path(out_dir) if out_dir is not None else default_models_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput([FieldError("--out", f"cannot create directory {directory}: {exc.strerror}", "give a directory path")], "models build") from None
    results: list[BuiltModel] = []
    for variant in chosen:
        started = time.monotonic()
        path = directory / f"{variant.name}.onnx"
        config = _config(variant, image_size)
        digest = None if force else _up_to_date(path, config)
        if digest is not None:
            results.append(BuiltModel(variant.name, path, image_size, digest, False, time.monotonic() - started))
            continue
        digest = _export(variant, image_size, path)
        manifest = {
            **config,
            "sha256": digest,
            "accuracy": variant.accuracy,
            "weights": WEIGHTS_NOTE,
            "input": {"name": "input", "datatype": "FP32", "shape": [-1, 3, image_size, image_size]},
            "output": {"name": "output", "datatype": "FP32", "shape": [-1, 1000]},
        }
        atomic_write(path.with_suffix(".json"), json.dumps(manifest, indent=1) + "\n")
        results.append(BuiltModel(variant.name, path, image_size, digest, True, time.monotonic() - started))
    return results


def _export(variant: DemoVariant, image_size: int, path: Path) -> str:
    # torch only here: the rest of the package must import without it
    import warnings

    from infadapter.serving.resnet import build_resnet, export_onnx

    fd, tmp = tempfile.mkstemp(prefix=f".{variant.name}.", suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_onnx(build_resnet(variant.depth, seed=SEED), tmp, image_size, opset=OPSET)
        digest = sha256_file(Path(tmp))
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old or the new file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return digest


def resolve_model_uri(uri: str, models_dir: str | os.PathLike[str] | None = None) -> Path:
    """Local path of a model source: ``models://resnet18``, ``file:///abs/x.onnx`` or a plain path.

    ``models://NAME`` means ``NAME.onnx`` in the models directory (``infadapter models build``).
    Raises :class:`InvalidInput` for other schemes (pvc://, s3://: those are for the operator) or a missing file.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "models":
        name = (parsed.netloc + parsed.path).strip("/")
        base = Path(models_dir) if models_dir is not None else default_models_dir()
        path = base / (name if name.endswith(".onnx") else f"{name}.onnx")
        hint = f"run `infadapter models build --variants {name}`" if name in DEMO_VARIANTS else "build or copy the model there"
    elif parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        hint = "check the path"
    elif parsed.scheme == "" and uri:
        path = Path(uri).expanduser()
        hint = "check the path"
    else:
        raise InvalidInput(
            [FieldError("source.uri", f"{uri!r} cannot be served locally", "use models://NAME, file:///path.onnx or a path")],
            "model source",
        )
    if path.is_dir():
        path = path / "model.onnx"
    if not path.is_file():
        raise InvalidInput([FieldError("source.uri", f"{uri!r}: no model file at {path}", hint)], "model source")
    return path


def ensure_demo_models(uris: Sequence[str], models_dir: str | os.PathLike[str] | None = None, image_size: int = DEFAULT_IMAGE_SIZE) -> list[BuiltModel]:
    """Build the demo models that ``models://`` URIs name and that are missing (for ``infadapter run``)."""
    names = []
    for uri in uris:
        parsed = urlparse(uri)
        name = (parsed.netloc + parsed.path).strip("/")
        if parsed.scheme == "models" and name in DEMO_VARIANTS:
            base = Path(models_dir) if models_dir is not None else default_models_dir()
            if not (base / f"{name}.onnx").is_file():
                names.append(name)
    return build_family(models_dir, names, image_size) if names else []
