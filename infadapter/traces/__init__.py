"""Request traces as per-second arrival counts, from the formats people have.

:func:`load_trace` reads a file and returns a float array of requests per second (oldest first) in
which collection gaps are ``NaN``; :func:`read_trace` returns the :class:`Trace` with the format read
and notes on what it assumed. Formats (:class:`TraceOptions`, the CLI's ``--format``):

* ``tbz2``: the paper's archive (a bzip2 tar with one member ``workload.txt``: space-separated
  per-second counts), streamed;
* ``counts``: numbers separated by spaces, newlines, commas or semicolons, one per second (or per
  ``--interval`` seconds, spread evenly);
* ``csv``: a header with a count column (``rps``, or ``--column``) and optionally a time column
  (``t_sec`` ...) that places each row at its second, missing seconds being zeros;
* ``timestamps``: one request time per line: a number (seconds, ms, us, ns: ``--time-unit``, by
  magnitude when ``auto``) or an ISO-8601 date, counted per second;
* ``csv-timestamps``: one request per row of a CSV (an access log), its time in ``--column``.

``auto`` detects the format and refuses, with a hint naming ``--format``, what could be read two
ways. ``#`` starts a comment; every parse error names its line; a trace spanning more than
:data:`MAX_TRACE_S` seconds is refused before it is allocated.

The Twitter trace has a ~29-minute block of zeros every day (second 84,660 of the day): those are
holes in the collection, not idle time, so runs of zeros of at least ``gap_s`` seconds become NaN and
are neither trained on nor scored. Decoded traces are cached as ``.npy`` under
``<cache root>/traces`` (:func:`infadapter.cache.cache_root`) keyed by the file's path, size, mtime
and the options.
"""

from __future__ import annotations

from infadapter.traces.options import DEFAULT_GAP_S, FORMATS, MAX_TRACE_S, TIME_UNITS, TimeUnit, TraceFormat, TraceOptions
from infadapter.traces.reader import load_trace, read_counts, read_trace
from infadapter.traces.series import Trace, cut, mask_gaps, resample_mean, resample_peak

__all__ = [
    "DEFAULT_GAP_S",
    "FORMATS",
    "MAX_TRACE_S",
    "TIME_UNITS",
    "TimeUnit",
    "Trace",
    "TraceFormat",
    "TraceOptions",
    "cut",
    "load_trace",
    "mask_gaps",
    "read_counts",
    "read_trace",
    "resample_mean",
    "resample_peak",
]
