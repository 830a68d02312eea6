"""Numbers streamed out of text in bounded memory, with comments, separators and the line of every error.

Text is read in 1 MiB chunks cut at a line end (or, inside one very long line such as the Twitter trace's
single line of 1.9 M counts, at a space), so a token never straddles two chunks and each chunk knows the
line it starts on: an error names its line without the file ever being held whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt

from infadapter.traces.options import MAX_TRACE_S, at_line, bad

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

CHUNK_BYTES = 1 << 20
_COMMENT = re.compile(rb"#[^\n]*")
_TOKEN = re.compile(rb"[^\s,;]+")
_AS_SPACE = bytes.maketrans(b",;", b"  ")
_CUT_AT = (b" ", b"\t", b"\r", b",", b";")

COUNTS_HINT = "a counts trace lists numbers (requests per second) separated by spaces, newlines, commas or semicolons"


@dataclass(frozen=True)
class Chunk:
    """A piece of a text file: ``data`` with comments removed, starting on line ``first_line``."""

    data: bytes
    first_line: int

    def tokens(self) -> list[bytes]:
        return self.data.translate(_AS_SPACE).split()

    def lines(self) -> list[bytes]:
        return self.data.split(b"\n")

    def line_of(self, index: int) -> int:
        """The line of the ``index``-th token (only on the error path: it scans the chunk)."""
        for i, match in enumerate(_TOKEN.finditer(self.data)):
            if i == index:
                return self.first_line + self.data.count(b"\n", 0, match.start())
        return self.first_line


def chunks(file: Path, stream: IO[bytes], *, whole_lines: bool = False) -> Iterator[Chunk]:
    """The text of ``stream`` as :class:`Chunk` s; ``whole_lines`` never cuts inside a line.

    ``#`` starts a comment that runs to the end of its line.
    """
    carry, line, skipping = b"", 1, False  # skipping: inside a comment begun before the last cut
    while True:
        block = stream.read(CHUNK_BYTES)
        if skipping and block:
            newline = block.find(b"\n")
            if newline < 0:
                continue
            block, skipping = block[newline:], False
        data = carry + block
        if not block:
            if data.strip():
                yield Chunk(_COMMENT.sub(b"", data), line)
            return
        cut = data.rfind(b"\n") + 1
        if cut == 0 and not whole_lines:
            cut = max(data.rfind(sep) for sep in _CUT_AT) + 1
        if cut == 0:
            if len(data) > CHUNK_BYTES:
                raise bad(file, at_line(line, "a line or value longer than 1 MiB"), "is this a trace? one value per line or per space")
            carry = data
            continue
        head, carry = data[:cut], data[cut:]
        if head.rfind(b"#") > head.rfind(b"\n"):  # a comment runs on past the cut: drop the rest of its line
            carry, skipping = b"", True
        yield Chunk(_COMMENT.sub(b"", head), line)
        line += head.count(b"\n")


def to_floats(file: Path, chunk: Chunk, hint: str = COUNTS_HINT) -> FloatArray:
    """The chunk's numbers (separated by spaces, newlines, ``,`` or ``;``); the first non-number is named by line."""
    _refuse_decimal_commas(file, chunk)
    tokens = chunk.tokens()
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError:
        index = next(i for i, token in enumerate(tokens) if not is_number(token))
        raise bad(file, at_line(chunk.line_of(index), f"not a number: {tokens[index][:40].decode('utf-8', 'replace')!r}"), hint) from None


def to_ints_or_floats(file: Path, chunk: Chunk, hint: str) -> IntArray | FloatArray:
    """Whole numbers as int64 (epoch nanoseconds do not fit a float's 53 bits), else floats."""
    try:
        whole: IntArray = np.array(chunk.tokens(), dtype=np.int64)
    except (ValueError, OverflowError):
        return to_floats(file, chunk, hint)  # decimals, or a non-number that the float path names by line
    return whole


def _refuse_decimal_commas(file: Path, chunk: Chunk) -> None:
    if b";" not in chunk.data or b"," not in chunk.data:
        return
    for offset, text in enumerate(chunk.lines()):
        if b";" in text and b"," in text:
            raise bad(
                file,
                at_line(chunk.first_line + offset, "both ';' and ',' on one line (decimal commas?)"),
                "write decimals with '.', and separate values by one kind of separator",
            )


def is_number(token: str | bytes) -> bool:
    """Whether ``float`` reads ``token`` (a header cell, a date and a typo are not numbers)."""
    try:
        float(token)
    except ValueError:
        return False
    return True


def check_counts(file: Path, chunk: Chunk, values: FloatArray) -> None:
    """Counts are finite and >= 0; the first that is not is named by its line."""
    wrong = ~np.isfinite(values) | (values < 0)
    if not wrong.any():
        return
    index = int(np.flatnonzero(wrong)[0])
    value = values[index]
    what = "non-finite value (nan/inf) in the counts" if not np.isfinite(value) else f"negative count {value:g}"
    raise bad(file, at_line(chunk.line_of(index), what), "counts are requests per second: finite numbers >= 0")


def stream_counts(file: Path, stream: IO[bytes], interval_s: int | None = None) -> FloatArray:
    """Every count of ``stream``, refused (before it is held) when it would span more than :data:`MAX_TRACE_S`."""
    per_value_s = interval_s or 1
    limit = MAX_TRACE_S // per_value_s
    parts: list[FloatArray] = []
    total = 0
    for chunk in chunks(file, stream):
        values = to_floats(file, chunk)
        check_counts(file, chunk, values)
        total += values.size
        if total > limit:
            raise bad(
                file,
                at_line(
                    chunk.line_of(values.size - (total - limit)),
                    f"more than {limit:,} counts: at {per_value_s} s each the trace spans more than {MAX_TRACE_S // 86400} days",
                ),
                "is the format right? (--format timestamps for request times); else cut the file into shorter traces",
            )
        parts.append(values)
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.float64)
