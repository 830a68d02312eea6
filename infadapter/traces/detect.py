"""Which format a trace file is in, from its name and its first 64 KiB, refusing what could be read two ways.

The costly mistakes are silent ones: epoch timestamps read as per-second counts (1.6e9 requests a second),
or relative timestamps ``0 0 1 3 3 3`` read as counts. So a column of numbers is read as counts only when
it cannot be a list of request times, as timestamps only when it cannot be counts, and otherwise refused
with a hint naming ``--format``.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import numpy.typing as npt

from infadapter.traces.numbers import is_number
from infadapter.traces.options import TraceFormat, TraceOptions, bad
from infadapter.traces.timestamps import parse_date

HEAD_BYTES = 64 * 1024
#: integers from here on are epoch times (2001-09-09 in seconds), never plausible counts per second
EPOCH_MIN = 1e9
_SPLIT = re.compile(r"[\s,;]+")
_TABLE_SUFFIXES = (".csv", ".tsv")
_TBZ2_SUFFIXES = (".tbz2", ".tar.bz2", ".tbz")

Detected = TraceFormat  # never "auto"; "csv" stands for any table (the CSV reader picks csv or csv-timestamps)


def detect(file: Path, options: TraceOptions) -> Detected:
    """The format of ``file``: ``options.fmt`` unless it is ``auto``."""
    if options.fmt != "auto":
        return options.fmt
    name = file.name.lower()
    if name.endswith(_TBZ2_SUFFIXES):
        return "tbz2"
    with file.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
    if head.startswith(b"BZh"):
        return "tbz2"
    if b"\0" in head:
        raise bad(file, "binary content in a text trace", "give a .tbz2, CSV or plain text trace")
    if name.endswith(_TABLE_SUFFIXES) or options.column is not None:
        return "csv"
    lines = _data_lines(head, whole=len(head) < HEAD_BYTES)
    if not lines:
        return "counts"  # refused by the reader: no samples
    first = [t for t in _SPLIT.split(lines[0]) if t]
    if not any(is_number(t) for t in first):
        return "timestamps" if parse_date(lines[0]) is not None else "csv"  # a date, else a header
    rows = [[t for t in _SPLIT.split(line) if t] for line in lines]
    try:
        table = [[float(t) for t in row] for row in rows]
    except ValueError:
        return "counts"  # the reader names the line of the first non-number
    if all(len(row) == 1 for row in table):
        return _one_column(file, np.array([row[0] for row in table]), [row[0] for row in rows], options)
    if len(table) >= 5 and all(len(row) == 2 for row in table) and all(b[0] > a[0] for a, b in itertools.pairwise(table)):
        raise bad(
            file,
            "two numbers a line, the first always increasing: a (time, count) table without a header?",
            "add a header such as t_sec,rps and --format csv; or --format counts to read every number as a count",
        )
    return "counts"


def _one_column(file: Path, values: npt.NDArray[np.float64], tokens: list[str], options: TraceOptions) -> Detected:
    """Counts or timestamps for one number a line; see the module's docstring."""
    if values.size < 2 or not np.all(np.isfinite(values)):
        return "counts"  # a single value is one second's count; the reader refuses non-finite counts
    if options.interval_s is not None:
        return "counts"  # an interval only makes sense for counts
    if options.time_unit != "auto":
        return "timestamps"
    rising = bool(np.all(np.diff(values) >= 0))
    decimals = any(("." in t or "e" in t.lower()) for t in tokens)
    epoch = float(np.max(values)) >= EPOCH_MIN
    if rising and (decimals or epoch):
        return "timestamps"
    shown = ", ".join(tokens[:4]) + (", …" if len(tokens) > 4 else "")
    if decimals or epoch:
        raise bad(
            file,
            f"one {'decimal ' if decimals else 'epoch-sized '}number a line, not in order ({shown}): unsorted request times or per-second counts?",
            "give --format timestamps (request times) or --format counts (one count per second)",
        )
    if rising and np.any(np.diff(values) > 0) and values.size >= 3:
        raise bad(
            file,
            f"one whole number a line, never decreasing ({shown}): request times in seconds or per-second counts?",
            "give --format timestamps (one request time per line) or --format counts (one count per second)",
        )
    return "counts"


def _data_lines(head: bytes, *, whole: bool) -> list[str]:
    """The non-blank, non-comment lines of ``head`` (the last one dropped when the head cut it)."""
    text = head.decode("utf-8", "replace")
    lines = text.split("\n")
    if not whole and len(lines) > 1:
        lines = lines[:-1]
    return [s for s in (line.split("#", 1)[0].strip() for line in lines) if s]
