"""One field of a profile (a YAML value or a CSV cell), checked with the error that names it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from infadapter.errors import FieldError
from infadapter.hardware import DEFAULT_ACCELERATOR
from infadapter.spec_fields import accelerator_name


def short_repr(value: Any) -> str:
    """``repr(value)``, cut to 60 characters (an error message quotes it)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def number_field(value: Any, path: str, errors: list[FieldError], *, positive: bool = False, below: float | None = None) -> float | None:
    """``value`` as a finite float >= 0 (> 0 if ``positive``, < ``below`` if given), else an error."""
    if value is None or (isinstance(value, str) and not value.strip()):
        errors.append(FieldError(path, "missing", "write a number"))
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        errors.append(FieldError(path, f"expected a number, got {short_repr(value)}", "write a number"))
        return None
    try:
        number = float(value)
    except OverflowError:
        errors.append(FieldError(path, f"number too large: {short_repr(value)}", "write a finite number"))
        return None
    except ValueError:
        errors.append(FieldError(path, f"expected a number, got {short_repr(value)}", "write a number"))
        return None
    if not math.isfinite(number):
        errors.append(FieldError(path, f"expected a finite number, got {short_repr(value)}", "write a finite number"))
        return None
    if number < 0 or (positive and number == 0):
        errors.append(FieldError(path, f"must be {'> 0' if positive else '>= 0'}, got {number:g}", "use a positive value"))
        return None
    if below is not None and number >= below:
        errors.append(FieldError(path, f"must be < {below:g}, got {number:g}", f"use a value below {below:g}"))
        return None
    return number


def accelerator_field(raw: Any, path: str, gpus: int, errors: list[FieldError], gpus_hint: str = "add gpus: 1") -> str:
    """A point's named accelerator type ``raw`` at ``path`` ("" when None), checked: a DNS label, on a point with GPUs."""
    if raw is None:
        return ""
    if not isinstance(raw, str) or not accelerator_name(raw) or raw == DEFAULT_ACCELERATOR:
        errors.append(
            FieldError(
                path,
                f"expected a type name of the spec's accelerators, got {short_repr(raw)}",
                "write e.g. t4 (omit it for budget.gpu's GPUs)",
            )
        )
        return ""
    if gpus < 1:
        errors.append(FieldError(path, "a point on an accelerator type needs gpus >= 1", gpus_hint))
        return ""
    return raw


def batch_field(row: Mapping[str, Any], path: str, errors: list[FieldError]) -> int:
    """A point's ``maxBatchSize`` (0 when absent): a whole number 1..999, as the spec's ``batchSizes``."""
    raw = row.get("maxBatchSize")
    if raw is None:
        return 0
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= 999:
        errors.append(FieldError(f"{path}.maxBatchSize", f"expected a whole number 1..999, got {short_repr(raw)}", "write the servers' max batch size, e.g. 8"))
        return 0
    return raw
