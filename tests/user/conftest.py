"""The new-user tier: the CLI run as a user runs it (through the console script's edge), real servers where needed.

The real tritonserver fixtures are the serving tier's (one tiny ResNet-18 served as ``resnet``), reused here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from infadapter.cli import main
from tests.serving.conftest import running_triton, tiny_models, triton_available  # noqa: F401  (fixtures, reused)

#: ``cli(*argv) -> (exit code, stdout, stderr)``
Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run ``infadapter ARGV`` through the console-script edge; (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exited:
            main([*argv])
            raise SystemExit(0)
        out = capsys.readouterr()
        code = exited.value.code
        return (code if isinstance(code, int) else 0), out.out, out.err

    return run


PER_CORE_RPS = (("resnet18", 24), ("resnet34", 13), ("resnet50", 10), ("resnet101", 5), ("resnet152", 3.5))


@pytest.fixture
def paper_like_profile(tmp_path: Path) -> Path:
    """The paper's five ResNets, 1..20 cores, SLO 750 ms (examples/resnet.yaml's variants)."""
    rows = {n: [{"cpu": c, "capacityRps": k * c} for c in range(1, 21)] for n, k in PER_CORE_RPS}
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump({"kind": "Profile", "sloMs": 750, "variants": rows}), encoding="utf-8")
    return path
