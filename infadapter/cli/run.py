"""``infadapter run -f SPEC``: the embedded mode end to end on this machine.

Builds the demo models if needed, profiles them (or reuses a cached profile keyed by the spec, the
model files and this machine), starts Triton instances + Envoy + Prometheus, replays a trace window
open-loop through the router while the adaptation loop runs, writes a report and prints a summary.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from infadapter.cli._app import app, fail
from infadapter.cli.trace import ColumnOption, FormatOption, IntervalOption, TimeUnitOption, trace_options
from infadapter.errors import FieldError, InfAdapterError, InvalidInput

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from infadapter.profiles import Profile
    from infadapter.spec import InferenceServiceSpec
    from infadapter.traces import TraceOptions

ROOT = Path(__file__).resolve().parents[2]
TWITTER_TRACE = ROOT.parent / "shared" / "data" / "twitter_trace_2021-08_workload.tbz2"
#: day 16, 19:04:30 of the Twitter trace: 30 s calm (~47 rps), a 4x burst for ~90 s, back to calm
TWITTER_WINDOW_START_S = 1_451_070
DEFAULT_DURATION_S = 180
#: the trace's peak is scaled to this share of the most the budget can serve per the profile
#: (the load generator, Envoy and Prometheus share the machine's cores with the servers)
PEAK_SHARE = 0.6


def synthetic_trace(duration_s: int, seed: int = 7) -> npt.NDArray[np.float64]:
    """A bursty per-second shape with peak 1.0: calm, a fast 3.5x burst, calm, a second smaller burst."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(duration_s, dtype=float)
    shape = np.full(duration_s, 0.28)
    for start, length, height in ((0.2, 0.35, 1.0), (0.72, 0.12, 0.6)):
        s, n = start * duration_s, max(4.0, length * duration_s)
        ramp = np.clip(np.minimum((t - s) / 5.0, (s + n - t) / 8.0), 0.0, 1.0)
        shape = np.maximum(shape, 0.28 + (height - 0.28) * ramp)
    noisy = shape * rng.lognormal(0.0, 0.08, duration_s)
    return np.asarray(noisy / noisy.max(), dtype=float)


def pick_trace(trace: Path | None, start_s: float | None, duration_s: int, options: TraceOptions | None = None) -> tuple[npt.NDArray[np.float64], str]:
    from infadapter.cli.trace import read_cli_trace
    from infadapter.traces import load_trace

    if trace is not None:
        rates = read_cli_trace(trace, options or trace_options()).series(start_s, duration_s, path=trace)
        return rates, f"{trace} from {start_s or 0:g} s"
    if TWITTER_TRACE.is_file():
        start = TWITTER_WINDOW_START_S if start_s is None else start_s
        return load_trace(TWITTER_TRACE, start_s=start, duration_s=duration_s), f"Twitter trace 2021-08, {duration_s} s from second {start:g}"
    return synthetic_trace(duration_s), "built-in synthetic bursty trace (../shared/data absent)"


def max_capacity_rps(spec: InferenceServiceSpec, profile: Profile) -> float:
    """The most the budget can serve under the SLO according to the profile."""
    from infadapter.planning import plan_for_load

    return float(plan_for_load(spec, profile, 1e6).served_rps)


def profile_key(spec: InferenceServiceSpec, models: dict[str, Path], cpus: tuple[float, ...]) -> str:
    from infadapter.serving.cpulimit import cgroup_v1_writable
    from infadapter.serving.models import read_manifest
    from infadapter.serving.profiler import METHOD

    files = {}
    for name, path in sorted(models.items()):
        manifest = read_manifest(path) or {}
        stat = path.stat()
        files[name] = manifest.get("sha256") or f"{stat.st_size}-{int(stat.st_mtime)}"
    key = {
        "v": METHOD,  # a profile measured by an earlier search is measured again
        "model": spec.model_name,
        "files": files,
        "slo": spec.slo.latency_ms,
        "percentile": spec.slo.percentile,
        "cpus": list(cpus),
        "machine": [os.cpu_count(), os.uname().machine, cgroup_v1_writable()],
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def profile_cpus(spec: InferenceServiceSpec) -> tuple[float, ...]:
    """The smallest and the largest size the spec allows: the profile interpolates between measurements,
    and below the smallest one it would scale linearly to zero, which is optimistic for a big model on a
    small quota (its single request may already miss the SLO)."""
    from infadapter.planning import cpu_grid

    sizes = [c for v in spec.variant_names for c in cpu_grid(spec, v)]
    return (min(sizes), max(sizes)) if sizes and min(sizes) < max(sizes) else (max(sizes, default=1.0),)


def cached_profile(spec: InferenceServiceSpec, models: dict[str, Path], console: Console, cpus: tuple[float, ...] | None = None) -> Profile:
    """The spec's profile from the cache, else measured now (short: a few seconds per point) and cached."""
    from infadapter.cache import cache_root
    from infadapter.profiles import load_profile, save_profile
    from infadapter.serving.profiler import Profiler, largest_planned_cores

    cpus = cpus or profile_cpus(spec)

    cache = cache_root() / "profiles"
    path = cache / f"{spec.model_name}-{profile_key(spec, models, cpus)}.yaml"
    if path.is_file():
        console.print(f"profile: cached {path}", highlight=False)
        return load_profile(path)
    console.print(f"profile: measuring {len(models)} variants x {len(cpus)} CPU sizes (once; cached in {path})", highlight=False)
    started = time.monotonic()
    profiler = Profiler(spec.slo.latency_ms, spec.slo.percentile, duration_s=2.0, max_steps=4, tolerance=0.15)
    profile, points = profiler.profile(models, spec.model_name, cpus, largest_planned_cores(spec))
    for p in points:
        console.print(f"  {p.variant:10s} {p.cpu_cores:4g} cores  {p.capacity_rps:7.1f} rps", highlight=False)
    cache.mkdir(parents=True, exist_ok=True)
    save_profile(profile, path)
    console.print(f"profile: {time.monotonic() - started:.0f} s", highlight=False)
    return profile


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@app.command("run")
# 62 lines, 17 of them the typer options (the command's signature is its CLI): the body is under 45
def run_cmd(
    spec_path: Annotated[Path, typer.Option("--file", "-f", help="InferenceService YAML (e.g. examples/demo.yaml)")],
    trace: Annotated[Path | None, typer.Option("--trace", help="per-second trace (default: a bursty Twitter window, or a synthetic one)")] = None,
    start: Annotated[float | None, typer.Option("--start", help="first second of the trace")] = None,
    scale: Annotated[float | None, typer.Option("--scale", help="multiply the trace's rates by this (default: fit its peak to this machine)")] = None,
    duration: Annotated[int, typer.Option("--duration", help="seconds of trace to replay")] = DEFAULT_DURATION_S,
    profile_path: Annotated[Path | None, typer.Option("--profile", help="capacity profile (default: measured once and cached)")] = None,
    policy: Annotated[str, typer.Option("--policy", help="ours, infadapter-paper, msplus, vpa:<variant>, static:<variant>@<cores>")] = "ours",
    report: Annotated[Path | None, typer.Option("--report", help="directory for the report (default reports/run-<time>)")] = None,
    models_dir: Annotated[Path | None, typer.Option("--models-dir", help="where models:// sources live")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object with the run's figures at the end")] = False,
    live: Annotated[bool, typer.Option("--live/--no-live", help="live progress table (default when stderr is a terminal)")] = True,
    trace_format: FormatOption = "auto",
    trace_column: ColumnOption = None,
    interval: IntervalOption = None,
    time_unit: TimeUnitOption = "auto",
) -> None:
    """Serve the spec on this machine and adapt it live to a replayed trace; report what happened."""
    from infadapter.embedded import EmbeddedRun
    from infadapter.metrics import DecisionLog
    from infadapter.profiles import load_profile
    from infadapter.serving.profiler import spec_models
    from infadapter.spec import load_resource

    console = _logging_console()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    started = time.monotonic()
    try:
        _check_arguments(duration, scale, [("--file", spec_path), ("--trace", trace), ("--profile", profile_path)])
        reading = trace_options(trace_format, trace_column, interval, time_unit)
        resource = load_resource(spec_path)
        spec = resource.spec
        _runs_here(spec, spec_path)
        models = spec_models(spec, None, models_dir)
        profile = load_profile(profile_path, slo_ms=spec.slo.latency_ms) if profile_path else cached_profile(spec, models, console)
        rates, factor, described = _scaled_trace(spec, profile, trace, start, duration, reading, scale)
        console.print(f"trace: {described}; x{factor:.3g} -> mean {rates.mean():.1f} rps, peak {rates.max():.1f} rps", highlight=False)
        out = report or Path("reports") / time.strftime("run-%Y%m%d-%H%M%S")
        out.mkdir(parents=True, exist_ok=True)
        run = EmbeddedRun(
            spec,
            profile,
            models,
            rates,
            policy=policy,
            namespace=resource.metadata.namespace or "default",
            name=resource.metadata.name,
            console=console,
            live=live and console.is_terminal,
            decision_log=DecisionLog(json_path=out / "decisions.jsonl"),
        )
        summary = run.run()
        path = run.write_report(out, summary, notes=f"Trace: {described}, scaled x{factor:.3g}. Policy: {policy}.")
    except KeyboardInterrupt:
        console.print("interrupted: every server, the router, Prometheus and their cgroups were stopped", highlight=False)
        raise typer.Exit(130) from None
    except InfAdapterError as exc:
        raise fail(str(exc), exc.exit_code) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    _print_summary(console, summary.to_json(), summary.accuracy_source, path, time.monotonic() - started)
    if as_json:
        print(json.dumps(summary.to_json()))


def _runs_here(spec: InferenceServiceSpec, path: Path) -> None:
    """The embedded mode serves on this machine's CPU: named accelerator types have no place here."""
    errors: list[FieldError] = []
    if spec.accelerators:
        hint = "drop spec.accelerators to run it here; `infadapter simulate` and the operator plan them"
        errors.append(FieldError("spec.accelerators", "the embedded mode runs every server on this machine's CPU", hint))
    for i, v in enumerate(spec.variants):
        if v.batch_sizes:
            hint = "drop batchSizes to run it here; `infadapter simulate` and the operator plan them"
            errors.append(FieldError(f"spec.variants[{i}].batchSizes", "the embedded mode serves the profiled, unbatched configuration", hint))
    if errors:
        raise InvalidInput(errors, str(path))


def _logging_console() -> Console:
    """The console of the run (stderr), also the log handler's: warnings and decisions interleave with the table."""
    import logging

    from rich.logging import RichHandler

    console = Console(stderr=True)
    if not console.is_terminal:
        console = Console(stderr=True, width=200)  # log files: one line per decision
    logging.basicConfig(level=logging.WARNING, handlers=[RichHandler(console=console, show_path=False)], force=True)
    return console


def _check_arguments(duration: int, scale: float | None, paths: list[tuple[str, Path | None]]) -> None:
    """Refuse, before anything starts, arguments the run cannot use (naming every bad one)."""
    if duration < 10:
        raise InvalidInput([FieldError("--duration", f"{duration} s is too short", "give at least 10 s (several decisions)")], "arguments")
    if scale is not None and not (scale > 0 and math.isfinite(scale)):
        raise InvalidInput([FieldError("--scale", f"must be > 0, got {scale}", "e.g. --scale 0.5")], "arguments")
    missing = [
        FieldError(option, f"{str(path)!r} is not a file", "give the path of an existing file")
        for option, path in paths
        if path is not None and not path.is_file()
    ]
    if missing:
        raise InvalidInput(missing, "arguments")


def _scaled_trace(
    spec: InferenceServiceSpec, profile: Profile, trace: Path | None, start: float | None, duration: int, reading: TraceOptions, scale: float | None
) -> tuple[npt.NDArray[np.float64], float, str]:
    """The per-second rates to replay, the factor applied and a description of the window; without ``scale``
    the window's peak is fitted to :data:`PEAK_SHARE` of what the budget can serve per the profile."""
    import numpy as np

    raw, described = pick_trace(trace, start, duration, reading)
    peak = float(np.nanmax(raw)) if raw.size else 0.0
    if not peak > 0:
        raise InvalidInput([FieldError("--trace", "the chosen window has no requests", "pick another --start")], "trace")
    factor = scale if scale is not None else PEAK_SHARE * max_capacity_rps(spec, profile) / peak
    return np.nan_to_num(raw * factor, nan=0.0), factor, described


def _print_summary(console: Console, figures: dict[str, Any], accuracy_source: str, report: Path, elapsed_s: float) -> None:
    from rich.table import Table

    table = Table(title="infadapter run: summary (measured at the client and the runtime)", title_justify="left")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        label = f"{key} ({accuracy_source})" if key == "avg_accuracy" else key
        table.add_row(label, "n/a" if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value)))
    console.print(table)
    console.print(f"report: {report} ({elapsed_s:.0f} s in all)", highlight=False)
