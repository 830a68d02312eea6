"""Request times (numbers in s, ms, us or ns, or dates) counted per second in bounded memory.

A log of 10^9 requests must not need 10^9 floats: times are converted and counted chunk by chunk into
one array of per-second counts, whose span is checked before it grows, so a unit mistake (epoch
milliseconds read as seconds) is refused with a hint instead of allocating terabytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt

from infadapter.traces.numbers import Chunk, chunks, is_number, to_ints_or_floats
from infadapter.traces.options import MAX_TRACE_S, TimeUnit, at_line, bad
from infadapter.traces.series import Trace

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
LineOf = Callable[[int], int | None]

TICKS_PER_S = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
#: times at or after this many seconds (1973-03-03) are taken as wall-clock (epoch) times in notes
EPOCH_FROM_S = 100_000_000
#: a converted time beyond this many seconds (~317,000 years) cannot be a request time
_MAX_ABS_S = 1e13
_YEAR_3000_S = 32_503_680_000
STAMPS_HINT = "one request time per line: a number (seconds, or --time-unit ms/us/ns) or an ISO-8601 date"
_CLF = "%d/%b/%Y:%H:%M:%S %z"  # the access-log time of Apache/nginx, e.g. 10/Oct/2000:13:55:36 -0700


def auto_unit(magnitude: float) -> str:
    """The unit of epoch times by their size (now: 1.7e9 s, 1.7e12 ms, 1.7e15 us, 1.7e18 ns); small = seconds."""
    if magnitude < 1e11:
        return "s"
    if magnitude < 1e14:
        return "ms"
    return "us" if magnitude < 1e17 else "ns"


def parse_date(text: str) -> datetime | None:
    """An ISO-8601 date-time (``Z`` and offsets allowed) or an access-log time in brackets; None if neither."""
    stripped = text.strip().strip('"[]')
    if not stripped or not stripped[0].isdigit():
        return None
    try:
        return datetime.fromisoformat(stripped)
    except ValueError:
        pass
    try:
        return datetime.strptime(stripped, _CLF)
    except ValueError:
        return None


class TimeConverter:
    """Converts request times to whole seconds, fixing the unit on the first batch (``auto``: by magnitude)."""

    def __init__(self, file: Path, unit: TimeUnit, what: str = "timestamp") -> None:
        self.file = file
        self.requested = unit
        self.unit: str | None = None if unit == "auto" else unit
        self.what = what
        self.dates = False
        self.numeric = False  # numbers were seen: dates are no longer accepted
        self.naive = False

    def numbers(self, values: IntArray | FloatArray, line_of: LineOf) -> IntArray:
        if values.size == 0:
            return np.empty(0, dtype=np.int64)
        self.numeric = True
        if self.unit is None:
            self.unit = auto_unit(float(np.max(np.abs(values))))
        ticks = TICKS_PER_S[self.unit]
        if values.dtype == np.int64:
            seconds: IntArray = np.floor_divide(values, ticks)
            return seconds
        wrong = ~np.isfinite(values) | (np.abs(values) / ticks > _MAX_ABS_S)
        if wrong.any():
            index = int(np.flatnonzero(wrong)[0])
            raise bad(
                self.file,
                at_line(line_of(index), f"{self.what} {values[index]:g} is not a time in {UNIT_NAMES[self.unit]}"),
                "check --time-unit (s, ms, us, ns)",
            )
        floored: IntArray = np.floor(values / ticks).astype(np.int64)
        return floored

    def texts(self, cells: Sequence[str], lines: Sequence[int]) -> IntArray:
        """Cells that are all numbers, or all dates (the first cell decides), as whole seconds."""
        if not cells:
            return np.empty(0, dtype=np.int64)
        if not self.dates:
            try:
                values = np.array(cells, dtype=np.float64)
            except ValueError:
                if self.numeric or parse_date(cells[0]) is None:
                    index = next(i for i, cell in enumerate(cells) if not is_number(cell))
                    raise bad(self.file, at_line(lines[index], f"{self.what} is not a number or a date: {cells[index][:40]!r}"), STAMPS_HINT) from None
                self.dates = True
            else:
                return self.numbers(values, lambda i: lines[i])
        return np.array([self._date_seconds(cell, line) for cell, line in zip(cells, lines, strict=True)], dtype=np.int64)

    def _date_seconds(self, cell: str, line: int) -> int:
        moment = parse_date(cell)
        if moment is None:
            raise bad(self.file, at_line(line, f"{self.what} is not a date: {cell[:40]!r}"), "every time in one form, e.g. 2021-08-01T12:00:00.250Z")
        if moment.tzinfo is None:
            self.naive = True
            moment = moment.replace(tzinfo=UTC)
        return math.floor(moment.timestamp())

    def notes(self, origin_s: int) -> list[str]:
        if self.dates:
            return ["dates without a time zone were read as UTC"] if self.naive else []
        if self.requested != "auto" or self.unit is None:
            return []
        if origin_s >= EPOCH_FROM_S:
            return [f"times read as {UNIT_NAMES[self.unit]} since 1970 (by their size; --time-unit to change)"]
        return [f"times read as {UNIT_NAMES[self.unit]} from an arbitrary origin (--time-unit ms if they are milliseconds)"]


class SecondCounter:
    """Per-second counts of request times fed in batches; refuses a span over ``limit_s`` before growing."""

    def __init__(self, file: Path, limit_s: int = MAX_TRACE_S) -> None:
        self.file = file
        self.limit_s = limit_s
        self.base = 0  # the second of buffer[0]
        self.low: int | None = None  # the first and last seconds seen
        self.high = 0
        self.buffer = np.zeros(0, dtype=np.int64)
        self.requests = 0

    def add(self, seconds: IntArray, line_of: LineOf) -> None:
        if seconds.size == 0:
            return
        low, high = int(seconds.min()), int(seconds.max())
        new_low = low if self.low is None else min(low, self.low)
        new_high = high if self.low is None else max(high, self.high)
        if new_high - new_low + 1 > self.limit_s:
            index = int(np.argmax(seconds) if high == new_high else np.argmin(seconds))
            raise bad(
                self.file,
                at_line(line_of(index), f"the request times span {_span(new_high - new_low)}, more than {self.limit_s // 86400} days"),
                "check the time unit (--time-unit s|ms|us|ns) and --format; cut very long logs into shorter traces",
            )
        self._reserve(new_low, new_high)
        self.low, self.high = new_low, new_high
        self.buffer[low - self.base : high - self.base + 1] += np.bincount(seconds - low, minlength=high - low + 1)
        self.requests += int(seconds.size)

    def _reserve(self, low: int, high: int) -> None:
        end = self.base + self.buffer.size
        if self.buffer.size and low >= self.base and high < end:
            return
        # grow geometrically to the right (logs are mostly in time order), exactly to the left
        base = min(low, self.base) if self.buffer.size else low
        size = max(high - base + 1, min(2 * (end - base), self.limit_s))
        grown = np.zeros(size, dtype=np.int64)
        if self.buffer.size:
            grown[self.base - base : self.base - base + self.buffer.size] = self.buffer
        self.base, self.buffer = base, grown

    def counts(self) -> FloatArray:
        if self.low is None:
            return np.empty(0, dtype=np.float64)
        return self.buffer[self.low - self.base : self.high - self.base + 1].astype(np.float64)


def _span(seconds: int) -> str:
    return f"{seconds / 86400 / 365.25:.3g} years" if seconds > 365 * 86400 else f"{seconds / 86400:.3g} days"


def finish(counter: SecondCounter, converter: TimeConverter, fmt: str, extra: Sequence[str] = ()) -> Trace:
    """The :class:`Trace` of counted times, with notes on the unit and the origin."""
    counts = counter.counts()
    origin = counter.low if counter.low is not None else 0
    absolute = converter.dates or origin >= EPOCH_FROM_S
    notes = [*extra, *converter.notes(origin)]
    if counts.size:
        start = iso_time(origin) if absolute else None
        shown = start or f"t={origin} s" + (" (after the year 3000: check --time-unit)" if absolute else "")
        notes.append(f"{counter.requests:,} requests over {counts.size:,} s; second 0 is {shown}")
    return Trace(counts, fmt, tuple(notes), float(origin) if absolute else None)


def iso_time(epoch_s: float) -> str | None:
    """``2021-09-01T00:00:00Z``, or None past the year 3000 (a wrong unit, not a date to print)."""
    if not -62_135_596_800 <= epoch_s < _YEAR_3000_S:
        return None
    return datetime.fromtimestamp(epoch_s, UTC).isoformat().replace("+00:00", "Z")


def read_timestamps(file: Path, stream: IO[bytes], unit: TimeUnit) -> Trace:
    """A file of one request time per line (numbers or dates; ``#`` comments) counted per second."""
    counter = SecondCounter(file)
    converter = TimeConverter(file, unit)
    for chunk in chunks(file, stream, whole_lines=True):
        if converter.dates or (counter.low is None and _starts_with_date(chunk)):
            converter.dates = True
            cells, lines = _date_lines(chunk)
            counter.add(converter.texts(cells, lines), lines.__getitem__)
            continue
        values = to_ints_or_floats(file, chunk, STAMPS_HINT)
        counter.add(converter.numbers(values, chunk.line_of), chunk.line_of)
    return finish(counter, converter, "timestamps")


def _starts_with_date(chunk: Chunk) -> bool:
    first = next((text for text in chunk.lines() if text.strip()), b"")
    return parse_date(first.decode("utf-8", "replace")) is not None


def _date_lines(chunk: Chunk) -> tuple[list[str], list[int]]:
    cells: list[str] = []
    lines: list[int] = []
    for offset, raw in enumerate(chunk.lines()):
        text = raw.decode("utf-8", "replace").strip()
        if text:
            cells.append(text)
            lines.append(chunk.first_line + offset)
    return cells, lines
