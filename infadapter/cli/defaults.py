"""The default spec of ``plan`` and ``simulate``: the paper's service, named whenever it is used.

Without ``--spec`` these commands plan the paper's service (``examples/resnet.yaml``: five ResNets, SLO
p99 750 ms, 20 cores). That file ships with the source checkout only, and a user who forgot ``--spec``
should not get answers about someone else's service without being told: a note on stderr says which
spec was taken (not with ``--json``, whose stdout stays one object and whose output names it), and an
install without the checkout asks for ``--spec``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from infadapter.errors import FieldError, InvalidInput

PAPER_SPEC = Path(__file__).resolve().parents[2] / "examples" / "resnet.yaml"
SPEC_HELP = "InferenceService YAML [default: the paper's service, examples/resnet.yaml of the source checkout; noted]"


def spec_or_default(path: Path | None, *, quiet: bool) -> Path:
    """``path``, or the paper's example spec with a note on stderr (unless ``quiet``)."""
    if path is not None:
        return path
    if not PAPER_SPEC.is_file():
        raise InvalidInput(
            [
                FieldError(
                    "--spec",
                    f"missing, and the default (the paper's service, {PAPER_SPEC}) is not there: it ships with the source checkout only",
                    "pass --spec FILE, your InferenceService YAML",
                )
            ],
            "arguments",
        )
    if not quiet:
        typer.echo(f"note: no --spec: the paper's service, {PAPER_SPEC} (5 ResNets, SLO p99 750 ms, 20 cores) (hint: --spec FILE for yours)", err=True)
    return PAPER_SPEC
