"""Pydantic's validation errors as the project's field errors: a dotted path, a message and a hint."""

from __future__ import annotations

from pydantic import ValidationError

from infadapter.errors import FieldError

_HINTS: dict[str, str] = {
    "missing": "add this field",
    "extra_forbidden": "remove it or check its spelling (field names are camelCase, as in the CRD)",
    "float_parsing": "write a number",
    "float_type": "write a number",
    "int_parsing": "write a whole number",
    "int_type": "write a whole number",
    "int_from_float": "write a whole number",
    "greater_than": "use a larger value",
    "greater_than_equal": "use a larger value",
    "less_than": "use a smaller value",
    "less_than_equal": "use a smaller value",
    "literal_error": "use one of the listed values",
    "enum": "use one of the listed values",
    "too_short": "add at least one entry",
    "string_type": "write a string",
    "bool_type": "write true or false",
    "bool_parsing": "write true or false",
    "list_type": "write a list",
    "model_type": "write a mapping (key: value)",
    "model_attributes_type": "write a mapping (key: value)",
    "dict_type": "write a mapping (key: value)",
    "finite_number": "write a finite number (not .nan or .inf)",
    "int_parsing_size": "write a smaller whole number",
    "string_too_short": "write a non-empty value",
    "string_too_long": "shorten it",
    "too_long": "remove entries",
    "invalid_key": "field names are strings (camelCase, as in the CRD)",
    "string_pattern_mismatch": "see the field's description in docs/input-validation.md",
}
#: for error types not listed above: still a hint, never a bare message
_DEFAULT_HINT = "check the value against docs/input-validation.md"


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def errors_from_validation(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    """Turn pydantic errors into field errors with a path and a hint."""
    found: list[FieldError] = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = _path(loc)
        if prefix:
            path = f"{prefix}{'' if path.startswith('[') else '.'}{path}" if path else prefix
        message = str(err["msg"])
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        hint = _HINTS.get(str(err["type"]), _DEFAULT_HINT)
        if err["type"] == "value_error" and "; " in message:  # our validators say "problem; fix"
            message, hint = message.rsplit("; ", 1)
        if err["type"] in ("literal_error", "enum") and "expected" in err.get("ctx", {}):
            hint = f"use one of {err['ctx']['expected']}"
        found.append(FieldError(path, message, hint))
    return found
