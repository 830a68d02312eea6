"""``infadapter models build``: export the demo ResNet family to ONNX (random weights)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from infadapter.cli._app import app, fail
from infadapter.errors import InfAdapterError

models_app = typer.Typer(help="The demo model family (ResNet-18…152 ONNX, random weights).", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("build")
def build(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="directory (default ~/.cache/infadapter/models or $INFADAPTER_MODELS_DIR)")] = None,
    variants: Annotated[str, typer.Option("--variants", help="comma-separated, e.g. resnet18,resnet50 (default: all five)")] = "",
    image_size: Annotated[int, typer.Option("--image-size", help="input side in pixels (3xNxN)")] = 112,
    force: Annotated[bool, typer.Option("--force", help="rebuild even when up to date")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Export ResNet-18/34/50/101/152 with seeded RANDOM weights to ONNX; skip files already up to date.

    The declared accuracies (examples/demo.yaml) are torchvision's published ImageNet top-1, not measured.
    """
    from infadapter.serving.models import build_family, default_models_dir

    names = [n.strip() for n in variants.split(",") if n.strip()]
    console = Console(stderr=True)
    try:
        with console.status("exporting ONNX models…"):
            built = build_family(out, names or None, image_size, force=force)
    except InfAdapterError as exc:
        raise fail(str(exc), exc.exit_code) from None
    except ImportError as exc:
        raise fail(f"{exc.name} is missing: pip install 'infadapter[torch]' (torch==2.13.0 CPU)", 1) from None
    if as_json:
        print(
            json.dumps(
                {
                    "dir": str(out or default_models_dir()),
                    "models": [
                        {"name": m.name, "path": str(m.path), "imageSize": m.image_size, "sha256": m.sha256, "built": m.built, "seconds": round(m.seconds, 2)}
                        for m in built
                    ],
                }
            )
        )
        return
    for m in built:
        state = f"built in {m.seconds:.1f} s" if m.built else "up to date"
        console.print(f"{m.name:10s} {m.path}  ({m.path.stat().st_size / 1e6:.0f} MB, {m.image_size}px, {state})", highlight=False)
