"""The one exception tree of InfAdapter.

Everything the project raises on purpose derives from :class:`InfAdapterError`;
the CLI and the operator map these to exit codes / kopf outcomes at the edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class InfAdapterError(Exception):
    """Base class; ``exit_code`` is what the CLI exits with."""

    exit_code: int = 1


@dataclass(frozen=True)
class FieldError:
    """One problem in user input: where (a dotted field path), what, and how to fix it."""

    path: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        return f"{text} (hint: {self.hint})" if self.hint else text


class InvalidInput(InfAdapterError):
    """User input (spec, profile, trace, CLI arguments) is invalid; carries every error found."""

    exit_code = 2

    def __init__(self, errors: Sequence[FieldError], source: str = "") -> None:
        self.errors = tuple(errors)
        self.source = source
        head = f"invalid {source}" if source else "invalid input"
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(f"{head}:\n{lines}" if lines else head)


class InvalidSpec(InvalidInput):
    """The InferenceService spec is invalid."""


class InvalidProfile(InvalidInput):
    """A capacity profile file is invalid or does not cover the spec."""


class MetricsUnavailable(InfAdapterError):
    """Prometheus could not be queried or returned unusable data."""


class ApplyFailed(InfAdapterError):
    """A plan could not be applied to the runtime (processes or Kubernetes objects)."""
