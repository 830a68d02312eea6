"""CSV traces: per-second (or per ``--interval``) counts with a time column, or one request per row.

The delimiter (``,`` ``;`` or tab) is read from the header; ``#`` lines are comments; every error names
its line. Per-second rows are placed by their time column (``t_sec`` ...), so a missing second is a zero
where it belongs, not a silent shift of everything after it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt

from infadapter.traces.numbers import CHUNK_BYTES
from infadapter.traces.options import MAX_TRACE_S, TimeUnit, TraceOptions, at_line, bad
from infadapter.traces.series import Trace, spread, spread_note
from infadapter.traces.timestamps import EPOCH_FROM_S, SecondCounter, TimeConverter, finish

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

COUNT_COLUMN = "rps"
#: a per-second CSV's time column, the first of these in the header
TIME_COLUMNS = ("t_sec", "time_s", "t", "second", "seconds", "sec", "timestamp", "time", "ts", "datetime", "date")
#: columns that hold one request's time in an access log (auto-detected when there is no count column)
STAMP_COLUMNS = ("timestamp", "@timestamp", "time", "ts", "datetime", "date", "time_local", "time_iso8601")
_BATCH = 65_536
_SECONDS_SUFFIXES = ("_sec", "_s", "sec", "second", "seconds")


@dataclass(frozen=True)
class Layout:
    """How a CSV is read: its format, delimiter, header line, and the column indices used."""

    fmt: str
    delimiter: str
    header_line: int
    names: tuple[str, ...]
    value: int  # the count column (csv) or the time column (csv-timestamps)
    time: int | None = None  # csv: the time column, if any
    note: str = ""


class _Lines:
    """The lines of a binary stream as text, counted; comment lines become empty (so counts stay true)."""

    def __init__(self, file: Path, stream: IO[bytes]) -> None:
        self.file, self.stream, self.number = file, stream, 0

    def __iter__(self) -> Iterator[str]:
        while raw := self.stream.readline(CHUNK_BYTES + 1):
            self.number += 1
            if len(raw) > CHUNK_BYTES:
                raise bad(self.file, at_line(self.number, "a line longer than 1 MiB"), "is this a CSV trace? one row per line")
            try:
                text = raw.decode("utf-8-sig" if self.number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise bad(self.file, at_line(self.number, "not UTF-8 text"), "save the CSV as UTF-8") from None
            yield "\n" if text.lstrip().startswith("#") else text


def read_table(file: Path, stream: IO[bytes], options: TraceOptions) -> Trace:
    """A CSV trace; ``options.fmt`` ``auto`` chooses between ``csv`` and ``csv-timestamps`` by the header."""
    lines = _Lines(file, stream)
    source = iter(lines)
    header_text = next((text for text in source if text.strip()), None)
    if header_text is None:
        raise bad(file, "empty CSV", f"the first line must be a header with an '{COUNT_COLUMN}' column (or give --column)")
    delimiter = max(",;\t", key=header_text.count) if any(d in header_text for d in ",;\t") else ","
    try:
        header = next(csv.reader([header_text], delimiter=delimiter), [])
        layout = _layout(file, header, delimiter, lines.number, options)
        if layout.fmt == "csv-timestamps" and options.interval_s is not None:
            raise bad(
                file,
                f"--interval {options.interval_s}: column {layout.names[layout.value]!r} lists requests, not counts",
                "drop --interval, or give --format csv --column NAME for a column of counts",
            )
        rows = csv.reader(source, delimiter=delimiter)
        if layout.fmt == "csv-timestamps":
            return _read_stamps(file, rows, lines, layout, options)
        return _read_counts(file, rows, lines, layout, options)
    except csv.Error as exc:
        raise bad(file, at_line(lines.number, f"malformed CSV ({exc})"), "one header line, then one row per line") from None


def _layout(file: Path, header: list[str], delimiter: str, line: int, options: TraceOptions) -> Layout:
    names = tuple(h.strip().lower() for h in header)
    shown = delimiter.join(header)[:200]
    wanted = options.column.strip().lower() if options.column else None
    if wanted is not None and wanted not in names:
        raise bad(file, at_line(line, f"no column {options.column!r} (--column) in the header ({shown})"), "give --column one of the header's names")
    fmt, note = _choose(file, names, wanted, line, shown) if options.fmt == "auto" else (str(options.fmt), "")
    if fmt == "csv-timestamps":
        stamp = wanted or next((n for n in STAMP_COLUMNS if n in names), None)
        if stamp is None:
            raise bad(file, at_line(line, f"no time column in the header ({shown})"), "name it with --column NAME")
        return Layout(fmt, delimiter, line, names, names.index(stamp), note=note)
    count = wanted or COUNT_COLUMN
    if count not in names:
        raise bad(
            file,
            at_line(line, f"no '{COUNT_COLUMN}' column in the header ({shown})"),
            f"name the per-second count column '{COUNT_COLUMN}' or give --column NAME; for one request per row give --format csv-timestamps --column NAME",
        )
    time = next((names.index(n) for n in TIME_COLUMNS if n in names and n != count), None)
    return Layout("csv", delimiter, line, names, names.index(count), time, note)


def _choose(file: Path, names: tuple[str, ...], wanted: str | None, line: int, shown: str) -> tuple[str, str]:
    """``csv`` or ``csv-timestamps`` from the header alone; a column that could be either is refused."""
    if wanted is None:
        if COUNT_COLUMN in names:
            return "csv", ""
        stamp = next((n for n in STAMP_COLUMNS if n in names), None)
        if stamp is None:
            return "csv", ""  # refused by the caller with the missing 'rps' column
        return "csv-timestamps", f"no '{COUNT_COLUMN}' column: read column {stamp!r} as one request per row (csv-timestamps)"
    if wanted == COUNT_COLUMN or any(n in names and n != wanted for n in TIME_COLUMNS):
        return "csv", ""
    if wanted in STAMP_COLUMNS:
        return "csv-timestamps", ""
    raise bad(
        file,
        at_line(line, f"column {wanted!r} (--column) could hold counts or request times ({shown})"),
        "give --format csv (a count per row) or --format csv-timestamps (one request per row)",
    )


def _cell(row: list[str], index: int) -> str | None:
    if index >= len(row):
        return None
    cell = row[index].strip()
    return cell or None


def _read_stamps(file: Path, rows: Iterator[list[str]], lines: _Lines, layout: Layout, options: TraceOptions) -> Trace:
    counter = SecondCounter(file)
    converter = TimeConverter(file, options.time_unit, f"column {layout.names[layout.value]!r}")
    cells: list[str] = []
    where: list[int] = []
    for row in rows:
        if not row or not any(c.strip() for c in row):
            continue
        cell = _cell(row, layout.value)
        if cell is None:
            raise bad(file, at_line(lines.number, f"column {layout.names[layout.value]!r} is empty"), "every row needs a time")
        cells.append(cell)
        where.append(lines.number)
        if len(cells) >= _BATCH:
            counter.add(converter.texts(cells, where), where.__getitem__)
            cells, where = [], []
    counter.add(converter.texts(cells, where), where.__getitem__)
    return finish(counter, converter, "csv-timestamps", [layout.note] if layout.note else [])


def _read_counts(file: Path, rows: Iterator[list[str]], lines: _Lines, layout: Layout, options: TraceOptions) -> Trace:
    name = layout.names[layout.value]
    time_name = layout.names[layout.time] if layout.time is not None else ""
    # a column named in seconds (t_sec) holds seconds, whatever the size of its values
    unit: TimeUnit = "s" if options.time_unit == "auto" and time_name.endswith(_SECONDS_SUFFIXES) else options.time_unit
    converter = TimeConverter(file, unit, f"time column {time_name!r}")
    values: list[float] = []
    where: list[int] = []
    times: list[IntArray] = []
    pending: list[str] = []
    limit = MAX_TRACE_S // (options.interval_s or 1)
    for row in rows:
        if not row or not any(c.strip() for c in row):
            continue
        cell = _cell(row, layout.value)
        try:
            values.append(float(cell if cell is not None else "missing"))
        except ValueError:
            raise bad(file, at_line(lines.number, f"{name} is not a number ({cell or '<missing>'!r})"), f"every row needs a numeric {name} value") from None
        where.append(lines.number)
        if len(values) > limit:
            raise bad(
                file,
                at_line(lines.number, f"more than {limit:,} rows: the trace spans more than {MAX_TRACE_S // 86400} days"),
                "cut the file into shorter traces",
            )
        if layout.time is not None:
            stamp = _cell(row, layout.time)
            if stamp is None:
                raise bad(file, at_line(lines.number, f"{layout.names[layout.time]} is empty"), "every row needs its time")
            pending.append(stamp)
            if len(pending) >= _BATCH:
                times.append(converter.texts(pending, where[-len(pending) :]))
                pending = []
    counts = np.asarray(values, dtype=np.float64)
    _check_counts(file, counts, where, name)
    notes = [layout.note] if layout.note else []
    if layout.time is None:
        return Trace(spread(counts, options.interval_s), "csv", (*notes, *spread_note(options.interval_s)))
    times.append(converter.texts(pending, where[len(where) - len(pending) :]))
    return _place(file, counts, np.concatenate(times), np.asarray(where, dtype=np.int64), layout, options, converter, notes)


def _check_counts(file: Path, counts: FloatArray, where: list[int], name: str) -> None:
    wrong = ~np.isfinite(counts) | (counts < 0)
    if wrong.any():
        index = int(np.flatnonzero(wrong)[0])
        raise bad(
            file, at_line(where[index], f"{name} must be a finite count >= 0, got {counts[index]:g}"), "counts are requests per second (or per --interval)"
        )


def _place(
    file: Path, counts: FloatArray, seconds: IntArray, where: IntArray, layout: Layout, options: TraceOptions, converter: TimeConverter, notes: list[str]
) -> Trace:
    """Rows put at their second (zeros between them); duplicates, overlaps and unstated intervals refused."""
    column = layout.names[layout.time or 0]
    if counts.size == 0:
        return Trace(counts, "csv", tuple(notes))
    order = np.argsort(seconds, kind="stable")
    seconds, counts, where = seconds[order], counts[order], where[order]
    steps = np.diff(seconds)
    if steps.size and steps.min() == 0:
        i = int(np.flatnonzero(steps == 0)[0])
        raise bad(file, f"lines {where[i]} and {where[i + 1]}: both at {column} second {seconds[i]}", "one row per second (or per --interval)")
    interval = options.interval_s
    if interval is None and steps.size >= 2 and steps.min() == steps.max() > 1:
        step = int(steps[0])
        raise bad(
            file,
            f"every row is {step} s after the previous one ({column}): counts per {step} s?",
            f"give --interval {step} to spread each count over its {step} s, or --interval 1 for per-second counts",
        )
    interval = interval or 1
    if steps.size and steps.min() < interval:
        i = int(np.flatnonzero(steps < interval)[0])
        raise bad(file, f"lines {where[i]} and {where[i + 1]} are {steps[i]} s apart, less than --interval {interval}", "check --interval")
    span = int(seconds[-1] - seconds[0]) + interval
    if span > MAX_TRACE_S:
        raise bad(
            file,
            f"the {column} column spans {span:,} s, more than {MAX_TRACE_S // 86400} days",
            "check --time-unit (s, ms, us, ns); cut the file into shorter traces",
        )
    per_second = np.zeros(span, dtype=np.float64)
    offsets = (seconds - seconds[0])[:, None] + np.arange(interval)
    per_second[offsets] = (counts / interval)[:, None]
    missing = span - counts.size * interval
    extra = [*spread_note(options.interval_s), *converter.notes(int(seconds[0]))]
    if missing:
        extra.append(f"{missing:,} seconds without a row in the {column} column were read as 0 requests (runs of 60 s or more are masked as collection gaps)")
    origin = int(seconds[0])
    absolute = converter.dates or origin >= EPOCH_FROM_S
    return Trace(per_second, "csv", (*notes, *extra), float(origin) if absolute else None)
