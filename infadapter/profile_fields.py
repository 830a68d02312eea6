"""One numeric field of a profile (a YAML value or a CSV cell), checked with the error that names it."""

from __future__ import annotations

import math
from typing import Any

from infadapter.errors import FieldError


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
