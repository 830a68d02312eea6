"""Reading the YAML files users give (specs, profiles): text, documents and a readable error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def yaml_documents(text: str) -> list[Any]:
    """Every document of a YAML text (``safe_load``), ``None`` documents dropped.

    Raises :class:`yaml.YAMLError` for anything PyYAML cannot turn into data, including what it
    reports with other exceptions: nesting too deep (RecursionError) and integers longer than
    Python's conversion limit (ValueError).
    """
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError:
        raise
    except RecursionError:
        raise yaml.YAMLError("nesting too deep") from None
    except ValueError as exc:  # e.g. "Exceeds the limit (4300 digits) for integer string conversion"
        raise yaml.YAMLError(str(exc).split(";")[0]) from None


def yaml_error_text(exc: yaml.YAMLError) -> str:
    """``not valid YAML at line L, column C: problem`` for a PyYAML error."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"not valid YAML{where}: {getattr(exc, 'problem', None) or exc}"


def read_text(file: Path) -> str:
    """The UTF-8 text of ``file``; ``OSError``/``UnicodeDecodeError`` are left to the caller."""
    return file.read_bytes().decode("utf-8")
