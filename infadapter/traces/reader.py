"""Reading a trace file: format detection, the decoders, and the decode cache."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from infadapter.cache import cache_root
from infadapter.errors import FieldError, InvalidInput
from infadapter.traces import numbers
from infadapter.traces.detect import detect
from infadapter.traces.options import DEFAULT_GAP_S, TraceFormat, TraceOptions, bad
from infadapter.traces.series import Trace, spread, spread_note
from infadapter.traces.tables import read_table
from infadapter.traces.timestamps import read_timestamps

FloatArray = npt.NDArray[np.float64]
CacheDir = str | os.PathLike[str] | Literal[False] | None
#: bump when a decoder changes what it returns for the same file
_CACHE_VERSION = "v2"


def load_trace(
    path: str | os.PathLike[str],
    start_s: float | None = None,
    duration_s: float | None = None,
    *,
    fmt: TraceFormat = "auto",
    options: TraceOptions | None = None,
    gap_s: int | None = DEFAULT_GAP_S,
    cache_dir: CacheDir = None,
) -> FloatArray:
    """Per-second request counts of the trace at ``path`` (float, NaN = masked gap).

    ``start_s``/``duration_s`` cut a segment (in seconds from the start of the trace) after the gaps
    are masked, so a gap that crosses the cut is still recognised. ``gap_s=None`` (or 0) keeps zeros.
    ``options`` (or only ``fmt``) say how to read the file; ``cache_dir=False`` disables the decode
    cache. Raises :class:`InvalidInput` for unreadable files and bad options.
    """
    trace = read_trace(path, options if options is not None else TraceOptions(fmt=fmt), cache_dir=cache_dir)
    return trace.series(start_s, duration_s, gap_s=gap_s, path=path)


def read_counts(
    path: str | os.PathLike[str],
    *,
    fmt: TraceFormat = "auto",
    options: TraceOptions | None = None,
    cache_dir: CacheDir = None,
) -> FloatArray:
    """Raw per-second counts of a trace file (no gap masking), through the decode cache."""
    return read_trace(path, options if options is not None else TraceOptions(fmt=fmt), cache_dir=cache_dir).counts


def read_trace(path: str | os.PathLike[str], options: TraceOptions | None = None, *, cache_dir: CacheDir = None) -> Trace:
    """The :class:`Trace` of ``path``: its raw per-second counts, the format read, and notes on what was assumed."""
    options = (options or TraceOptions()).check()
    file = Path(path)
    try:
        stat = file.stat()
    except FileNotFoundError:
        raise bad(file, "no such file", "check the path (data lives in ../shared/data)") from None
    except OSError as exc:
        raise bad(file, f"cannot read: {exc.strerror}", "check the path and its permissions") from None
    if not file.is_file():
        raise bad(file, "not a regular file", "give the path of a trace file")
    cache = _cache_path(file, stat, options, cache_dir)
    cached = _read_cache(cache) if cache is not None else None
    if cached is not None:
        return cached
    trace = _decode(file, options)
    if trace.counts.size == 0:
        raise bad(file, "the trace holds no samples", "the file must list one count per second, or request times")
    if cache is not None:
        _write_cache(cache, trace)
    return trace


def _decode(file: Path, options: TraceOptions) -> Trace:
    fmt = detect(file, options)
    if fmt != options.fmt:  # options that the detected format cannot take are named, not ignored
        errors = [
            FieldError(e.path, f"{e.message} (detected format {fmt})", e.hint)
            for e in TraceOptions(fmt, options.column, options.interval_s, options.time_unit).errors()
        ]
        if errors:
            raise InvalidInput(errors, source=f"trace {file}")
    if fmt == "tbz2":
        return _read_tbz2(file, options.interval_s)
    with file.open("rb") as stream:
        if fmt in ("csv", "csv-timestamps"):
            return read_table(file, stream, options)  # fmt auto: the header decides csv or csv-timestamps
        if fmt == "timestamps":
            return read_timestamps(file, stream, options.time_unit)
        counts = numbers.stream_counts(file, stream, options.interval_s)
    return Trace(spread(counts, options.interval_s), "counts", spread_note(options.interval_s))


def _read_tbz2(file: Path, interval_s: int | None) -> Trace:
    try:
        with tarfile.open(file, mode="r:bz2") as archive:
            members = [m for m in archive.getmembers() if m.isfile()]
            chosen = [m for m in members if Path(m.name).name == "workload.txt"] or members
            if len(chosen) != 1:
                names = ", ".join(m.name for m in members) or "none"
                raise bad(file, f"expected one member workload.txt, found: {names}", "the paper's archive holds exactly one workload.txt")
            stream = archive.extractfile(chosen[0])
            if stream is None:
                raise bad(file, f"member {chosen[0].name} cannot be read", "re-create the archive")
            with stream:
                counts = numbers.stream_counts(file, stream, interval_s)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise bad(file, f"not a readable bzip2 tar archive ({exc})", "give the paper's .tbz2, or plain text with --format counts") from None
    return Trace(spread(counts, interval_s), "tbz2", spread_note(interval_s))


# --------------------------------------------------------------------------- the decode cache


def _cache_path(file: Path, stat: os.stat_result, options: TraceOptions, cache_dir: CacheDir) -> Path | None:
    """``<cache>/traces/<name>.<key>.npy``, keyed by the file's path, size, mtime and how it is read."""
    if cache_dir is False:
        return None
    base = cache_root() / "traces" if cache_dir is None else Path(cache_dir)
    key = f"{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{options.key()}|{_CACHE_VERSION}"
    return base / f"{file.name}.{hashlib.sha256(key.encode()).hexdigest()[:16]}.npy"


def _read_cache(cache: Path) -> Trace | None:
    """The cached trace: counts in ``.npy``, format and notes beside it in ``.json`` (None when absent or torn)."""
    try:
        meta = json.loads(cache.with_suffix(".json").read_text(encoding="utf-8"))
        counts: FloatArray = np.load(cache, allow_pickle=False)
        origin = meta.get("origin_epoch_s")
        return Trace(counts, str(meta["fmt"]), tuple(str(n) for n in meta["notes"]), None if origin is None else float(origin))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # rebuilt by the caller


def _write_cache(cache: Path, trace: Trace) -> None:
    tmp = cache.with_suffix(f".{os.getpid()}.tmp.npy")
    meta = {"fmt": trace.fmt, "notes": list(trace.notes), "origin_epoch_s": trace.origin_epoch_s}
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.with_suffix(".json").write_text(json.dumps(meta), encoding="utf-8")
        np.save(tmp, trace.counts, allow_pickle=False)
        tmp.replace(cache)  # the .npy last: its presence means the entry is whole
    except OSError:
        tmp.unlink(missing_ok=True)  # the cache is an optimisation: a read-only cache directory is fine
