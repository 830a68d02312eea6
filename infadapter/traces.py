"""Load request traces as per-second arrival counts.

One entry point, :func:`load_trace`, reads every trace format the project meets and returns a
float array of requests per second (oldest first) in which collection gaps are ``NaN``:

* the paper's ``.tbz2`` (a bzip2 tar with one member ``workload.txt``: space-separated integers,
  one per second), read as a stream;
* the same space-separated integers as plain text;
* CSV with a header that has an ``rps`` column (e.g. ``t_sec,trace_index,rps``);
* a list of request timestamps (one float, in seconds, per line), counted per second.

The Twitter trace has a ~29-minute block of zeros every day (second 84,660 of the day): those are
holes in the collection, not idle time, so runs of zeros of at least ``gap_s`` seconds become NaN
and are neither trained on nor scored. Decoding the 1.9 M-second trace is cached as ``.npy`` under
``~/.cache/infadapter/traces`` keyed by the file's path, size and mtime.
"""

from __future__ import annotations

import csv
import hashlib
import os
import tarfile
from pathlib import Path
from typing import IO, Literal

import numpy as np
import numpy.typing as npt

from infadapter.errors import FieldError, InvalidInput
from infadapter.forecast.blocks import block_means, block_peaks

FloatArray = npt.NDArray[np.float64]
TraceFormat = Literal["auto", "tbz2", "counts", "csv", "timestamps"]

#: runs of zeros at least this long are collection gaps (the Twitter trace's daily hole is ~1,740 s)
DEFAULT_GAP_S = 60
#: a timestamp file may span at most this long (one count per second is kept in memory)
MAX_TIMESTAMP_SPAN_S = 400 * 86400
_CHUNK_BYTES = 1 << 20

__all__ = [
    "DEFAULT_GAP_S",
    "load_trace",
    "mask_gaps",
    "read_counts",
    "resample_mean",
    "resample_peak",
]


def _bad(path: os.PathLike[str] | str, message: str, hint: str) -> InvalidInput:
    return InvalidInput([FieldError(str(path), message, hint)], source="trace")


def load_trace(
    path: str | os.PathLike[str],
    start_s: float | None = None,
    duration_s: float | None = None,
    *,
    fmt: TraceFormat = "auto",
    gap_s: int | None = DEFAULT_GAP_S,
    cache_dir: str | os.PathLike[str] | Literal[False] | None = None,
) -> FloatArray:
    """Per-second request counts of the trace at ``path`` (float, NaN = masked gap).

    ``start_s``/``duration_s`` cut a segment (in seconds from the start of the trace) after the gaps
    are masked, so a gap that crosses the cut is still recognised. ``gap_s=None`` (or 0) keeps zeros.
    ``cache_dir=False`` disables the decode cache. Raises :class:`InvalidInput` for unreadable files.
    """
    counts = read_counts(path, fmt=fmt, cache_dir=cache_dir)
    series = mask_gaps(counts, gap_s) if gap_s else counts.astype(np.float64)
    for label, value in (("start_s", start_s), ("duration_s", duration_s)):
        if value is not None and not np.isfinite(value):
            raise _bad(path, f"{label}={value} is not a finite number of seconds", f"give a finite {label}")
    first = 0
    if start_s is not None:
        if start_s < 0 or start_s >= len(series):
            raise _bad(path, f"start_s={start_s:g} is outside the trace (0 .. {len(series)} s)",
                       "pick a start inside the trace")
        first = int(start_s)
    last = len(series)
    if duration_s is not None:
        if duration_s <= 0:
            raise _bad(path, f"duration_s={duration_s:g} must be positive", "give a duration > 0")
        last = min(len(series), first + int(np.ceil(duration_s)))
    return series[first:last].copy()


def mask_gaps(counts: npt.ArrayLike, gap_s: int = DEFAULT_GAP_S) -> FloatArray:
    """Float copy of ``counts`` with every run of zeros of at least ``gap_s`` seconds set to NaN."""
    series = np.asarray(counts, dtype=np.float64).copy()
    if gap_s <= 0 or series.size == 0:
        return series
    zero = (series == 0).astype(np.int8)
    edges = np.diff(np.concatenate(([0], zero, [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    for begin, end in zip(starts, ends, strict=True):
        if end - begin >= gap_s:
            series[begin:end] = np.nan
    return series


def resample_peak(series_rps: npt.ArrayLike, window_s: int) -> FloatArray:
    """Peak of each ``window_s``-second window (from the start; the last partial window is dropped).

    NaN-aware: a window's peak ignores masked seconds; a fully masked window is NaN.
    """
    return block_peaks(np.asarray(series_rps, dtype=np.float64), window_s, align="start")


def resample_mean(series_rps: npt.ArrayLike, window_s: int) -> FloatArray:
    """Mean rate of each ``window_s``-second window (NaN-aware, like :func:`resample_peak`)."""
    return block_means(np.asarray(series_rps, dtype=np.float64), window_s, align="start")


# --------------------------------------------------------------------------- reading


def read_counts(
    path: str | os.PathLike[str],
    *,
    fmt: TraceFormat = "auto",
    cache_dir: str | os.PathLike[str] | Literal[False] | None = None,
) -> FloatArray:
    """Raw per-second counts of a trace file (no gap masking), through the decode cache."""
    file = Path(path)
    try:
        stat = file.stat()
    except FileNotFoundError:
        raise _bad(file, "no such file", "check the path (data lives in ../shared/data)") from None
    except OSError as exc:
        raise _bad(file, f"cannot read: {exc.strerror}", "check the path and its permissions") from None
    if not file.is_file():
        raise _bad(file, "not a regular file", "give the path of a trace file")
    cache = _cache_path(file, stat, fmt, cache_dir)
    if cache is not None and cache.exists():
        try:
            cached: FloatArray = np.load(cache, allow_pickle=False)
            return cached
        except (OSError, ValueError):
            pass  # a torn cache file is rebuilt below
    counts = _decode(file, _detect(file, fmt))
    if counts.size == 0:
        raise _bad(file, "the trace holds no samples", "the file must list one count per second")
    if cache is not None:
        _write_cache(cache, counts)
    return counts


def _cache_path(
    file: Path, stat: os.stat_result, fmt: str, cache_dir: str | os.PathLike[str] | Literal[False] | None
) -> Path | None:
    if cache_dir is False:
        return None
    if cache_dir is None:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "infadapter" / "traces"
    else:
        base = Path(cache_dir)
    key = f"{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{fmt}|v1"
    return base / f"{file.name}.{hashlib.sha256(key.encode()).hexdigest()[:16]}.npy"


def _write_cache(cache: Path, counts: FloatArray) -> None:
    tmp = cache.with_suffix(f".{os.getpid()}.tmp.npy")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(tmp, counts, allow_pickle=False)
        tmp.replace(cache)
    except OSError:
        tmp.unlink(missing_ok=True)  # the cache is an optimisation: a read-only home is fine


def _detect(file: Path, fmt: TraceFormat) -> TraceFormat:
    if fmt != "auto":
        return fmt
    name = file.name.lower()
    if name.endswith((".tbz2", ".tar.bz2", ".tbz")):
        return "tbz2"
    if name.endswith(".csv"):
        return "csv"
    with file.open("rb") as handle:
        head = handle.read(4096)
    if head.startswith(b"BZh"):
        return "tbz2"
    if b"\0" in head:
        raise _bad(file, "binary content in a text trace", "give a .tbz2, CSV or space-separated text trace")
    first_line = head.split(b"\n", 1)[0]
    if any(c.isalpha() for c in first_line.decode("utf-8", "replace")) and b"," in first_line:
        return "csv"
    lines = [ln.split() for ln in head.split(b"\n")[:-1] if ln.strip()]
    one_per_line = len(lines) > 1 and all(len(tokens) == 1 for tokens in lines)
    if one_per_line and any(b"." in tokens[0] or b"e" in tokens[0].lower() for tokens in lines):
        return "timestamps"
    return "counts"


def _decode(file: Path, fmt: TraceFormat) -> FloatArray:
    if fmt == "tbz2":
        return _read_tbz2(file)
    if fmt == "csv":
        return _read_csv(file)
    with file.open("rb") as handle:
        values = _parse_numbers(file, handle)
    if fmt == "timestamps":
        return _count_timestamps(file, values)
    return _check_counts(file, values)


def _read_tbz2(file: Path) -> FloatArray:
    try:
        with tarfile.open(file, mode="r:bz2") as archive:
            members = [m for m in archive.getmembers() if m.isfile()]
            chosen = [m for m in members if Path(m.name).name == "workload.txt"] or members
            if len(chosen) != 1:
                names = ", ".join(m.name for m in members) or "none"
                raise _bad(file, f"expected one member workload.txt, found: {names}",
                           "the paper's archive holds exactly one workload.txt")
            stream = archive.extractfile(chosen[0])
            if stream is None:
                raise _bad(file, f"member {chosen[0].name} cannot be read", "re-create the archive")
            with stream:
                values = _parse_numbers(file, stream)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise _bad(file, f"not a readable bzip2 tar archive ({exc})",
                   "give the paper's .tbz2, or plain text with --format counts") from None
    return _check_counts(file, values)


def _parse_numbers(file: Path, stream: IO[bytes]) -> FloatArray:
    """Stream whitespace-separated numbers in 1 MiB chunks (tokens may straddle chunk edges)."""
    parts: list[FloatArray] = []
    carry = b""
    while True:
        chunk = stream.read(_CHUNK_BYTES)
        if not chunk:
            break
        data = carry + chunk
        cut = max(data.rfind(b" "), data.rfind(b"\n"), data.rfind(b"\t"), data.rfind(b"\r"))
        if cut < 0:
            carry = data
            continue
        parts.append(_to_floats(file, data[:cut]))
        carry = data[cut:]
    if carry.strip():
        parts.append(_to_floats(file, carry))
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.float64)


def _to_floats(file: Path, data: bytes) -> FloatArray:
    tokens = data.split()
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError:
        bad = next(t for t in tokens if not _is_number(t))
        raise _bad(file, f"not a number: {bad[:40]!r}",
                   "a trace lists numbers separated by spaces or newlines; CSV needs a header with an 'rps' column"
                   ) from None


def _is_number(token: bytes) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _check_counts(file: Path, values: FloatArray) -> FloatArray:
    if not np.all(np.isfinite(values)):
        raise _bad(file, "non-finite value (nan/inf) in the counts", "counts must be finite numbers")
    if np.any(values < 0):
        at = int(np.flatnonzero(values < 0)[0])
        raise _bad(file, f"negative count {values[at]:g} at second {at}", "counts are requests per second (>= 0)")
    return values


def _count_timestamps(file: Path, stamps: FloatArray) -> FloatArray:
    if stamps.size == 0:
        return stamps
    if not np.all(np.isfinite(stamps)):
        raise _bad(file, "non-finite timestamp", "one request time in seconds per line")
    if np.any(np.diff(stamps) < 0):
        stamps = np.sort(stamps)
    span_s = float(stamps[-1]) - float(np.floor(stamps[0]))
    if not span_s <= MAX_TIMESTAMP_SPAN_S:
        raise _bad(file, f"timestamps span {span_s:.3g} s, more than {MAX_TIMESTAMP_SPAN_S} s",
                   "timestamps are seconds (not ms or ns); split very long traces")
    offsets = np.floor(stamps - np.floor(stamps[0])).astype(np.int64)
    return np.bincount(offsets).astype(np.float64)


def _read_csv(file: Path) -> FloatArray:
    try:
        with file.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise _bad(file, "empty CSV", "the first line must be a header with an 'rps' column")
            names = [h.strip().lower() for h in header]
            if "rps" not in names:
                raise _bad(file, f"no 'rps' column in the header ({','.join(header)})",
                           "name the per-second count column 'rps', e.g. t_sec,trace_index,rps")
            column = names.index("rps")
            values: list[float] = []
            for line_no, row in enumerate(reader, start=2):
                if not row or not any(cell.strip() for cell in row):
                    continue
                try:
                    values.append(float(row[column]))
                except (ValueError, IndexError):
                    cell = row[column] if column < len(row) else "<missing>"
                    raise _bad(file, f"line {line_no}: rps is not a number ({cell!r})",
                               "every row needs a numeric rps value") from None
    except UnicodeDecodeError:
        raise _bad(file, "not UTF-8 text", "give a text CSV or the paper's .tbz2") from None
    except csv.Error as exc:
        raise _bad(file, f"malformed CSV ({exc})", "one header line, then one row per second") from None
    return _check_counts(file, np.asarray(values, dtype=np.float64))
