"""``infadapter trace export`` and ``infadapter cache``, plus the trace options every trace-reading command shares.

``--format``, ``--column``, ``--interval`` and ``--time-unit`` are declared once here and used by
``simulate``, ``forecast``, ``run`` and ``load``, so the four commands read a file the same way.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from infadapter.cli._app import app, fail
from infadapter.errors import FieldError, InvalidInput

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from infadapter.traces import Trace, TraceOptions

FormatOption = Annotated[
    str,
    typer.Option(
        "--format",
        help="trace format: auto (detected; ambiguous files are refused), counts (one count per second), csv "
        "(header with rps and t_sec ...), timestamps (one request time per line), csv-timestamps "
        "(one request per CSV row, see --column), tbz2",
    ),
]
ColumnOption = Annotated[str | None, typer.Option("--column", help="CSV column: the counts (csv; default rps) or the request times (csv-timestamps)")]
IntervalOption = Annotated[int | None, typer.Option("--interval", help="seconds each count covers, e.g. 60 for per-minute counts (spread evenly per second)")]
TimeUnitOption = Annotated[str, typer.Option("--time-unit", help="unit of numeric request times: auto (epoch by size, else seconds), s, ms, us, ns")]


def trace_options(fmt: str = "auto", column: str | None = None, interval: int | None = None, time_unit: str = "auto") -> TraceOptions:
    """The checked :class:`TraceOptions` of the four options (errors name the option)."""
    from infadapter.traces import TimeUnit, TraceFormat, TraceOptions

    options = TraceOptions(cast("TraceFormat", fmt.strip().lower()), column, interval, cast("TimeUnit", time_unit.strip().lower()))
    return options.check()


def read_cli_trace(path: Path, options: TraceOptions, *, option: str = "--trace", quiet: bool = False) -> Trace:
    """The trace at ``path``, its notes printed on stderr; errors say which option gave the file."""
    from infadapter.traces import read_trace

    try:
        trace = read_trace(path, options)
    except InvalidInput as exc:
        raise type(exc)(exc.errors, f"{option} {path}") from None
    if not quiet:
        for note in trace.notes:
            typer.echo(f"note: {path.name}: {note}", err=True)
    return trace


#: the simulator holds several numbers per request (arrival, service, completion, ...): about 200 bytes
SIM_BYTES_PER_REQUEST = 200
#: the most requests one simulation takes (~4 GB); more is refused before any array is allocated
MAX_SIMULATED_REQUESTS = 20_000_000


def check_simulated_requests(window: npt.NDArray[np.float64], option: str = "--trace") -> None:
    """Refuse a window whose per-request simulation would not fit in memory, with the way out."""
    import numpy as np

    total = float(np.nansum(window))
    if total > MAX_SIMULATED_REQUESTS:
        raise InvalidInput(
            [
                FieldError(
                    option,
                    f"the window holds {total:.3g} requests, more than the simulator takes "
                    f"({MAX_SIMULATED_REQUESTS:,}, ~{MAX_SIMULATED_REQUESTS * SIM_BYTES_PER_REQUEST / 1e9:.0f} GB)",
                    "simulate a shorter window (--start/--duration); if the counts look absurd, check --format (request times read as counts?)",
                )
            ],
            "arguments",
        )


# --------------------------------------------------------------------------- infadapter trace export

trace_app = typer.Typer(name="trace", help="Make request traces from other sources.", no_args_is_help=True)
app.add_typer(trace_app, name="trace")


@trace_app.command("export")
def export(
    prometheus: Annotated[str, typer.Option("--prometheus", help="Prometheus base URL, e.g. http://127.0.0.1:9090")],
    query: Annotated[str, typer.Option("--query", help="PromQL for ONE counter series, e.g. sum(envoy_http_downstream_rq_total)")],
    start: Annotated[str, typer.Option("--start", help="epoch seconds, ISO-8601 (UTC unless it says), now-1h ...")],
    out: Annotated[Path, typer.Option("--out", help="CSV trace to write (t_sec,rps; read by simulate/forecast/run/load)")],
    end: Annotated[str, typer.Option("--end", help="same forms as --start")] = "now",
    step: Annotated[int, typer.Option("--step", help="seconds between samples; each step's requests are spread over it")] = 1,
    rate: Annotated[bool, typer.Option("--rate", help="the query already gives requests per second (e.g. sum(rate(x[1m])))")] = False,
    timeout_s: Annotated[float, typer.Option("--timeout-s", help="per-request timeout")] = 30.0,
) -> None:
    """A per-second trace from a Prometheus counter, via query_range in chunks Prometheus accepts."""
    import numpy as np

    from infadapter.traces import prometheus as prom

    now_s = time.time()
    errors: list[FieldError] = []
    if not prometheus.startswith(("http://", "https://")):
        errors.append(FieldError("--prometheus", f"{prometheus!r} is not an http(s) URL", "e.g. http://127.0.0.1:9090"))
    if not query.strip():
        errors.append(FieldError("--query", "empty query", "e.g. sum(envoy_http_downstream_rq_total)"))
    if not str(out).strip() or out.is_dir():
        errors.append(FieldError("--out", f"{str(out)!r} is not a file path", "e.g. --out trace.csv"))
    if not 0 < timeout_s <= 3600:
        errors.append(FieldError("--timeout-s", f"{timeout_s:g} is not in (0, 3600]", "e.g. 30"))
    times: dict[str, float] = {}
    for option, text in (("--start", start), ("--end", end)):
        try:
            times[option] = prom.parse_time(text, option, now_s)
        except InvalidInput as exc:
            errors.extend(exc.errors)
    if errors:
        raise InvalidInput(errors, "arguments")
    export = prom.export_series(prom.connect(prometheus, timeout_s), query, times["--start"], times["--end"], step, rate=rate)
    rows = prom.write_csv(
        export,
        out,
        [
            f"infadapter trace export from {prometheus}",
            f"query: {query}" + (" (requests per second)" if rate else " (a counter: per-step increases)"),
            f"step: {step} s; {export.queries} query_range call(s)",
        ],
    )
    total = float(np.nansum(export.per_second))
    typer.echo(f"wrote {out}: {rows:,} of {export.per_second.size:,} s with data, {total:,.0f} requests ({export.queries} queries)", err=True)
    if export.missing_s:
        typer.echo(f"note: {export.missing_s:,} s had no sample in Prometheus: no row (read back as 0 requests)", err=True)


# --------------------------------------------------------------------------- infadapter cache

cache_app = typer.Typer(name="cache", help="Where InfAdapter caches decoded traces, models, profiles; empty it.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("path")
def cache_path() -> None:
    """Print the cache directory ($INFADAPTER_CACHE_DIR, else $XDG_CACHE_HOME/infadapter, else ~/.cache/infadapter)."""
    from infadapter.cache import cache_root

    typer.echo(str(cache_root()))


@cache_app.command("clear")
def cache_clear(
    names: Annotated[list[str] | None, typer.Argument(help="only these entries (e.g. traces profiles); default all")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Delete what is in the cache directory (everything in it can be rebuilt)."""
    from infadapter.cache import cache_entries, cache_root, clear_cache, unsafe_to_clear

    root = cache_root()
    why = unsafe_to_clear(root)
    if why is not None:
        raise fail(f"refusing to empty {root}: {why} (hint: point INFADAPTER_CACHE_DIR at a cache directory)")
    entries = [e for e in cache_entries(root) if names is None or e.path.name in names]
    unknown = sorted(set(names or ()) - {e.path.name for e in entries})
    if unknown:
        present = ", ".join(e.path.name for e in cache_entries(root)) or "nothing"
        raise InvalidInput([FieldError("NAMES", f"not in {root}: {', '.join(unknown)}", f"it holds: {present}")], "arguments")
    if not entries:
        typer.echo(f"{root}: nothing to clear", err=True)
        return
    size = sum(e.size_bytes for e in entries)
    if not yes:
        if not sys.stdin.isatty():
            raise fail(f"would delete {len(entries)} entries ({size / 1e6:,.1f} MB) in {root} (hint: add --yes)")
        typer.confirm(f"delete {', '.join(e.path.name for e in entries)} ({size / 1e6:,.1f} MB) in {root}?", abort=True)
    removed = clear_cache(root, names)
    typer.echo(f"removed {len(removed)} entries ({sum(e.size_bytes for e in removed) / 1e6:,.1f} MB) from {root}", err=True)
