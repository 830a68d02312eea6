"""What a trace reader is told (:class:`TraceOptions`), its limits, and how it names errors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final, Literal, get_args

import numpy as np
import numpy.typing as npt

from infadapter.errors import FieldError, InvalidInput

FloatArray = npt.NDArray[np.float64]
TraceFormat = Literal["auto", "tbz2", "counts", "csv", "timestamps", "csv-timestamps"]
TimeUnit = Literal["auto", "s", "ms", "us", "ns"]

FORMATS: Final[tuple[str, ...]] = get_args(TraceFormat)
TIME_UNITS: Final[tuple[str, ...]] = get_args(TimeUnit)
#: seconds in one time unit's tick
UNIT_S: Final[dict[str, float]] = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}

#: runs of zeros at least this long are collection gaps (the Twitter trace's daily hole is ~1,740 s)
DEFAULT_GAP_S = 60
#: the longest trace held in memory, in seconds (400 days: 276 MB of float64); longer is refused before
#: it is allocated: it is almost always a unit mistake (epoch milliseconds read as seconds)
MAX_TRACE_S = 400 * 86400
#: the longest --interval (one day)
MAX_INTERVAL_S = 86400

#: hint shared by every "which format is this?" refusal
FORMAT_HINT = "give --format counts|csv|timestamps|csv-timestamps|tbz2 (see `infadapter simulate --help`)"


def bad(path: os.PathLike[str] | str, message: str, hint: str) -> InvalidInput:
    """The :class:`InvalidInput` of a trace: named by its file, with a hint."""
    return InvalidInput([FieldError(str(path), message, hint)], source="trace")


def at_line(line: int | None, message: str) -> str:
    return f"line {line}: {message}" if line is not None else message


@dataclass(frozen=True)
class TraceOptions:
    """How to read a trace file; the CLI's ``--format``, ``--column``, ``--interval``, ``--time-unit``.

    ``fmt``: ``auto`` (detected, refusing what could be read two ways), ``tbz2`` (the paper's archive of
    per-second counts), ``counts`` (numbers separated by spaces, newlines, commas or semicolons, one per
    second or per ``interval_s``), ``csv`` (a header, a count column, ``rps`` unless ``column`` says, and
    an optional time column such as ``t_sec``), ``timestamps`` (one request time per line: seconds, ms,
    us, ns or ISO-8601), ``csv-timestamps`` (one request per row, its time in ``column``).
    ``interval_s``: each count covers this many seconds and is spread evenly over them.
    ``time_unit``: unit of numeric times; ``auto`` reads epoch values by magnitude, small values as seconds.
    """

    fmt: TraceFormat = "auto"
    column: str | None = None
    interval_s: int | None = None
    time_unit: TimeUnit = "auto"

    def errors(self) -> list[FieldError]:
        """Every option error, named by its CLI option (checked before any file is read)."""
        errors: list[FieldError] = []
        if self.fmt not in FORMATS:
            errors.append(FieldError("--format", f"unknown format {self.fmt!r}", f"one of {', '.join(FORMATS)}"))
        if self.time_unit not in TIME_UNITS:
            errors.append(FieldError("--time-unit", f"unknown unit {self.time_unit!r}", f"one of {', '.join(TIME_UNITS)}"))
        if self.interval_s is not None and not 1 <= self.interval_s <= MAX_INTERVAL_S:
            errors.append(
                FieldError("--interval", f"{self.interval_s} is not a number of seconds in 1..{MAX_INTERVAL_S}", "e.g. --interval 60 for per-minute counts")
            )
        if self.interval_s is not None and self.fmt in ("timestamps", "csv-timestamps"):
            errors.append(
                FieldError("--interval", f"a {self.fmt} trace lists requests, not counts per interval", "drop --interval, or give --format counts/csv")
            )
        if self.column is not None and self.fmt in ("counts", "tbz2", "timestamps"):
            errors.append(FieldError("--column", f"a {self.fmt} trace has no columns", "drop --column, or give --format csv/csv-timestamps"))
        if self.column is not None and not self.column.strip():
            errors.append(FieldError("--column", "empty column name", "give the header name of the column, e.g. --column rps"))
        if self.time_unit != "auto" and self.fmt in ("counts", "tbz2"):
            errors.append(FieldError("--time-unit", f"a {self.fmt} trace holds no times", "drop --time-unit"))
        return errors

    def check(self) -> TraceOptions:
        """``self``, or :class:`InvalidInput` with every option error."""
        errors = self.errors()
        if errors:
            raise InvalidInput(errors, source="arguments")
        return self

    def key(self) -> str:
        """A stable text for the decode cache's key."""
        return f"{self.fmt}|{self.column}|{self.interval_s}|{self.time_unit}"
