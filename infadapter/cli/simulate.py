"""``infadapter simulate``: replay a trace through every named policy and compare them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

from infadapter.cli._app import app
from infadapter.cli.trace import ColumnOption, FormatOption, IntervalOption, TimeUnitOption
from infadapter.errors import FieldError, InvalidInput

DEFAULT_POLICIES = "ours,infadapter-paper,msplus,vpa,oracle"


@app.command()
def simulate(
    trace: Annotated[Path | None, typer.Option("--trace", help="per-second trace (.tbz2, counts, CSV); default: ../shared/data")] = None,
    start: Annotated[int | None, typer.Option("--start", help="first second of the window in the trace")] = None,
    duration: Annotated[int | None, typer.Option("--duration", help="window length in seconds")] = None,
    scenario: Annotated[str | None, typer.Option("--scenario", help="'paper': the paper's 21-min window, SLA 750, start resnet152@20")] = None,
    profile: Annotated[Path | None, typer.Option("--profile", help="capacity profile (paper CSV or Profile YAML); default: ../shared/data")] = None,
    spec_path: Annotated[Path | None, typer.Option("--spec", "-f", help="InferenceService YAML (default: examples/resnet.yaml)")] = None,
    policies: Annotated[str, typer.Option("--policies", help="comma list; 'vpa' = one run per variant")] = DEFAULT_POLICIES,
    seed: Annotated[int, typer.Option("--seed", help="seed of the request arrivals")] = 0,
    arrivals: Annotated[str, typer.Option("--arrivals", help="poisson (default) or paper (each second packed in ~0.67 s)")] = "poisson",
    history: Annotated[int | None, typer.Option("--history", help="seconds of trace before the window given to the policies (default 24 h)")] = None,
    lstm_weights: Annotated[Path | None, typer.Option("--lstm-weights", help="trained LSTM for infadapter-paper/msplus (default: EWMA, noted)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    report: Annotated[Path | None, typer.Option("--report", help="write PNG plots and report.md to this directory")] = None,
    trace_format: FormatOption = "auto",
    trace_column: ColumnOption = None,
    interval: IntervalOption = None,
    time_unit: TimeUnitOption = "auto",
) -> None:
    """Simulate the policies over a trace: SLO violations, cores, accuracy, p99, drops, reconfigurations."""
    import numpy as np

    from infadapter.cli.trace import check_simulated_requests, read_cli_trace, trace_options
    from infadapter.planning import gpu_warnings
    from infadapter.policies import parse_policies, recommended_options
    from infadapter.profiles import load_profile
    from infadapter.sim.run import simulate as run_simulation
    from infadapter.sim.scenario import (
        DEFAULT_LSTM,
        DEFAULT_PROFILE,
        DEFAULT_SPEC,
        DEFAULT_TRACE,
        PAPER_DURATION_S,
        PAPER_START_S,
        PRE_HISTORY_S,
        require_file,
        write_sim_report,
    )
    from infadapter.spec import load_spec

    errors: list[FieldError] = []
    if scenario not in (None, "paper"):
        errors.append(FieldError("--scenario", f"unknown scenario {scenario!r}", "use --scenario paper or --start/--duration"))
    if start is not None and start < 0:
        errors.append(FieldError("--start", f"{start} is negative", "give the first second of the window, >= 0"))
    if scenario == "paper" and (start is not None or duration is not None):
        errors.append(FieldError("--scenario", "--scenario paper fixes the window", "drop --start/--duration"))
    if arrivals not in ("poisson", "paper"):
        errors.append(FieldError("--arrivals", f"unknown mode {arrivals!r}", "poisson or paper"))
    if duration is not None and duration <= 0:
        errors.append(FieldError("--duration", "must be > 0", "e.g. 1260"))
    if lstm_weights is not None and not lstm_weights.is_file():
        errors.append(FieldError("--lstm-weights", f"no such file: {lstm_weights}", "train them with `infadapter forecast train`"))
    try:
        reading = trace_options(trace_format, trace_column, interval, time_unit)
    except InvalidInput as exc:
        errors.extend(exc.errors)
    if errors:
        raise InvalidInput(errors, "arguments")
    spec = load_spec(require_file(spec_path, DEFAULT_SPEC, "spec", "--spec"))
    slo_ms = spec.slo.latency_ms
    prof = load_profile(require_file(profile, DEFAULT_PROFILE, "profile", "--profile"), slo_ms)
    trace_path = require_file(trace, DEFAULT_TRACE, "trace", "--trace")
    if scenario == "paper":
        start, duration = PAPER_START_S, PAPER_DURATION_S
    series = read_cli_trace(trace_path, reading, quiet=as_json).series(path=trace_path)
    first = start or 0
    if first >= series.size:
        raise InvalidInput([FieldError("--start", f"{first} is past the trace's end ({series.size} s)", "pick an earlier start")], "arguments")
    last = series.size if duration is None else min(series.size, first + duration)
    if history is not None and history < 0:
        raise InvalidInput([FieldError("--history", f"{history} must be >= 0", "e.g. 86400")], "arguments")
    pre_s = PRE_HISTORY_S if history is None else history
    window = series[first:last]
    pre = series[max(0, first - pre_s):first]
    check_simulated_requests(window)
    names = parse_policies(policies, spec, prof)
    if lstm_weights is None and scenario == "paper" and DEFAULT_LSTM.is_file():
        lstm_weights = DEFAULT_LSTM  # the paper's LSTM, as `benchmarks/paper.py` trained and cached it
    paper_options = {"lstm_weights": str(lstm_weights)} if lstm_weights is not None else {}
    options: dict[str, dict[str, Any]] = {"infadapter-paper": paper_options, "msplus": paper_options}
    if scenario == "paper":  # the spec carries the paper's settings; ours runs with the project's defaults
        options["ours"] = recommended_options()
    runs = run_simulation(spec, prof, window, names, pre_history_rps=pre, seed=seed, arrivals=arrivals,  # type: ignore[arg-type]
                          options=options, with_series=report is not None)

    def clean(value: float) -> float | None:
        return None if math.isnan(value) else round(value, 6)

    table = {name: {k: clean(v) for k, v in run.summary.items()} for name, run in runs.items()}
    warnings = gpu_warnings(spec, prof) + [w for run in runs.values() for w in run.warnings]
    for warning in warnings:  # on stderr: --json keeps stdout one JSON object
        typer.echo(f"warning: {warning}", err=True)
    if report is not None:
        notes = "\n".join(f"- {name}: {note}" for name, run in runs.items() for note in run.notes)
        path = write_sim_report(report, runs, title=f"Simulation of {trace_path.name} [{first}, {last})", slo_ms=slo_ms,
                                notes=notes)
        if not as_json:
            typer.echo(f"report: {path}")
    if as_json:
        typer.echo(json.dumps({"policies": table, "window": {"start_s": first, "duration_s": last - first},
                               "requests": int(np.nansum(window)),
                               "notes": {name: run.notes for name, run in runs.items() if run.notes},
                               "warnings": warnings}, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    out = Table(title=f"{trace_path.name} [{first}, {last}) seed {seed}")
    for column in ("policy", "violations", "avg cores", "avg GPUs", "accuracy", "p99 ms", "dropped", "reconfigs"):
        out.add_column(column, justify="left" if column == "policy" else "right")
    for name, row in table.items():
        out.add_row(name, f"{(row['slo_violation_ratio'] or 0):.2%}", f"{(row['avg_cpu'] or 0):.2f}", f"{(row['avg_gpu'] or 0):.2f}",
                    f"{(row['avg_accuracy'] or 0):.4f}",
                    f"{(row['p99_latency_ms'] or 0):.0f}", f"{(row['dropped_ratio'] or 0):.2%}", f"{(row['reconfigurations'] or 0):.0f}")
    Console(width=max(120, Console().width)).print(out)
    for name, run in runs.items():
        for note in run.notes:
            typer.echo(f"note: {name}: {note}")
