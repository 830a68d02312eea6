"""The ``infadapter`` command line.

Each sub-command lives in its own module and registers itself on :data:`app`;
heavy libraries (torch, kopf, tritonclient) are imported inside the command
functions so ``infadapter --help`` stays fast.
"""

from __future__ import annotations

# Sub-command modules register themselves on import (one line each).
from infadapter.cli import explain as _explain  # noqa: F401
from infadapter.cli import forecast as _forecast  # noqa: F401
from infadapter.cli import load as _load  # noqa: F401
from infadapter.cli import models as _models  # noqa: F401
from infadapter.cli import operator_cmd as _operator_cmd  # noqa: F401
from infadapter.cli import plan as _plan  # noqa: F401
from infadapter.cli import profile as _profile  # noqa: F401
from infadapter.cli import run as _run  # noqa: F401
from infadapter.cli import simulate as _simulate  # noqa: F401
from infadapter.cli import trace as _trace  # noqa: F401
from infadapter.cli._app import app, main

__all__ = ["app", "main"]
