"""Checks of command-line arguments shared by the commands: every error names the option that gave it."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from infadapter.errors import FieldError, InvalidInput

T = TypeVar("T")


def named_input(option: str, read: Callable[[Path], T], path: Path) -> T:
    """``read(path)``; an :class:`InvalidInput` it raises says which option gave the file."""
    try:
        return read(path)
    except InvalidInput as exc:
        raise type(exc)(exc.errors, f"{option} {path}") from None


def check_number(
    errors: list[FieldError], option: str, value: float | None, *, low: float = 0.0, high: float = math.inf, low_inclusive: bool = False, hint: str = ""
) -> None:
    """Append an error naming ``option`` unless ``value`` is finite and within (low, high] (or [low, high])."""
    if value is None:
        return
    ok = math.isfinite(value) and (value >= low if low_inclusive else value > low) and value <= high
    if not ok:
        bound = f"{'>=' if low_inclusive else '>'} {low:g}" + (f" and <= {high:g}" if math.isfinite(high) else "")
        errors.append(FieldError(option, f"must be a finite number {bound}, got {value:g}", hint))
